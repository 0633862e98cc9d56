#include "sender.hpp"

#include <curl/curl.h>
#include <jansson.h>

#include <ctime>
#include <memory>

namespace dingtalk
{

namespace
{

constexpr std::size_t kMaxReplyBytes = 64 * 1024;

struct CurlEasy {
    CURL *handle = curl_easy_init();
    ~CurlEasy()
    {
        if (handle != nullptr) {
            curl_easy_cleanup(handle);
        }
    }
};

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
    case CURLE_COULDNT_RESOLVE_PROXY:
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

bool global_init()
{
    // jansson seeds its hash function lazily, racing if two threads parse first at once.
    json_object_seed(0);
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

void global_cleanup()
{
    curl_global_cleanup();
}

HttpReply http_post(const HttpRequest &req)
{
    thread_local CurlEasy easy;
    HttpReply reply;
    if (easy.handle == nullptr) {
        reply.error = "curl_easy_init failed";
        return reply;
    }
    CURL *h = easy.handle;
    curl_easy_reset(h); // keeps the connection cache: that is the point of a per-thread handle

    std::unique_ptr<curl_slist, SlistDeleter> headers(
        curl_slist_append(nullptr, "Content-Type: application/json; charset=utf-8"));
    // Without this curl waits up to a second for "100 Continue" on bodies over 1 KiB.
    curl_slist_append(headers.get(), "Expect:");

    char errbuf[CURL_ERROR_SIZE] = {0};
    const long timeout_ms = static_cast<long>(req.timeout.count() > 0 ? req.timeout.count() : 1);

    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
#if LIBCURL_VERSION_NUM >= 0x075500 // 7.85: the long form is deprecated from there on
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ngx_http_dingtalk_module");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply.body);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, req.ssl_verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, req.ssl_verify ? 2L : 0L);
    if (req.ca_pem) {
        curl_blob blob;
        blob.data = const_cast<char *>(req.ca_pem->data());
        blob.len = req.ca_pem->size();
        blob.flags = CURL_BLOB_NOCOPY; // req outlives the transfer
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_CAPATH, nullptr); // only the configured CAs
    }

    const CURLcode rc = curl_easy_perform(h);
    reply.ended_ms = monotonic_ms();
    reply.transport = classify(rc);
    long request_bytes = 0;
    curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &request_bytes);
    reply.sent = request_bytes > 0;
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
    // The handle must not keep pointers into this call's stack after we return.
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, nullptr);
    return reply;
}

} // namespace dingtalk
