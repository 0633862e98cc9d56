#include "metrics.hpp"

#include <algorithm>
#include <cstdio>

namespace dingtalk
{

namespace
{

const char *const kEndingLabels[kEndings] = {
    "delivered",     "bad_request",  "no_robot",  "bad_token",     "rate_limited", "queue_full",
    "zone_full",     "refused",      "throttled", "busy",          "unreachable",  "timeout",
    "client_closed", "unauthorized", "internal",  "posted_before", "in_progress",
};

void header(std::string &out, const char *name, const char *type, const char *help)
{
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void sample(std::string &out, const char *name, const std::string &labels, std::uint64_t value)
{
    out += name;
    if (!labels.empty()) {
        out += '{' + labels + '}';
    }
    out += ' ' + std::to_string(value) + '\n';
}

std::string seconds(double s)
{
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", s);
    return buf;
}

} // namespace

const char *to_label(Ending e)
{
    return kEndingLabels[static_cast<std::size_t>(e)];
}

std::size_t errcode_slot(long errcode)
{
    const auto it = std::find(kKnownErrcodes.begin(), kKnownErrcodes.end(), errcode);
    return static_cast<std::size_t>(it - kKnownErrcodes.begin()); // "other" when not found
}

const char *action_label(std::size_t result)
{
    static constexpr const char *labels[kActionResults] = {"created", "already", "failed",
                                                           "refused"};
    return result < kActionResults ? labels[result] : "failed";
}

const char *expire_label(std::size_t result)
{
    static constexpr const char *labels[kExpireResults] = {"expired", "gone", "failed", "full"};
    return result < kExpireResults ? labels[result] : "failed";
}

std::size_t duration_slot(std::uint64_t ms)
{
    std::size_t i = 0;
    while (i < kDurationBuckets.size() && static_cast<double>(ms) > kDurationBuckets[i] * 1000) {
        ++i;
    }
    return i;
}

std::string robot_name(std::string_view wanted)
{
    std::string out;
    for (const char c : wanted.substr(0, 63)) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' || c == '-';
        out += ok ? c : '_';
    }
    return out;
}

std::string to_prometheus(const MetricsSnapshot &m)
{
    std::string out;
    out.reserve(4096 + m.robots.size() * 128);

    header(out, "dingtalk_notifications_total", "counter",
           "Alertmanager notifications received, by how they ended.");
    for (std::size_t i = 0; i < kEndings; ++i) {
        sample(out, "dingtalk_notifications_total",
               std::string("outcome=\"") + kEndingLabels[i] + '"', m.endings[i]);
    }

    header(out, "dingtalk_messages_sent_total", "counter",
           "Messages DingTalk accepted (errcode 0), by robot.");
    for (const auto &r : m.robots) {
        sample(out, "dingtalk_messages_sent_total", "robot=\"" + r.name + '"', r.sent);
    }
    header(out, "dingtalk_messages_failed_total", "counter",
           "Deliveries that ended without DingTalk taking the message, by robot.");
    for (const auto &r : m.robots) {
        sample(out, "dingtalk_messages_failed_total", "robot=\"" + r.name + '"', r.failed);
    }

    header(out, "dingtalk_errcode_total", "counter", "DingTalk's answers, by errcode.");
    for (std::size_t i = 0; i < kErrcodeSlots; ++i) {
        const std::string code =
            i < kKnownErrcodes.size() ? std::to_string(kKnownErrcodes[i]) : "other";
        sample(out, "dingtalk_errcode_total", "errcode=\"" + code + '"', m.errcodes[i]);
    }

    header(out, "dingtalk_retries_total", "counter", "Attempts retried after a transient failure.");
    sample(out, "dingtalk_retries_total", "", m.retries);
    header(out, "dingtalk_held_total", "counter",
           "Webhooks held on a timer until the robot's rate limit had a free slot.");
    sample(out, "dingtalk_held_total", "", m.held);
    header(out, "dingtalk_throttled_replies_total", "counter",
           "503 replies because of DingTalk's rate limit (ours, its 130101, or a cool-down).");
    sample(out, "dingtalk_throttled_replies_total", "",
           m.endings[static_cast<std::size_t>(Ending::rate_limited)] +
               m.endings[static_cast<std::size_t>(Ending::throttled)]);

    header(out, "dingtalk_delivery_duration_seconds", "histogram",
           "From the webhook's body to the reply, holds and retries included.");
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i <= kDurationBuckets.size(); ++i) {
        cumulative += m.duration[i];
        const std::string le = i < kDurationBuckets.size() ? seconds(kDurationBuckets[i]) : "+Inf";
        sample(out, "dingtalk_delivery_duration_seconds_bucket", "le=\"" + le + '"', cumulative);
    }
    // Exact, from the milliseconds: "%g" would keep only 6 significant digits.
    std::string millis = std::to_string(m.duration_sum_ms % 1000);
    millis.insert(0, 3 - millis.size(), '0');
    out += "dingtalk_delivery_duration_seconds_sum " + std::to_string(m.duration_sum_ms / 1000) +
           '.' + millis + '\n';
    sample(out, "dingtalk_delivery_duration_seconds_count", "", cumulative);

    header(out, "dingtalk_tasks_in_flight", "gauge",
           "Deliveries queued or running in nginx thread pools, all workers (nginx does not "
           "expose a pool's own queue).");
    sample(out, "dingtalk_tasks_in_flight", "", m.tasks_in_flight);
    header(out, "dingtalk_requests_waiting", "gauge",
           "Webhooks waiting on a timer: a rate-limit hold or a retry backoff.");
    sample(out, "dingtalk_requests_waiting", "", m.waiting);
    header(out, "dingtalk_robots", "gauge", "Robots tracked in the shared zone.");
    sample(out, "dingtalk_robots", "", m.robots.size());
    if (m.store) {
        header(out, "dingtalk_store_errors_total", "counter",
               "dingtalk_store calls that failed or timed out (the robot fell back).");
        sample(out, "dingtalk_store_errors_total", "", m.store_errors);
        header(out, "dingtalk_store_up", "gauge",
               "1 while dingtalk_store answers, 0 while the robots use their fallback window.");
        sample(out, "dingtalk_store_up", "", m.store_up ? 1 : 0);
    }
    if (m.actions) {
        header(out, "dingtalk_actions_total", "counter",
               "The action location's POSTs (silence) and what became of its \"until "
               "resolved\" silences (expire), by result.");
        for (std::size_t i = 0; i < kActionResults; ++i) {
            sample(out, "dingtalk_actions_total",
                   std::string("action=\"silence\",result=\"") + action_label(i) + '"',
                   m.silences[i]);
        }
        for (std::size_t i = 0; i < kExpireResults; ++i) {
            sample(out, "dingtalk_actions_total",
                   std::string("action=\"expire\",result=\"") + expire_label(i) + '"',
                   m.expires[i]);
        }
    }
    return out;
}

} // namespace dingtalk
