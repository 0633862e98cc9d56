#include "delivery.hpp"

#include "alert.hpp"
#include "sign.hpp"

#include "json.hpp"

#include <exception>
#include <memory>

namespace dingtalk
{

namespace
{

// DingTalk's errmsg is foreign text: keep it short and on one line.
std::string sanitize(std::string_view s)
{
    std::string out;
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (out.size() >= 200 && (c & 0xC0) != 0x80) {
            out += "...";
            break;
        }
        out += c < 0x20 || c == 0x7F ? ' ' : static_cast<char>(c);
    }
    return out;
}

const char *hint(long errcode)
{
    switch (errcode) {
    case 310000:
        return "check the robot's security settings: keywords, signature (dingtalk_secret) or "
               "IP allow-list";
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
    case Outcome::bad_request:
        return "bad request";
    case Outcome::refused:
        return "refused";
    case Outcome::throttled:
        return "throttled";
    case Outcome::unreachable:
        return "unreachable";
    case Outcome::timeout:
        return "timeout";
    case Outcome::internal:
        break;
    }
    return "internal error";
}

Report interpret(const HttpReply &http)
{
    Report r;
    if (http.transport == Transport::timeout) {
        r.outcome = Outcome::timeout;
        r.http_status = 502;
        r.reason = "DingTalk did not answer in time: " + http.error;
        r.transient = true;
        return r;
    }
    if (http.transport != Transport::ok) {
        r.outcome = Outcome::unreachable;
        r.http_status = 502;
        r.reason =
            std::string("cannot reach DingTalk (") + to_string(http.transport) + "): " + http.error;
        // A certificate DingTalk does not have will not change by itself; the rest may pass.
        r.transient = http.transport != Transport::tls_failed;
        return r;
    }

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
        return r;
    }

    r.errcode = static_cast<long>(json_integer_value(code));
    const json_t *msg = json_object_get(root.get(), "errmsg");
    r.errmsg = json_is_string(msg) ? sanitize(json_string_value(msg)) : "";
    if (r.errcode == 0) {
        r.outcome = Outcome::delivered;
        r.http_status = 200;
        r.reason = "delivered to DingTalk";
    } else if (r.errcode == 130101) {
        r.outcome = Outcome::throttled;
        r.http_status = 503;
        r.reason = "DingTalk is throttling this robot (errcode 130101, over 20 messages a minute)";
    } else {
        r.outcome = Outcome::refused;
        r.http_status = 502;
        r.reason = "DingTalk refused the message: errcode " + std::to_string(r.errcode);
        if (!r.errmsg.empty()) {
            r.reason += " \"" + r.errmsg + "\"";
        }
        if (const char *h = hint(r.errcode)) {
            r.reason += std::string(" (") + h + ")";
        }
    }
    return r;
}

std::string send_url(const Target &t)
{
    const char sep = t.api_url.find('?') == std::string::npos ? '?' : '&';
    return t.api_url + sep + "access_token=" + t.token + signed_query(t.secret);
}

std::string redact(std::string text, const Target &t)
{
    for (const std::string *secret : {&t.token, &t.secret}) {
        if (secret->empty()) {
            continue;
        }
        for (std::size_t pos = text.find(*secret); pos != std::string::npos;
             pos = text.find(*secret, pos)) {
            text.replace(pos, secret->size(), "***");
        }
    }
    return text;
}

void Delivery::run() noexcept
{
    const auto start = std::chrono::steady_clock::now();
    try {
        if (request_.empty()) {
            ParseResult parsed = parse_notification(body_);
            if (!parsed.notification) {
                report_.outcome = Outcome::bad_request;
                report_.http_status = 400;
                report_.reason = "not an Alertmanager notification: " + parsed.error;
                return;
            }
            RenderOptions opt;
            opt.zone = target_.zone;
            opt.at = target_.at;
            Message m = render_message(*parsed.notification, opt);
            request_ = std::move(m.request_body);
            report_.alerts = parsed.notification->alerts.size();
            report_.shown = m.shown;
            std::string().swap(body_); // the raw body can be large; it is no longer needed
        }
        attempt();
    } catch (const std::exception &e) {
        report_.outcome = Outcome::internal;
        report_.http_status = 500;
        report_.reason = std::string("internal error: ") + e.what();
        report_.transient = false;
    } catch (...) {
        report_.outcome = Outcome::internal;
        report_.http_status = 500;
        report_.reason = "internal error";
        report_.transient = false;
    }
    report_.reason = redact(std::move(report_.reason), target_);
    report_.errmsg = redact(std::move(report_.errmsg), target_);
    report_.elapsed += std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
}

void Delivery::attempt()
{
    HttpRequest req;
    req.url = send_url(target_);
    req.body = request_;
    req.timeout = target_.timeout;
    req.ssl_verify = target_.ssl_verify;
    req.ca_pem = target_.ca_pem;

    const HttpReply http = http_post(req);
    Report r = interpret(http);
    r.alerts = report_.alerts;
    r.shown = report_.shown;
    r.attempts = report_.attempts + 1;
    r.new_connections = report_.new_connections + http.new_connections;
    r.elapsed = report_.elapsed;
    report_ = std::move(r);
}

std::string Report::reply_json() const
{
    JsonPtr root(json_object());
    json_object_set_new(root.get(), "ok", json_boolean(outcome == Outcome::delivered));
    json_object_set_new(root.get(), "reason", json_stringn(reason.data(), reason.size()));
    if (alerts > 0) {
        json_object_set_new(root.get(), "alerts", json_integer(json_int_t(alerts)));
        json_object_set_new(root.get(), "shown", json_integer(json_int_t(shown)));
    }
    if (errcode >= 0 || outcome == Outcome::refused || outcome == Outcome::throttled) {
        json_object_set_new(root.get(), "errcode", json_integer(errcode));
        json_object_set_new(root.get(), "errmsg", json_stringn(errmsg.data(), errmsg.size()));
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
    if (attempts > 0) {
        s += ", " + std::to_string(attempts) + (attempts == 1 ? " attempt" : " attempts");
    }
    if (errcode >= 0) {
        s += ", errcode " + std::to_string(errcode);
    }
    s += ", " + std::to_string(elapsed.count()) + " ms";
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
