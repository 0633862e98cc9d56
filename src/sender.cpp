#include "sender.hpp"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <ctime>
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
// Handing handles from thread to thread is what libcurl allows; sharing one connection cache
// between threads (CURL_LOCK_DATA_CONNECT) is not supported before curl 8 (CURLSHOPT_SHARE(3)),
// so connections stay in their handles and the share holds TLS sessions and DNS answers only.
class Connections
{
public:
    Connections() : share_(curl_share_init())
    {
        if (share_ == nullptr ||
            curl_share_setopt(share_, CURLSHOPT_LOCKFUNC, lock) != CURLSHE_OK ||
            curl_share_setopt(share_, CURLSHOPT_UNLOCKFUNC, unlock) != CURLSHE_OK ||
            curl_share_setopt(share_, CURLSHOPT_USERDATA, this) != CURLSHE_OK ||
            curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
            curl_share_setopt(share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
            ok_ = false;
        }
    }

    ~Connections()
    {
        for (const Idle &i : idle_) {
            curl_easy_cleanup(i.handle);
        }
        if (share_ != nullptr) {
            curl_share_cleanup(share_);
        }
    }

    Connections(const Connections &) = delete;
    Connections &operator=(const Connections &) = delete;

    bool ok() const { return ok_; }

    // The handle used last (its connection is the one most likely still open), or a new one;
    // null when curl cannot make one. Handles idle past their keep-alive are closed here.
    CURL *take()
    {
        std::vector<CURL *> expired;
        CURL *h = nullptr;
        {
            const std::lock_guard<std::mutex> guard(mutex_);
            const std::uint64_t now = monotonic_ms();
            std::size_t kept = 0; // in place, in order: no allocation unless one expired
            for (const Idle &i : idle_) {
                if (now - i.since_ms >= i.keepalive_ms) {
                    expired.push_back(i.handle);
                } else {
                    idle_[kept++] = i;
                }
            }
            idle_.resize(kept);
            if (!idle_.empty()) {
                h = idle_.back().handle;
                idle_.pop_back();
            }
        }
        for (CURL *e : expired) {
            curl_easy_cleanup(e); // closes its connection
        }
        if (h == nullptr && (h = curl_easy_init()) != nullptr) {
            curl_easy_setopt(h, CURLOPT_SHARE, share_); // kept by curl_easy_reset
        }
        return h;
    }

    // Back on the stack; closed instead if it cannot be kept (out of memory).
    void give(CURL *h, std::chrono::seconds keepalive) noexcept
    {
        const auto ms = static_cast<std::uint64_t>(keepalive.count()) * 1000;
        try {
            const std::lock_guard<std::mutex> guard(mutex_);
            idle_.push_back(Idle{h, monotonic_ms(), ms});
        } catch (...) {
            curl_easy_cleanup(h);
        }
    }

private:
    struct Idle {
        CURL *handle;
        std::uint64_t since_ms;
        std::uint64_t keepalive_ms;
    };

    // One lock for each kind of data the share holds, as CURLSHOPT_LOCKFUNC(3) asks.
    static void lock(CURL *, curl_lock_data data, curl_lock_access, void *self)
    {
        static_cast<Connections *>(self)->locks_.at(data).lock();
    }

    static void unlock(CURL *, curl_lock_data data, void *self)
    {
        static_cast<Connections *>(self)->locks_.at(data).unlock();
    }

    CURLSH *share_;
    bool ok_ = true;
    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks_;
    std::mutex mutex_;
    std::vector<Idle> idle_; // the most recently given back last
};

// The CAs DingTalk's certificate is checked against, parsed once per process and shared by every
// TLS connection (an X509_STORE is reference counted and safe to share between threads). libcurl
// would build one for each connection: the system's 140-odd CAs take some 2 MB each time.
class TrustStores
{
public:
    ~TrustStores()
    {
        for (auto &[key, entry] : stores_) {
            X509_STORE_free(entry.store);
        }
    }

    // The store for a PEM bundle (null: the CAs libcurl would use, found with `h`); null if
    // nothing in it could be read. Known by its address, which the entry keeps from reuse.
    X509_STORE *get(CURL *h, const std::shared_ptr<const std::string> &pem)
    {
        const std::lock_guard<std::mutex> guard(mutex_);
        Entry &entry = stores_[pem.get()];
        if (entry.store == nullptr) {
            entry.pem = pem;
            X509_STORE *store = entry.store = pem ? pem_store(*pem) : system_store(h);
            if (store != nullptr) {
                // as libcurl sets its own (CURLSSLOPT_NO_PARTIALCHAIN not set)
                X509_STORE_set_flags(store, X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
            }
        }
        return entry.store;
    }

private:
    static X509_STORE *pem_store(const std::string &pem)
    {
        X509_STORE *store = X509_STORE_new();
        BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
        STACK_OF(X509_INFO) *infos =
            bio != nullptr ? PEM_X509_INFO_read_bio(bio, nullptr, nullptr, nullptr) : nullptr;
        int added = 0;
        for (int i = 0; store != nullptr && i < sk_X509_INFO_num(infos); ++i) {
            const X509_INFO *info = sk_X509_INFO_value(infos, i);
            added += info->x509 != nullptr && X509_STORE_add_cert(store, info->x509) == 1;
            if (info->crl != nullptr) {
                X509_STORE_add_crl(store, info->crl);
            }
        }
        sk_X509_INFO_pop_free(infos, X509_INFO_free);
        BIO_free(bio);
        if (added == 0) {
            X509_STORE_free(store);
            return nullptr;
        }
        return store;
    }

    static X509_STORE *system_store(CURL *h)
    {
        X509_STORE *store = X509_STORE_new();
        if (store == nullptr) {
            return nullptr;
        }
        const char *file = nullptr;
        const char *dir = nullptr;
#if LIBCURL_VERSION_NUM >= 0x075400 // 7.84: libcurl says which CAs it would use
        curl_easy_getinfo(h, CURLINFO_CAINFO, &file);
        curl_easy_getinfo(h, CURLINFO_CAPATH, &dir);
#else
        (void)h;
#endif
        const int loaded = file == nullptr && dir == nullptr
                               ? X509_STORE_set_default_paths(store)
                               : X509_STORE_load_locations(store, file, dir);
        if (loaded != 1) {
            X509_STORE_free(store);
            return nullptr;
        }
        return store;
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

bool global_init()
{
    // jansson seeds its hash function lazily, racing if two threads parse first at once.
    json_object_seed(0);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return false;
    }
    if (!connections) {
        connections = std::make_unique<Connections>();
        trust_stores = std::make_unique<TrustStores>();
    }
    return connections->ok();
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

// Verification against the shared store instead of a store libcurl builds for the connection:
// false where that cannot be (libcurl without OpenSSL; an https:// proxy, whose certificate is
// checked against the system's CAs while libcurl would give it this callback's store too) or
// need not be (an http:// URL: no store is loaded for it).
bool share_trust_store(CURL *h, const HttpRequest &req)
{
    if (!trust_stores || starts_with_nocase(req.proxy, "https://") ||
        !starts_with_nocase(req.url, "https://")) {
        return false;
    }
    X509_STORE *store = trust_stores->get(h, req.ca_pem);
    if (store == nullptr ||
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, use_trust_store) != CURLE_OK) {
        return false;
    }
    curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, store);
    curl_easy_setopt(h, CURLOPT_CAINFO, nullptr); // libcurl loads nothing itself
    curl_easy_setopt(h, CURLOPT_CAPATH, nullptr);
    return true;
}

// Everything the handle needs for one POST; the pointers must outlive curl_easy_perform.
void set_options(CURL *h, const HttpRequest &req, curl_slist *headers, char *errbuf,
                 std::string *body)
{
    const long timeout_ms = static_cast<long>(req.timeout.count() > 0 ? req.timeout.count() : 1);
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
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    // A connection idle longer than this is closed rather than reused (DingTalk may have closed
    // it already); with 0, each connection is closed after its request.
    curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, static_cast<long>(req.keepalive.count()));
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, req.keepalive.count() > 0 ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ngx_http_dingtalk_module");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, req.ssl_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, req.ssl_verify ? 2L : 0L);
    if (req.ssl_verify && share_trust_store(h, req)) {
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
    std::chrono::seconds keepalive;
    ~Lease()
    {
        curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, nullptr);
        curl_easy_setopt(handle, CURLOPT_HTTPHEADER, nullptr);
        curl_easy_setopt(handle, CURLOPT_CAINFO_BLOB, nullptr);
        connections->give(handle, keepalive);
    }
    Lease(const Lease &) = delete;
    Lease &operator=(const Lease &) = delete;
};

} // namespace

HttpReply http_post(const HttpRequest &req)
{
    HttpReply reply;
    CURL *h = connections ? connections->take() : nullptr;
    if (h == nullptr) {
        reply.error = connections ? "curl_easy_init failed" : "global_init() was not called";
        return reply;
    }
    const Lease lease{h, req.keepalive};
    curl_easy_reset(h); // keeps the connection and the share: that is the point of reusing it

    std::unique_ptr<curl_slist, SlistDeleter> headers(
        curl_slist_append(nullptr, "Content-Type: application/json; charset=utf-8"));
    // Without this curl waits up to a second for "100 Continue" on bodies over 1 KiB.
    curl_slist_append(headers.get(), "Expect:");

    char errbuf[CURL_ERROR_SIZE] = {0};
    set_options(h, req, headers.get(), errbuf, &reply.body);
    const CURLcode rc = curl_easy_perform(h);
    read_outcome(h, rc, req, errbuf, reply);
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
