// One webhook, start to finish, as the pool thread runs it: parse, render, sign, POST, and read
// DingTalk's verdict. Knows nothing of nginx; the glue copies everything in and reads the report.
#pragma once

#include "render.hpp"
#include "sender.hpp"
#include "settings.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dingtalk
{

// Where one webhook goes: the robot's credentials (evaluated per request, never logged) and the
// location's settings.
struct Target {
    std::shared_ptr<const Settings> settings; // required
    std::string token;
    std::string secret; // "" = no signing
};

enum class Outcome {
    delivered,   // DingTalk answered errcode 0
    bad_request, // the body is not an Alertmanager notification; nothing sent
    refused,     // DingTalk answered an errcode other than 0 and 130101
    throttled,   // errcode 130101: over 20 messages a minute
    busy,        // errcode -1: DingTalk is busy ("系统繁忙"), try again later
    unreachable, // no usable answer: connect, TLS, dropped, HTTP error, not DingTalk's JSON
    timeout,     // no answer within the timeout
    late,        // the attempt waited in the thread pool's queue until no time was left
    internal,    // a bug or resource failure on our side
};

const char *to_string(Outcome o);

struct Report {
    Outcome outcome = Outcome::internal;
    int http_status = 500;       // what Alertmanager gets
    std::string reason;          // one line, no secrets; for the log (and verbose replies)
    std::string category;        // the same without what only the log should tell (an address, a
                                 // library's words, DingTalk's errmsg); "" when reason has none
    std::optional<long> errcode; // DingTalk's, when it answered with one
    std::string errmsg;          // DingTalk's, sanitized
    std::size_t alerts = 0;      // in the notification
    std::size_t shown = 0;       // in the messages
    std::size_t messages = 1;    // the notification's (dingtalk_max_messages)
    std::size_t taken = 0;       // of them DingTalk took, from the first (earlier requests' too)
    long attempts = 0;
    long message_attempts = 0; // of the message now being sent (retry_delay counts these)
    std::string mentioned;     // describe_mentions(): who, or why nobody; "" without rules/sources
    long new_connections = 0;
    std::chrono::milliseconds elapsed{0};
    bool transient = false;     // worth trying again soon
    bool sent = false;          // the last attempt's request left (it may have arrived)
    std::uint64_t ended_ms = 0; // when the last attempt ended (monotonic_ms())

    // The reply's body: the category of what happened (the reason too when verbose).
    std::string reply_json(bool verbose = false) const;

    // One log line (without a prefix): what happened, to how many alerts, and why.
    std::string summary() const;
};

// What DingTalk's reply means. `http` is one finished exchange, through `proxy` when not null.
Report interpret(const HttpReply &http, const Proxy *proxy = nullptr);

// Builds the full send URL (token, and signature when a secret is set).
std::string send_url(const Target &t);

// Removes every occurrence of the secrets (token, signing secret, proxy password) from text
// that may reach a log or a reply.
std::string redact(std::string text, const Target &t);

// When to try again after a failed attempt, or nothing when the failure is permanent or the
// time left (timeout minus elapsed, counted from the first attempt) is too short to try.
std::optional<std::chrono::milliseconds> retry_delay(const Report &last,
                                                     std::chrono::milliseconds elapsed,
                                                     std::chrono::milliseconds timeout);

// How long one attempt may take, given what is left of the delivery timeout: not all of it
// while a lot is left, so that a DingTalk that hangs once still leaves time for a retry.
std::chrono::milliseconds attempt_budget(std::chrono::milliseconds remaining);

// Less than this left of the delivery's time: no retry is planned.
constexpr std::chrono::milliseconds kShortestAttempt{300};
// Less than this left when the thread picks an attempt up (it waited in the queue): no send.
constexpr std::chrono::milliseconds kLatestStart{50};

class Delivery
{
public:
    Delivery(Target target, std::string body) : target_(std::move(target)), body_(std::move(body))
    {
    }

    // Runs in a pool thread; never throws. The first run parses and renders; every run makes
    // at most one attempt, which ends by deadline_ms (monotonic_ms(), the delivery's end) and
    // takes its part of what is left (attempt_budget); started too late, it sends nothing. So
    // the rate limit can count on that deadline whatever the queue did. Each attempt sends the
    // first message not yet taken. A notification of several messages sends nothing in its
    // first run: the caller reserves their rate-limit slots, then calls send_from().
    void run(std::uint64_t deadline_ms) noexcept;

    // Several messages, not yet cleared to go.
    bool needs_go_ahead() const { return requests_.size() > 1 && !cleared_; }
    // Clears them to go, skipping the first `taken` (an earlier request's).
    void send_from(std::size_t taken);
    // Messages not yet taken (after a run that took one, those still to send).
    std::size_t left() const { return requests_.size() - next_; }
    std::uint64_t digest() const { return digest_; } // of the body, with several messages
    // Messages are left that will not be sent now (no time, no queue): a 503, however many
    // were taken, so that Alertmanager retries (and the retry resumes after those).
    void stop_short();

    // The whole time the request took, holds and retries included (the caller's clock).
    void set_elapsed(std::chrono::milliseconds total) { report_.elapsed = total; }

    const Report &report() const { return report_; }

    // Where the thread is, for a worker that waits past a deadline (read from another thread).
    enum class Phase { queued, preparing, sending, done };
    Phase phase() const { return phase_.load(std::memory_order_relaxed); }
    void set_queued() { phase_.store(Phase::queued, std::memory_order_relaxed); }

private:
    bool prepare(); // parse and render; false (and a 400 report) for a bad body
    void attempt(std::uint64_t deadline_ms);
    void carry(Report &r) const;
    Mentions mentions_for(const Notification &n);

    Target target_;
    std::string body_;
    std::vector<std::string> requests_; // rendered once, re-signed on each attempt
    std::size_t next_ = 0;              // the first message not taken
    bool cleared_ = false;              // send_from() was called
    std::uint64_t digest_ = 0;
    Report report_;
    std::atomic<Phase> phase_{Phase::queued};
};

const char *to_string(Delivery::Phase p);

// A small JSON reply body for answers the glue gives on its own (405, 503 ...).
std::string reply_json(bool ok, std::string_view reason);

} // namespace dingtalk
