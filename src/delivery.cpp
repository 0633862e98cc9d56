#include "delivery.hpp"

#include "alert.hpp"
#include "sign.hpp"
#include "text.hpp"
#include "view.hpp"

#include "json.hpp"

#include <algorithm>
#include <exception>
#include <memory>

namespace dingtalk
{

namespace
{

// 310000 covers three security settings; DingTalk's errmsg says which.
const char *security_hint(const std::string &errmsg)
{
    if (errmsg.find("keyword") != std::string::npos) {
        return "the robot requires one of its custom keywords in every message: set "
               "dingtalk_keyword";
    }
    if (errmsg.find("sign") != std::string::npos || errmsg.find("timestamp") != std::string::npos) {
        return "the signature does not match: check dingtalk_secret and the clock";
    }
    if (errmsg.find("whitelist") != std::string::npos || errmsg.rfind("ip ", 0) == 0) {
        return "this address is not in the robot's IP allow-list";
    }
    return "check the robot's security settings: keywords (dingtalk_keyword), signature "
           "(dingtalk_secret) or IP allow-list";
}

const char *hint(long errcode, const std::string &errmsg)
{
    switch (errcode) {
    case 310000:
        return security_hint(errmsg);
    case 300001:
    case 300005:
        return "the robot token is not valid (dingtalk_token)";
    case 460101:
    case 101002:
        return "message too long";
    case 400013:
        return "the message was not accepted as valid";
    default:
        return nullptr;
    }
}

} // namespace

const char *to_string(Outcome o)
{
    switch (o) {
    case Outcome::delivered:
        return "delivered";
    case Outcome::posted_before:
        return "posted before";
    case Outcome::bad_request:
        return "bad request";
    case Outcome::refused:
        return "refused";
    case Outcome::throttled:
        return "throttled";
    case Outcome::busy:
        return "busy";
    case Outcome::unreachable:
        return "unreachable";
    case Outcome::timeout:
        return "timeout";
    case Outcome::doubtful:
        return "in doubt";
    case Outcome::late:
        return "late";
    case Outcome::internal:
        break;
    }
    return "internal error";
}

const char *to_string(Delivery::Phase p)
{
    switch (p) {
    case Delivery::Phase::queued:
        return "still queued for a thread";
    case Delivery::Phase::preparing:
        return "still parsing and rendering";
    case Delivery::Phase::sending:
        return "still sending";
    case Delivery::Phase::done:
        break;
    }
    return "done";
}

namespace
{

// The proxy answered CONNECT with an error (or a SOCKS failure): what to say about it.
std::string proxy_refusal(const HttpReply &http)
{
    std::string s = "the proxy did not open the way to DingTalk";
    if (http.proxy_status == 407 || http.proxy_status == 401) { // tinyproxy 1.11 says 401
        return s + " (HTTP " + std::to_string(http.proxy_status) +
               ": check the user and password in dingtalk_proxy)";
    }
    if (http.proxy_status != 0) {
        return s + " (HTTP " + std::to_string(http.proxy_status) + ")";
    }
    return s;
}

// No usable answer: the connection, TLS, the proxy, or a timeout.
Report transport_failure(const HttpReply &http, const Proxy *proxy)
{
    Report r;
    r.http_status = 502;
    r.outcome = Outcome::unreachable;
    r.transient = http.transport != Transport::certificate; // that one will not fix itself
    std::string where = proxy ? " (through the proxy " + proxy->shown + ")" : "";
    switch (http.transport) {
    case Transport::timeout:
        r.outcome = Outcome::timeout;
        r.category = "DingTalk did not answer in time";
        break;
    case Transport::proxy_down:
        r.category = "cannot reach the proxy";
        where = " " + (proxy ? proxy->shown : std::string());
        break;
    case Transport::proxy_refused:
        r.category = proxy_refusal(http);
        where = " (the proxy " + (proxy ? proxy->shown : std::string()) + ")";
        // 403, 407: the proxy's rules, which no retry changes; 5xx, SOCKS: it may pass
        r.transient = http.proxy_status == 0 || http.proxy_status >= 500;
        break;
    default:
        r.category = std::string("cannot reach DingTalk (") + to_string(http.transport) + ")";
    }
    r.reason = r.category + where + ": " + http.error;
    return r;
}

// DingTalk's JSON with an integer errcode: what it means.
void classify_errcode(Report &r)
{
    const long code = *r.errcode;
    if (code == 0) {
        r.outcome = Outcome::delivered;
        r.http_status = 200;
        r.reason = "delivered to DingTalk";
    } else if (code == 130101) {
        r.outcome = Outcome::throttled;
        r.http_status = 503;
        r.reason = "DingTalk is throttling this robot (errcode 130101, over 20 messages a minute)";
    } else if (code == -1) {
        r.outcome = Outcome::busy;
        r.http_status = 503;
        r.reason = "DingTalk is busy (errcode -1), try again later";
        r.transient = true;
    } else {
        r.outcome = Outcome::refused;
        r.http_status = 502;
        r.reason = r.category = "DingTalk refused the message: errcode " + std::to_string(code);
        if (!r.errmsg.empty()) {
            r.reason += " \"" + r.errmsg + "\"";
        }
        if (const char *h = hint(code, r.errmsg)) {
            r.reason += std::string(" (") + h + ")";
            r.category += std::string(" (") + h + ")";
        }
    }
}

// The whole request reached DingTalk and no answer came: it may have been posted.
Report no_answer(const HttpReply &http)
{
    Report r;
    r.outcome = Outcome::doubtful;
    r.http_status = 503;
    r.transient = true; // once more at most: the caller knows whether it went before
    r.category = "DingTalk got the whole message and did not answer";
    r.reason =
        r.category + " (" + to_string(http.transport) + "): it may have posted it: " + http.error;
    return r;
}

} // namespace

Report interpret(const HttpReply &http, const Proxy *proxy)
{
    if (http.transport != Transport::ok) {
        return http.whole && http.status == 0 ? no_answer(http) : transport_failure(http, proxy);
    }
    Report r;
    json_error_t jerr;
    JsonPtr root(json_loadb(http.body.data(), http.body.size(), 0, &jerr));
    const json_t *code = root ? json_object_get(root.get(), "errcode") : nullptr;
    if (http.status != 200 || !json_is_integer(code)) {
        // A missing errcode is not 0: an HTTP 200 from a proxy's error page must not pass.
        r.outcome = Outcome::unreachable;
        r.http_status = 502;
        r.reason = http.status != 200
                       ? "DingTalk answered HTTP " + std::to_string(http.status)
                       : std::string("DingTalk's reply has no errcode: not the robot API?");
        r.transient = http.status >= 500 || http.status == 429 || http.status == 200;
        if (proxy != nullptr) { // the answer may be the proxy's: the log says which one
            r.category = r.reason;
            r.reason += " (through the proxy " + proxy->shown + ")";
        }
        return r;
    }
    r.errcode = static_cast<long>(json_integer_value(code));
    const json_t *msg = json_object_get(root.get(), "errmsg");
    r.errmsg = json_is_string(msg) ? plain_line(json_string_value(msg), 200) : "";
    classify_errcode(r);
    return r;
}

std::string send_url(const Target &t)
{
    const std::string &api_url = t.settings->api_url;
    const char sep = api_url.find('?') == std::string::npos ? '?' : '&';
    return api_url + sep + "access_token=" + t.token + signed_query(t.secret);
}

std::string redact(std::string text, const Target &t)
{
    static const std::string none;
    const Proxy *proxy = t.settings ? t.settings->proxy.get() : nullptr;
    const std::string &password = proxy ? proxy->password : none;
    // the proxy's user where libcurl writes it, before its ':***@' or '@' (a short user name
    // elsewhere in the text is no secret)
    const std::string &user = proxy ? proxy->user : none;
    const std::string user_colon = user.empty() ? "" : user + ":";
    const std::string user_at = user.empty() ? "" : user + "@";
    for (const std::string *secret : {&t.token, &t.secret, &password, &user_colon, &user_at}) {
        if (secret->empty()) {
            continue;
        }
        const std::string mask = secret->back() == ':'   ? "***:"
                                 : secret->back() == '@' ? "***@"
                                                         : "***";
        for (std::size_t pos = text.find(*secret); pos != std::string::npos;
             pos = text.find(*secret, pos + mask.size())) {
            text.replace(pos, secret->size(), mask);
        }
    }
    return text;
}

std::optional<std::chrono::milliseconds> retry_delay(const Report &last,
                                                     std::chrono::milliseconds elapsed,
                                                     std::chrono::milliseconds timeout)
{
    using std::chrono::milliseconds;
    constexpr int kMaxAttempts = 8;
    constexpr milliseconds kFirstDelay{100}, kMaxDelay{2000};
    const long n = last.message_attempts;
    if (!last.transient || n >= kMaxAttempts) {
        return std::nullopt;
    }
    milliseconds delay = kFirstDelay * (1 << (n > 0 ? n - 1 : 0));
    delay = std::min(delay, kMaxDelay);
    if (elapsed + delay + kShortestAttempt > timeout) {
        return std::nullopt;
    }
    return delay;
}

std::chrono::milliseconds attempt_budget(std::chrono::milliseconds remaining)
{
    constexpr std::chrono::milliseconds kEnough{3000}; // DingTalk answers in well under a second
    if (remaining <= kEnough) {
        return remaining;
    }
    return std::max(kEnough, remaining / 2);
}

bool Delivery::prepare()
{
    ParseResult parsed = parse_notification(body_, target_.settings->limits);
    if (!parsed.notification) {
        report_.outcome = Outcome::bad_request;
        report_.http_status = 400;
        report_.reason = "not an Alertmanager notification: " + parsed.error;
        return false;
    }
    const Notification &n = *parsed.notification;
    keys_.reserve(n.alerts.size());
    for (const Alert &a : n.alerts) {
        keys_.push_back(alert_key(a));
    }
    key_ = notification_key(robot_key(target_.token).data(), n, keys_);
    record_keys_ = dingtalk::record_keys(keys_);
    render(n);
    return true;
}

// The messages of what is left to send of n: all of it, or what a resume left.
void Delivery::render(const Notification &n)
{
    RenderOptions opt;
    opt.settings = target_.settings.get();
    opt.posted = posted_;
    opt.messages_before = before_;
    if (before_ == 0) {
        opt.at = mentions_for(n); // the first message mentions; a resume's first is not the first
    }
    std::vector<Message> ms = render_messages(n, opt);
    section_ = target_.settings->fold ? section_of(n, opt, ms.front(), ms.size()) : std::nullopt;
    requests_.clear();
    covers_.clear();
    report_.alerts = n.total();
    report_.shown = static_cast<std::size_t>(std::count(posted_.begin(), posted_.end(), true));
    for (Message &m : ms) {
        report_.shown += m.shown;
        requests_.push_back(std::move(m.request_body));
        covers_.emplace_back();
        for (const std::size_t i : m.alerts) {
            covers_.back().push_back(keys_[i]);
        }
    }
    report_.messages = before_ + requests_.size();
    report_.taken = before_;
    next_ = 0;
}

void Delivery::resume(const std::vector<Posted> &states, std::size_t messages_before)
{
    posted_.assign(keys_.size(), false);
    for (std::size_t i = 0; i < states.size() && i < posted_.size(); ++i) {
        posted_[i] = states[i] == Posted::yes;
    }
    before_ = messages_before;
    rerender_ = true;
}

void Delivery::go()
{
    std::string().swap(body_); // the raw body can be large; it is no longer needed
}

void Delivery::posted_before()
{
    report_.outcome = Outcome::posted_before;
    report_.http_status = 200;
    report_.reason = report_.category =
        "already posted: an earlier request of this notification was delivered";
    report_.messages = std::max<std::size_t>(before_, 1);
    report_.taken = report_.messages;
    report_.shown = report_.alerts;
    requests_.clear();
    covers_.clear();
    next_ = 0;
}

void Delivery::posted_in_fold()
{
    report_.outcome = Outcome::delivered;
    report_.http_status = 200;
    report_.transient = false;
    report_.reason = report_.category =
        "delivered to DingTalk in one message with other notifications for the same robot";
    next_ = requests_.size();
    report_.taken = before_ + next_;
    fold_.clear();
}

void Delivery::give_up_in_doubt()
{
    report_.http_status = 502;
    report_.transient = false;
    report_.reason = report_.category =
        "DingTalk got the whole message twice and answered neither: it is not sent a third time "
        "(it may have been posted)";
    fresh_ = false;
}

// Whom to mention: the rules' and those the firing alerts name; the log line says who.
Mentions Delivery::mentions_for(const Notification &n)
{
    const Settings &s = *target_.settings;
    const std::vector<MentionRule> no_rules;
    const auto &rules = s.mentions ? *s.mentions : no_rules;
    Mentions at = resolve_mentions(rules, n);
    const MentionsFromAlerts taken = add_mentions_from_alerts(s.mentions_from, n, at);
    report_.mentioned = plain_line(describe_mentions(rules, s.mentions_from, at, n, taken), 1024);
    return at;
}

void Delivery::run(std::uint64_t deadline_ms) noexcept
{
    try {
        phase_.store(Phase::preparing, std::memory_order_relaxed);
        if (!prepared_) {
            prepared_ = true;
            prepare();
        } else if (rerender_) {
            rerender_ = false;
            render(*parse_notification(body_, target_.settings->limits).notification);
        } else if (next_ < requests_.size()) { // a bad body has none
            phase_.store(Phase::sending, std::memory_order_relaxed);
            attempt(deadline_ms);
        }
    } catch (const std::exception &e) {
        report_.outcome = Outcome::internal;
        report_.http_status = 500;
        report_.reason = std::string("internal error: ") + e.what();
        report_.category = "internal error";
        report_.transient = false;
    } catch (...) {
        report_.outcome = Outcome::internal;
        report_.http_status = 500;
        report_.reason = "internal error";
        report_.transient = false;
    }
    // Everything that leaves here goes to a log line or a reply: one line, no secrets.
    try {
        report_.reason = plain_line(redact(std::move(report_.reason), target_), 1024);
        report_.errmsg = plain_line(redact(std::move(report_.errmsg), target_), 200);
    } catch (...) {
        report_.reason = "internal error";
        report_.errmsg.clear();
    }
    phase_.store(Phase::done, std::memory_order_release);
}

void Delivery::attempt(std::uint64_t deadline_ms)
{
    const std::uint64_t now = monotonic_ms();
    const auto left = std::chrono::milliseconds(deadline_ms > now ? deadline_ms - now : 0);
    if (left < kLatestStart) {
        Report r;
        carry(r);
        r.outcome = Outcome::late;
        r.http_status = 503;
        r.reason = "busy: the delivery waited in the thread pool's queue until no time was left "
                   "to send it; retry later";
        r.ended_ms = now;
        report_ = std::move(r);
        return;
    }
    const Settings &s = *target_.settings;
    HttpRequest req;
    req.url = send_url(target_);
    req.body = fold_.empty() ? requests_[next_] : fold_;
    req.timeout = attempt_budget(left); // of what is left when the thread starts it
    req.answer_timeout = s.answer_timeout;
    req.fresh_connection = fresh_;
    req.keepalive = s.keepalive;
    req.ssl_verify = s.ssl_verify;
    req.ca_pem = s.ca_pem;
    if (s.proxy) {
        req.proxy = s.proxy->url;
    }

    const HttpReply http = http_post(req);
    Report r = interpret(http, s.proxy.get());
    carry(r);
    r.sent = http.sent;
    r.ended_ms = http.ended_ms;
    r.attempts += 1;
    r.message_attempts += 1;
    r.new_connections += http.new_connections;
    if (r.outcome == Outcome::delivered && fold_.empty()) {
        r.taken = before_ + ++next_;
    }
    fold_.clear();                           // the caller settles what a folded message did
    fresh_ = r.outcome == Outcome::doubtful; // once more, on a connection of its own
    report_ = std::move(r);
}

void Delivery::stop_short()
{
    if (report_.outcome != Outcome::delivered || left() == 0) {
        return; // a failure already says why
    }
    report_.outcome = Outcome::late;
    report_.http_status = 503;
    report_.reason = report_.category =
        "busy: " + std::to_string(before_ + next_) + " of " +
        std::to_string(before_ + requests_.size()) +
        " messages taken, no time or room was left for the others; retry later";
    report_.errcode.reset();
}

// What a new attempt's report keeps of the delivery so far.
void Delivery::carry(Report &r) const
{
    r.alerts = report_.alerts;
    r.shown = report_.shown;
    r.messages = report_.messages;
    r.taken = report_.taken;
    r.attempts = report_.attempts;
    // a message taken: the next one starts its own count
    r.message_attempts = report_.outcome == Outcome::delivered ? 0 : report_.message_attempts;
    r.new_connections = report_.new_connections;
    r.elapsed = report_.elapsed;
    r.mentioned = report_.mentioned;
}

std::string Report::reply_json(bool verbose) const
{
    const std::string &said = verbose || category.empty() ? reason : category;
    JsonPtr root(json_object());
    json_object_set_new(
        root.get(), "ok",
        json_boolean(outcome == Outcome::delivered || outcome == Outcome::posted_before));
    json_object_set_new(root.get(), "reason", json_stringn(said.data(), said.size()));
    if (alerts > 0) {
        json_object_set_new(root.get(), "alerts", json_integer(json_int_t(alerts)));
        json_object_set_new(root.get(), "shown", json_integer(json_int_t(shown)));
    }
    if (messages > 1) {
        json_object_set_new(root.get(), "messages", json_integer(json_int_t(messages)));
        json_object_set_new(root.get(), "taken", json_integer(json_int_t(taken)));
    }
    if (errcode) {
        json_object_set_new(root.get(), "errcode", json_integer(*errcode));
        if (verbose) {
            json_object_set_new(root.get(), "errmsg", json_stringn(errmsg.data(), errmsg.size()));
        }
    }
    return json_dump(root.get()) + "\n";
}

std::string Report::summary() const
{
    std::string s = std::to_string(http_status) + " " + to_string(outcome);
    if (alerts > 0) {
        s += ", " + std::to_string(alerts) + (alerts == 1 ? " alert" : " alerts");
        if (shown != alerts) {
            s += " (" + std::to_string(shown) + " shown)";
        }
    }
    if (messages > 1) {
        s += ", " + (taken == messages ? "" : std::to_string(taken) + " of ") +
             std::to_string(messages) + " messages" + (taken == messages ? "" : " taken");
    }
    if (attempts > 0) {
        s += ", " + std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
    }
    if (errcode) {
        s += ", errcode " + std::to_string(*errcode);
    }
    s += ", " + std::to_string(elapsed.count()) + " ms";
    if (!mentioned.empty()) {
        s += ", " + mentioned;
    }
    if (outcome != Outcome::delivered) {
        s += ": " + reason;
    }
    return s;
}

std::string reply_json(bool ok, std::string_view reason)
{
    JsonPtr root(json_object());
    json_object_set_new(root.get(), "ok", json_boolean(ok));
    json_object_set_new(root.get(), "reason", json_stringn(reason.data(), reason.size()));
    return json_dump(root.get()) + "\n";
}

} // namespace dingtalk
