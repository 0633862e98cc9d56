// One webhook, start to finish, as the pool thread runs it: parse, render, sign, POST, and read
// DingTalk's verdict. Knows nothing of nginx; the glue copies everything in and reads the report.
#pragma once

#include "fold.hpp"
#include "record.hpp"
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
    delivered,     // DingTalk answered errcode 0
    posted_before, // an earlier request of the same notification got every alert posted
    bad_request,   // the body is not an Alertmanager notification; nothing sent
    refused,       // DingTalk answered an errcode other than 0 and 130101
    throttled,     // errcode 130101: over 20 messages a minute
    busy,          // errcode -1: DingTalk is busy ("系统繁忙"), try again later
    unreachable,   // no usable answer: connect, TLS, dropped, HTTP error, not DingTalk's JSON
    timeout,       // no answer within the timeout, and the request had not gone out whole
    doubtful,      // the whole request reached DingTalk and no answer came (the connection closed,
                   // or dingtalk_answer_timeout passed): DingTalk may have posted it
    late,          // the attempt waited in the thread pool's queue until no time was left
    internal,      // a bug or resource failure on our side
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

    // Runs in a pool thread; never throws. Each run does what the delivery needs next:
    // - the first parses the body, keys its alerts and renders its messages; it sends nothing,
    //   so that the caller can look the notification up (key(), alert_keys()) first;
    // - after resume(), one renders again, without the alerts posted before;
    // - after go(), each makes at most one attempt of the first message not taken, which ends
    //   sending by deadline_ms (monotonic_ms(), the delivery's end) and takes its part of what
    //   is left (attempt_budget); started too late, it sends nothing, so the rate limit can count
    //   on that deadline whatever the queue did. Once the request went out whole, the attempt
    //   waits for DingTalk's answer up to dingtalk_answer_timeout, whatever the deadline.
    void run(std::uint64_t deadline_ms) noexcept;

    // After the first run: the notification's key for this robot (0 for a bad body), and each
    // alert's key by position in the notification's alerts.
    std::uint64_t key() const { return key_; }
    const std::vector<std::uint64_t> &alert_keys() const { return keys_; }
    const std::vector<std::uint64_t> &record_keys() const { return record_keys_; } // ascending

    // The notification was sent in part before: its alerts' states (by position) and the
    // messages DingTalk took of it. The next run renders only what is left to send.
    void resume(const std::vector<Posted> &states, std::size_t messages_before);
    bool rendered() const { return !rerender_; }

    // Cleared to send (every rate-limit slot reserved): the body is no longer needed.
    void go();
    // Messages not yet taken.
    std::size_t left() const { return requests_.size() - next_; }
    // The keys of the alerts the message to send next shows or counts.
    const std::vector<std::uint64_t> &current_alerts() const { return covers_.at(next_); }
    // The keys of the alerts of the message DingTalk took last.
    const std::vector<std::uint64_t> &taken_alerts() const { return covers_.at(next_ - 1); }
    // The last attempt's request reached DingTalk whole and no answer came: it may be posted.
    bool in_doubt() const { return report_.outcome == Outcome::doubtful; }
    // A message in doubt for the second time is never sent a third time: its alerts count as
    // posted, and this request ends with 502 (it may have been posted, twice or not at all).
    void give_up_in_doubt();
    // Messages are left that will not be sent now (no time, no queue): a 503, however many
    // were taken, so that Alertmanager retries (and the retry resumes after those).
    void stop_short();
    // Every alert was posted before: nothing to send, and the answer is 200.
    void posted_before();

    // dingtalk_fold: the notification's part of a folded message, when it goes as one message.
    const std::optional<Section> &section() const { return section_; }
    // The next attempt sends this folded message (of several notifications) instead of its
    // own; what it did is in the report, and the caller says what became of this one.
    void send_fold(std::string request_body) { fold_ = std::move(request_body); }
    bool sending_fold() const { return !fold_.empty(); }
    // This notification went out in a folded message DingTalk took: every message taken.
    void posted_in_fold();

    // The whole time the request took, holds and retries included (the caller's clock).
    void set_elapsed(std::chrono::milliseconds total) { report_.elapsed = total; }

    const Report &report() const { return report_; }

    // Where the thread is, for a worker that waits past a deadline (read from another thread).
    enum class Phase { queued, preparing, sending, done };
    Phase phase() const { return phase_.load(std::memory_order_relaxed); }
    void set_queued() { phase_.store(Phase::queued, std::memory_order_relaxed); }

private:
    bool prepare(); // parse, key and render; false (and a 400 report) for a bad body
    void render(const Notification &n);
    void attempt(std::uint64_t deadline_ms);
    void carry(Report &r) const;
    Mentions mentions_for(const Notification &n);

    Target target_;
    std::string body_; // kept until go(): a resume parses it again
    bool prepared_ = false;
    bool rerender_ = false;
    std::uint64_t key_ = 0;
    std::vector<std::uint64_t> keys_;
    std::vector<std::uint64_t> record_keys_;
    std::vector<bool> posted_;          // by position: posted before (or counted as posted)
    std::size_t before_ = 0;            // messages taken before
    std::vector<std::string> requests_; // rendered once, re-signed on each attempt
    std::vector<std::vector<std::uint64_t>> covers_; // the alerts each message shows or counts
    std::size_t next_ = 0;                           // the first message not taken
    bool fresh_ = false; // the next attempt goes on a new connection (after one in doubt)
    std::optional<Section> section_;
    std::string fold_; // the folded message the next attempt sends, when not empty
    Report report_;
    std::atomic<Phase> phase_{Phase::queued};
};

const char *to_string(Delivery::Phase p);

// A small JSON reply body for answers the glue gives on its own (405, 503 ...).
std::string reply_json(bool ok, std::string_view reason);

} // namespace dingtalk
