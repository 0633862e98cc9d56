// One HTTP POST over libcurl. The pool threads of a worker process take their curl handles from
// one shared stack of idle ones, each with its kept-alive connection to DingTalk: as many
// connections as deliveries are sent at once, not one per thread. TLS sessions and DNS answers
// are shared by all handles (curl's share interface), so a new connection resumes a session.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dingtalk
{

// A forward proxy (dingtalk_proxy): http://, https:// or socks5h://, with optional
// user:password@. An https:// target goes through it with CONNECT, so DingTalk's certificate
// is still verified end to end.
struct Proxy {
    std::string url;      // as configured, for libcurl
    std::string shown;    // for logs and errors: the credentials replaced by "***"
    std::string password; // as written in the URL, so that any text can be cleaned of it
    std::string user;     // the same (an API key may be the user, with no password)
};

// A proxy URL as dingtalk_proxy takes it; nothing (and why, without credentials) otherwise.
std::optional<Proxy> parse_proxy(std::string_view url, std::string &error);

// The URL with its user:password@ (if any) replaced by "***@".
std::string hide_credentials(std::string_view url);

enum class HttpMethod { post, get, del }; // del: DELETE, with no body

struct HttpRequest {
    std::string url;
    HttpMethod method = HttpMethod::post;
    std::string_view body; // the caller's, for the whole call: not copied (POST only)
    // An Authorization header's value ("" = none): Alertmanager's credential. Never logged.
    std::string authorization;
    std::chrono::milliseconds timeout{10000}; // to connect and send the request
    // Then, once the whole request went out, to wait for the answer: until it comes, DingTalk
    // may post the message, so nothing is sent again meanwhile.
    std::chrono::milliseconds answer_timeout{300000};
    bool fresh_connection = false; // a new connection, not one kept alive (a send once more)
    bool ssl_verify = true;
    std::shared_ptr<const std::string> ca_pem; // trusted CAs (PEM) instead of the system's
    std::string proxy; // "" = straight to the URL, whatever http(s)_proxy in the environment say
    // A kept-alive connection idle longer than this is closed rather than used; 0 = a new
    // connection for each request, closed after it.
    std::chrono::seconds keepalive{60};
};

enum class Transport {
    ok,             // an HTTP reply arrived (any status)
    timeout,        // no complete reply within the timeout
    connect_failed, // refused, unreachable, DNS
    handshake,      // the TLS handshake broke off (a reset, a close): may pass next time
    certificate,    // DingTalk's certificate was not trusted: will not pass by itself
    dropped,        // connection closed or broken mid-exchange
    proxy_down,     // the proxy could not be reached (refused, unreachable, DNS)
    proxy_refused,  // the proxy would not open the way to DingTalk (CONNECT answer, SOCKS error)
    other,
};

struct HttpReply {
    Transport transport = Transport::other;
    std::string error; // what went wrong; never holds the URL
    long status = 0;
    long proxy_status = 0; // the proxy's HTTP answer to CONNECT, when it refused (403, 407 ...)
    std::string body;
    long new_connections = 0; // 0 when an existing connection was reused
    bool sent = false;        // the request left: DingTalk may have it, whatever came back
    // Every byte of the request was handed to the connection (libcurl never sends it again: a
    // kept-alive connection that closes unanswered after it is a failure, not a resend). With
    // no answer, DingTalk may or may not have posted the message.
    bool whole = false;
    bool too_large = false;     // the reply was longer than 64 KiB: the transfer was stopped
    std::uint64_t ended_ms = 0; // monotonic_ms() when the exchange ended
};

// Milliseconds of CLOCK_MONOTONIC: the clock nginx's timers (ngx_current_msec) run on.
std::uint64_t monotonic_ms();

// One request, a POST of a JSON body unless req.method says otherwise.
HttpReply http_post(const HttpRequest &req);

// libcurl's and jansson's set-up (OpenSSL's through libcurl), for the process that forks the
// ones that send (nginx's master, after reading the configuration): done before the fork, its
// pages are shared with the workers instead of touched by each. Returns false on failure.
bool library_init();

// Process-wide set-up of the libraries (library_init, counted again if done before the fork) and
// the connections' cache, before any thread sends (in nginx: in each worker process, after
// the fork). Returns false on failure. A second call changes nothing.
bool global_init();
// Closes the kept-alive connections idle past their keep-alive (any thread, while others send);
// how long until the next idle one will be, or nothing when no connection is left open.
std::optional<std::chrono::milliseconds> close_idle_connections() noexcept;

// Closes the kept-alive connections; no thread may be sending.
void global_cleanup();

const char *to_string(Transport t);

} // namespace dingtalk
