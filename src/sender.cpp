#include "sender.hpp"
#include "trust.hpp"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace dingtalk
{

namespace
{

constexpr std::size_t kMaxReplyBytes = 64 * 1024;

struct SlistDeleter {
    void operator()(curl_slist *l) const { curl_slist_free_all(l); }
};

// The request's body as libcurl reads it. libcurl sends a request again by itself when a
// kept-alive connection closes before any answer (it takes the close for the server's idle
// timeout); the body must then be read from the start, and that is refused once all of it was
// handed out: DingTalk may have it, and the caller decides whether it goes once more.
struct Upload {
    std::string_view body;
    std::size_t pos = 0;
    bool whole = false;
};

std::size_t read_body(char *buffer, std::size_t size, std::size_t nitems, void *userp)
{
    auto *u = static_cast<Upload *>(userp);
    const std::size_t n = std::min(size * nitems, u->body.size() - u->pos);
    std::memcpy(buffer, u->body.data() + u->pos, n);
    u->pos += n;
    u->whole = u->whole || u->pos == u->body.size();
    return n;
}

int rewind_body(void *userp, curl_off_t offset, int origin)
{
    auto *u = static_cast<Upload *>(userp);
    if (u->whole || offset != 0 || origin != SEEK_SET) {
        return CURL_SEEKFUNC_FAIL;
    }
    u->pos = 0; // not all of it went out: DingTalk cannot have taken it
    return CURL_SEEKFUNC_OK;
}

std::size_t collect(char *data, std::size_t size, std::size_t nmemb, void *userp)
{
    auto *out = static_cast<std::string *>(userp);
    const std::size_t n = size * nmemb;
    if (out->size() + n > kMaxReplyBytes) {
        return 0; // a reply this large is not DingTalk's; abort the transfer
    }
    out->append(data, n);
    return n;
}

Transport classify(CURLcode rc)
{
    switch (rc) {
    case CURLE_OK:
        return Transport::ok;
    case CURLE_OPERATION_TIMEDOUT:
        return Transport::timeout;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return Transport::connect_failed;
    case CURLE_SSL_CONNECT_ERROR: // a reset or close in the handshake, as often as anything
        return Transport::handshake;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return Transport::certificate;
    case CURLE_SEND_ERROR:
    case CURLE_SEND_FAIL_REWIND: // a kept-alive connection closed unanswered: see Upload
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return Transport::dropped;
    default:
        return Transport::other;
    }
}

bool starts_with_nocase(std::string_view s, std::string_view prefix)
{
    return s.size() >= prefix.size() &&
           std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) ==
                      std::tolower(static_cast<unsigned char>(b));
           });
}

bool tls_failure(Transport t)
{
    return t == Transport::handshake || t == Transport::certificate;
}

// Through a proxy, every connection is to the proxy: a failed connect is the proxy's, and so
// is a TLS failure before the proxy answered CONNECT (an https:// proxy's own certificate).
Transport classify(CURLcode rc, const HttpRequest &req, long connect_code)
{
    const Transport t = classify(rc);
    if (req.proxy.empty() || rc == CURLE_OK) {
        return t;
    }
    if (rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_CONNECT) {
        return Transport::proxy_down;
    }
    if (rc == CURLE_PROXY || (connect_code != 0 && connect_code / 100 != 2)) {
        return Transport::proxy_refused;
    }
    if (tls_failure(t) && connect_code == 0 && starts_with_nocase(req.proxy, "https://")) {
        return Transport::proxy_down;
    }
    return t;
}

} // namespace

const char *to_string(Transport t)
{
    switch (t) {
    case Transport::ok:
        return "ok";
    case Transport::timeout:
        return "timeout";
    case Transport::connect_failed:
        return "connect failed";
    case Transport::handshake:
        return "TLS handshake failed";
    case Transport::certificate:
        return "TLS certificate not trusted";
    case Transport::dropped:
        return "connection dropped";
    case Transport::proxy_down:
        return "proxy unreachable";
    case Transport::proxy_refused:
        return "proxy refused";
    case Transport::other:
        break;
    }
    return "transfer failed";
}

std::uint64_t monotonic_ms()
{
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000 +
           static_cast<std::uint64_t>(ts.tv_nsec / 1000000);
}

namespace
{

// The curl handles of one process that are idle between two deliveries, each with its
// kept-alive connection (curl keeps connections in the handle). A thread takes one for each
// request and gives it back after, so there are only as many handles, and connections, as
// requests were ever sent at once, where a handle per thread would keep one per thread.
// A handle serves one certificate store only: curl cannot tell connections verified against
// different stores apart (the store is given by a callback), so a connection a location
// trusting one CA opened must never carry the request of a location trusting another.
// Handing handles from thread to thread is what libcurl allows; sharing one connection cache
// between threads (CURL_LOCK_DATA_CONNECT) is not supported before curl 8 (CURLSHOPT_SHARE(3)),
// so connections stay in their handles and the share holds TLS sessions and DNS answers only.
class Connections
{
public:
    Connections() = default;

    ~Connections()
    {
        for (const Idle &i : idle_) {
            curl_easy_cleanup(i.handle);
        }
        for (const auto &[store, share] : shares_) {
            curl_share_cleanup(share);
        }
    }

    Connections(const Connections &) = delete;
    Connections &operator=(const Connections &) = delete;

    // The handle for `store` used last (its connection is the one most likely still open), or
    // a new one; null when curl cannot make one. Handles idle past their keep-alive are closed.
    CURL *take(const X509_STORE *store)
    {
        std::vector<CURL *> expired;
        CURL *h = nullptr;
        CURLSH *share = nullptr;
        {
            const std::lock_guard<std::mutex> guard(mutex_);
            expired = expire(monotonic_ms());
            const auto last = std::find_if(idle_.rbegin(), idle_.rend(),
                                           [store](const Idle &i) { return i.store == store; });
            if (last != idle_.rend()) {
                h = last->handle;
                idle_.erase(std::next(last).base());
            } else {
                share = share_for(store);
            }
        }
        for (CURL *e : expired) {
            curl_easy_cleanup(e); // closes its connection
        }
        if (share != nullptr && (h = curl_easy_init()) != nullptr) {
            curl_easy_setopt(h, CURLOPT_SHARE, share); // kept by curl_easy_reset
        }
        return h;
    }

    // Closes the handles idle past their keep-alive; the milliseconds until the next one will
    // be, or nothing when none is left.
    std::optional<std::uint64_t> close_expired()
    {
        std::vector<CURL *> expired;
        std::optional<std::uint64_t> next;
        {
            const std::lock_guard<std::mutex> guard(mutex_);
            const std::uint64_t now = monotonic_ms();
            expired = expire(now);
            for (const Idle &i : idle_) {
                const std::uint64_t left = i.since_ms + i.keepalive_ms - now;
                next = std::min(next.value_or(left), left);
            }
        }
        for (CURL *e : expired) {
            curl_easy_cleanup(e);
        }
        return next;
    }

    // Back on the stack; closed instead if it cannot be kept (out of memory).
    void give(CURL *h, const X509_STORE *store, std::chrono::seconds keepalive) noexcept
    {
        const auto ms = static_cast<std::uint64_t>(keepalive.count()) * 1000;
        try {
            const std::lock_guard<std::mutex> guard(mutex_);
            idle_.push_back(Idle{h, store, monotonic_ms(), ms});
        } catch (...) {
            curl_easy_cleanup(h);
        }
    }

private:
    struct Idle {
        CURL *handle;
        const X509_STORE *store; // its connections were verified against, null: none shared
        std::uint64_t since_ms;
        std::uint64_t keepalive_ms;
    };

    // Takes the handles idle past their keep-alive off the stack, in place and in order; the
    // caller closes them, outside the lock. Allocates (and may throw) before changing anything.
    std::vector<CURL *> expire(std::uint64_t now)
    {
        std::vector<CURL *> expired;
        if (std::any_of(idle_.begin(), idle_.end(),
                        [now](const Idle &i) { return now - i.since_ms >= i.keepalive_ms; })) {
            expired.reserve(idle_.size());
        }
        std::size_t kept = 0;
        for (const Idle &i : idle_) {
            if (now - i.since_ms >= i.keepalive_ms) {
                expired.push_back(i.handle);
            } else {
                idle_[kept++] = i;
            }
        }
        idle_.resize(kept);
        return expired;
    }

    // The share of TLS sessions and DNS answers of the handles for `store`, made on first use;
    // null if curl cannot. A resumed session skips the certificate check, so a session verified
    // against one store must never be resumed by a connection meant for another.
    CURLSH *share_for(const X509_STORE *store)
    {
        CURLSH *&share = shares_[store];
        if (share == nullptr && (share = curl_share_init()) != nullptr &&
            (curl_share_setopt(share, CURLSHOPT_LOCKFUNC, lock) != CURLSHE_OK ||
             curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, unlock) != CURLSHE_OK ||
             curl_share_setopt(share, CURLSHOPT_USERDATA, this) != CURLSHE_OK ||
             curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
             curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK)) {
            curl_share_cleanup(share);
            share = nullptr;
        }
        return share;
    }

    // One lock for each kind of data the shares hold, as CURLSHOPT_LOCKFUNC(3) asks.
    static void lock(CURL *, curl_lock_data data, curl_lock_access, void *self)
    {
        static_cast<Connections *>(self)->locks_.at(data).lock();
    }

    static void unlock(CURL *, curl_lock_data data, void *self)
    {
        static_cast<Connections *>(self)->locks_.at(data).unlock();
    }

    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks_;
    std::mutex mutex_;
    std::vector<Idle> idle_; // the most recently given back last
    std::unordered_map<const X509_STORE *, CURLSH *> shares_;
};

// The CAs DingTalk's certificate is checked against, one store per process and bundle, shared
// by every TLS connection (an X509_STORE is reference counted and safe to share between
// threads). libcurl would build one for each connection, parsing the whole bundle each time.
class TrustStores
{
public:
    ~TrustStores()
    {
        for (auto &[key, entry] : stores_) {
            X509_STORE_free(entry.store);
        }
    }

    // The store for a PEM bundle (null: the CAs libcurl would use); null if nothing in it could
    // be read. Known by its address, which the entry keeps from reuse.
    X509_STORE *get(const std::shared_ptr<const std::string> &pem)
    {
        const std::lock_guard<std::mutex> guard(mutex_);
        Entry &entry = stores_[pem.get()];
        if (entry.store == nullptr) {
            // kept only when complete: an exception on the way frees it
            std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(),
                                                                          X509_STORE_free);
            if (store != nullptr &&
                (pem ? add_lazy_certificates(store.get(), *pem) > 0 : system(store.get()))) {
                // as libcurl sets its own (CURLSSLOPT_NO_PARTIALCHAIN not set)
                X509_STORE_set_flags(store.get(),
                                     X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
                entry.pem = pem;
                entry.store = store.release();
            }
        }
        return entry.store;
    }

private:
    // The CA bundle and directory libcurl was built to use (Debian: both, the same CAs), each
    // read lazily; OpenSSL's defaults where libcurl does not say.
    static bool system(X509_STORE *store)
    {
        std::string file;
        std::string dir;
#if LIBCURL_VERSION_NUM >= 0x075400 // 7.84: libcurl says which CAs it would use
        if (CURL *h = curl_easy_init()) {
            const char *f = nullptr;
            const char *d = nullptr;
            curl_easy_getinfo(h, CURLINFO_CAINFO, &f);
            curl_easy_getinfo(h, CURLINFO_CAPATH, &d);
            file = f != nullptr ? f : "";
            dir = d != nullptr ? d : "";
            curl_easy_cleanup(h);
        }
#endif
        if (file.empty() && dir.empty()) {
            return X509_STORE_set_default_paths(store) == 1;
        }
        std::string pem;
        const bool bundle =
            !file.empty() && read_file(file, pem) && add_lazy_certificates(store, pem) > 0;
        const bool directory =
            !dir.empty() && X509_STORE_load_locations(store, nullptr, dir.c_str()) == 1;
        return bundle || directory;
    }

    static bool read_file(const std::string &path, std::string &out)
    {
        std::ifstream in(path, std::ios::binary);
        out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        return !in.bad() && !out.empty();
    }

    struct Entry {
        std::shared_ptr<const std::string> pem;
        X509_STORE *store = nullptr;
    };
    std::mutex mutex_;
    std::unordered_map<const std::string *, Entry> stores_;
};

// Made by global_init in each process that sends (an nginx worker, after the fork).
std::unique_ptr<Connections> connections;
std::unique_ptr<TrustStores> trust_stores;

} // namespace

bool library_init()
{
    // jansson seeds its hash function lazily, racing if two threads parse first at once.
    json_object_seed(0);
    // libcurl's first set-up opens the file SSLKEYLOGFILE names and writes every TLS secret to
    // it. In nginx's master that is the environment nginx was started with, which workers never
    // see (nginx passes them the variables its `env` directives name): hidden from libcurl.
    const char *keylog = std::getenv("SSLKEYLOGFILE");
    const std::string saved = keylog != nullptr ? keylog : "";
    if (keylog != nullptr) {
        unsetenv("SSLKEYLOGFILE");
    }
    const bool ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    if (keylog != nullptr) {
        setenv("SSLKEYLOGFILE", saved.c_str(), 1);
    }
    return ok;
}

bool global_init()
{
    if (!library_init()) {
        return false;
    }
    if (!connections) {
        connections = std::make_unique<Connections>();
        trust_stores = std::make_unique<TrustStores>();
    }
    return true;
}

std::optional<std::chrono::milliseconds> close_idle_connections() noexcept
{
    try {
        const auto next = connections ? connections->close_expired() : std::nullopt;
        if (next) {
            return std::chrono::milliseconds(*next);
        }
    } catch (...) { // no memory to list them: closed at the next request or the next sweep
        return std::chrono::milliseconds(1000);
    }
    return std::nullopt;
}

void global_cleanup()
{
    connections.reset();
    trust_stores.reset();
    curl_global_cleanup();
}

namespace
{

// Each new TLS connection: the process's store for the request's CAs, and no buffers kept
// while the connection is idle.
CURLcode use_trust_store(CURL *, void *ssl_ctx, void *store)
{
    auto *ctx = static_cast<SSL_CTX *>(ssl_ctx);
    SSL_CTX_set1_cert_store(ctx, static_cast<X509_STORE *>(store));
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return CURLE_OK;
}

// The process's store to verify the request's connection against, instead of a store libcurl
// builds for each connection; null where there is none to verify (an http:// URL, verification
// off) or it cannot serve: an https:// proxy, whose certificate libcurl checks against the
// system's CAs but would check against this callback's store too.
X509_STORE *shared_store(const HttpRequest &req)
{
    if (!trust_stores || !req.ssl_verify || starts_with_nocase(req.proxy, "https://") ||
        !starts_with_nocase(req.url, "https://")) {
        return nullptr;
    }
    return trust_stores->get(req.ca_pem);
}

// Verification against `store`: false where libcurl cannot take it (built without OpenSSL).
bool share_trust_store(CURL *h, X509_STORE *store)
{
    if (store == nullptr ||
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, use_trust_store) != CURLE_OK) {
        return false;
    }
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, store);
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr); // libcurl loads nothing itself
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    return true;
}

void set_method(CURL *h, const HttpRequest &req, Upload *upload)
{
    if (req.method != HttpMethod::post) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
        if (req.method == HttpMethod::del) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
        }
        return;
    }
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
    curl_easy_setopt(h, CURLOPT_READDATA, upload);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, rewind_body);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, upload);
}

// Everything the handle needs for one request; the pointers must outlive curl_easy_perform.
void set_options(CURL *h, const HttpRequest &req, X509_STORE *store, curl_slist *headers,
                 char *errbuf, std::string *body, Upload *upload)
{
    const long timeout_ms = static_cast<long>(req.timeout.count() > 0 ? req.timeout.count() : 1);
    const long answer_ms = static_cast<long>(std::max<long long>(req.answer_timeout.count(), 0));
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500 // 7.85: the long form is deprecated from there on
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    // "" is no proxy at all: libcurl would otherwise take http_proxy, https_proxy, all_proxy
    // and no_proxy from the environment; no_proxy it reads even with a proxy set, so that an
    // environment's no_proxy would go around dingtalk_proxy: "" is no exception.
    curl_easy_setopt(h, CURLOPT_PROXY, req.proxy.c_str());
    curl_easy_setopt(h, CURLOPT_NOPROXY, "");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // connecting (TLS included) has the attempt's time; the request then goes out at once (a
    // few kilobytes) and its answer may take the answer's time on top
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms + answer_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, req.fresh_connection ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    // A connection idle longer than this is closed rather than reused (DingTalk may have closed
    // it already); with 0, each connection is closed after its request.
    curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, static_cast<long>(req.keepalive.count()));
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, req.keepalive.count() > 0 ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    set_method(h, req, upload);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ngx_http_dingtalk_module");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, req.ssl_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, req.ssl_verify ? 2L : 0L);
    if (share_trust_store(h, store)) {
        return;
    }
    if (req.ca_pem) {
        curl_blob blob;
        blob.data = const_cast<char *>(req.ca_pem->data());
        blob.len = req.ca_pem->size();
        blob.flags = CURL_BLOB_NOCOPY; // req outlives the transfer
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_CAPATH, nullptr); // only the configured CAs
    }
}

void read_outcome(CURL *h, CURLcode rc, const HttpRequest &req, const char *errbuf,
                  HttpReply &reply)
{
    reply.ended_ms = monotonic_ms();
    long connect_code = 0;
    curl_easy_getinfo(h, CURLINFO_HTTP_CONNECTCODE, &connect_code);
    reply.transport = classify(rc, req, connect_code);
    long request_bytes = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_bytes);
    // A refused CONNECT counts as a request too, but nothing went further than the proxy.
    reply.sent = request_bytes > 0 && reply.transport != Transport::proxy_down &&
                 reply.transport != Transport::proxy_refused;
    if (reply.transport == Transport::proxy_refused) {
        reply.proxy_status = connect_code;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &reply.status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &reply.new_connections);
    if (rc != CURLE_OK) {
        // curl's own text for the code is generic; the error buffer adds detail (peer address,
        // certificate problem). Neither holds the query string; callers redact anyway.
        reply.error = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
        if (rc == CURLE_WRITE_ERROR) {
            reply.too_large = true;
            reply.error = "reply larger than 64 KiB";
        }
    }
}

} // namespace

namespace
{

// A handle taken for one request, given back however the request ends (an exception too),
// without the pointers into the request's stack frame it was given.
struct Lease {
    CURL *handle;
    const X509_STORE *store;
    std::chrono::seconds keepalive;
    ~Lease()
    {
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
        curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(handle, CURLOPT_CAINFO_BLOB, nullptr);
        curl_easy_setopt(handle, CURLOPT_READDATA, nullptr);
        curl_easy_setopt(handle, CURLOPT_SEEKDATA, nullptr);
        connections->give(handle, store, keepalive);
    }
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
};

} // namespace

HttpReply http_post(const HttpRequest &req)
{
    HttpReply reply;
    X509_STORE *store = shared_store(req);
    CURL *h = connections ? connections->take(store) : nullptr;
    if (h == nullptr) {
        reply.error = connections ? "curl_easy_init failed" : "global_init() was not called";
        return reply;
    }
    const Lease lease{h, store, req.keepalive};
    curl_easy_reset(h); // keeps the connection and the share: that is the point of reusing it

    std::unique_ptr<curl_slist, SlistDeleter> headers(curl_slist_append(
        nullptr, req.method == HttpMethod::post ? "Content-Type: application/json; charset=utf-8"
                                                : "Accept: application/json"));
    // Without this curl waits up to a second for "100 Continue" on bodies over 1 KiB.
    curl_slist_append(headers.get(), "Expect:");
    if (!req.authorization.empty()) {
        curl_slist_append(headers.get(), ("Authorization: " + req.authorization).c_str());
    }

    char errbuf[CURL_ERROR_SIZE] = {0};
    Upload upload{req.body};
    set_options(h, req, store, headers.get(), errbuf, &reply.body, &upload);
    const CURLcode rc = curl_easy_perform(h);
    read_outcome(h, rc, req, errbuf, reply);
    reply.whole = upload.whole && reply.sent;
    return reply;
}

namespace
{

constexpr std::string_view kProxySchemes[] = {"http://", "https://", "socks5h://"};

// Where the user:password@ of a URL ends: the last '@' after the scheme (an '@' later on, which
// a proxy URL may not have anyway, only hides more), or npos.
std::size_t userinfo_end(std::string_view url, std::size_t host_at)
{
    const std::size_t at = url.rfind('@');
    return at != std::string_view::npos && at >= host_at ? at : std::string_view::npos;
}

std::size_t host_start(std::string_view url)
{
    const std::size_t scheme_end = url.find("://");
    return scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
}

// host:port after the credentials, "" when it is good. The port is required: libcurl's
// default for every proxy scheme is 1080, which nobody expects of an http:// proxy.
std::string check_host_port(std::string_view hostport)
{
    std::size_t colon = hostport.rfind(':');
    if (!hostport.empty() && hostport.front() == '[') { // [IPv6]:port
        const std::size_t close = hostport.find(']');
        if (close == std::string_view::npos || close < 2) {
            return "has a bad IPv6 address";
        }
        colon = hostport.size() > close + 1 && hostport[close + 1] == ':' ? close + 1
                                                                          : std::string_view::npos;
    }
    if (hostport.empty() || colon == 0) {
        return "has no host name";
    }
    const std::string_view host = hostport.substr(0, colon);
    const bool ipv6 = host.front() == '[';
    const auto allowed = [ipv6](char c) {
        return ipv6 ? std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.'
                    : std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ||
                          c == '_';
    };
    if (!std::all_of(host.begin() + (ipv6 ? 1 : 0), host.end() - (ipv6 ? 1 : 0), allowed)) {
        return ipv6 ? "has a bad IPv6 address" : "has a bad host name";
    }
    if (colon == std::string_view::npos || colon + 1 == hostport.size()) {
        return "needs a port (http://proxy.example:3128)";
    }
    long port = 0;
    for (const char c : hostport.substr(colon + 1)) {
        if (c < '0' || c > '9' || port > 65535) {
            return "has a bad port";
        }
        port = port * 10 + (c - '0');
    }
    return port >= 1 && port <= 65535 ? "" : "has a bad port";
}

std::string check_proxy(std::string_view url)
{
    if (std::none_of(std::begin(kProxySchemes), std::end(kProxySchemes),
                     [&](std::string_view s) { return starts_with_nocase(url, s); })) {
        return starts_with_nocase(url, "socks")
                   ? "must be an http://, https:// or socks5h:// URL (socks5h://: the proxy, "
                     "not this host, resolves DingTalk's name)"
                   : "must be an http://, https:// or socks5h:// URL";
    }
    for (const char c : url) {
        const auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F || c == '#' || c == '?') {
            return "must be a URL without spaces, queries, fragments or non-ASCII bytes";
        }
    }
    const std::size_t start = host_start(url);
    const std::size_t creds = userinfo_end(url, start);
    if (creds != std::string_view::npos &&
        url.substr(start, creds - start).find_first_of("@/") != std::string_view::npos) {
        return "must have its user and password percent-encoded (%40 for @, %2F for /)";
    }
    const std::size_t host_at = creds == std::string_view::npos ? start : creds + 1;
    const std::size_t path = url.find('/', host_at);
    if (path != std::string_view::npos && path + 1 != url.size()) {
        return "must be scheme://[user:password@]host:port, without a path";
    }
    return check_host_port(url.substr(host_at, path - host_at));
}

} // namespace

std::string hide_credentials(std::string_view url)
{
    const std::size_t start = host_start(url);
    const std::size_t creds = userinfo_end(url, start);
    if (creds == std::string_view::npos) {
        return std::string(url);
    }
    return std::string(url.substr(0, start)) + "***" + std::string(url.substr(creds));
}

std::optional<Proxy> parse_proxy(std::string_view url, std::string &error)
{
    const std::string why = check_proxy(url);
    if (!why.empty()) {
        error = why + ": \"" + hide_credentials(url) + "\"";
        return std::nullopt;
    }
    Proxy p;
    p.url = std::string(url);
    p.shown = hide_credentials(url);
    const std::size_t start = host_start(url);
    const std::size_t creds = userinfo_end(url, start);
    if (creds != std::string_view::npos) {
        const std::string_view userinfo = url.substr(start, creds - start);
        const std::size_t colon = userinfo.find(':');
        p.user = std::string(userinfo.substr(0, colon));
        if (colon != std::string_view::npos) {
            p.password = std::string(userinfo.substr(colon + 1));
        }
    }
    return p;
}

} // namespace dingtalk
