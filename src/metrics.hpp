// What the module counts, and its Prometheus text exposition. The counters themselves live in
// nginx's shared memory (the glue); this is the vocabulary and the formatting, so both can be
// tested without nginx.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// How a webhook ended, as dingtalk_notifications_total{outcome=...} counts it.
enum class Ending {
    delivered,
    bad_request,
    no_robot,     // dingtalk_token empty for this request (404)
    bad_token,    // a token or secret DingTalk never issues (500)
    rate_limited, // 503 from our rate limit or a 130101 cool-down, nothing sent
    queue_full,   // 503: the thread pool queue was full, or too slow to send in time
    zone_full,    // 503: no room for the robot in the shared zone, nothing sent
    refused,
    throttled, // DingTalk answered 130101
    busy,      // DingTalk answered -1 (busy) until the time ran out
    unreachable,
    timeout,
    client_closed, // the client went away while the delivery waited; nothing more sent
    unauthorized,  // 401 without the credentials, 403 from a web page; nothing sent
    internal,
    posted_before, // 200 without a send: an earlier request of the notification posted it all
    in_progress,   // 503: another request is sending the same notification now
};
constexpr std::size_t kEndings = 17;
const char *to_label(Ending e);

// DingTalk errcodes worth their own series; anything else is counted as "other".
constexpr std::array<long, 9> kKnownErrcodes = {0,      -1,     130101, 310000, 300001,
                                                300005, 400013, 460101, 101002};
constexpr std::size_t kErrcodeSlots = kKnownErrcodes.size() + 1;
std::size_t errcode_slot(long errcode);

// The action location's results (silencer.hpp's ActionResult, in its order), as
// dingtalk_actions_total{action="silence",result=...} counts them.
constexpr std::size_t kActionResults = 4;
const char *action_label(std::size_t result);

// What became of the "until resolved" silences the action location keeps (resolved.hpp), as
// dingtalk_actions_total{action="expire",result=...} counts them: expired (the alert resolved),
// gone (the silence had ended or was expired by someone else: forgotten), failed (a check that
// could not say: kept for the next), full (the zone's table was full: not kept, the silence
// ends at its hard end).
enum class ExpireCount { expired, gone, failed, full };
constexpr std::size_t kExpireResults = 4;
const char *expire_label(std::size_t result);

// Upper bounds (seconds) of the delivery duration histogram; +Inf is implied.
constexpr std::array<double, 10> kDurationBuckets = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
std::size_t duration_slot(std::uint64_t ms); // kDurationBuckets.size() for +Inf

struct RobotStats {
    std::string name; // dingtalk_robot_name, or a hash of the token: never the token
    std::uint64_t sent = 0;
    std::uint64_t failed = 0;
};

struct MetricsSnapshot {
    std::array<std::uint64_t, kEndings> endings{};
    std::array<std::uint64_t, kErrcodeSlots> errcodes{};
    std::array<std::uint64_t, kDurationBuckets.size() + 1> duration{}; // per slot, not cumulative
    std::uint64_t duration_sum_ms = 0;
    std::uint64_t retries = 0;
    std::uint64_t held = 0;
    std::uint64_t tasks_in_flight = 0;
    std::uint64_t waiting = 0;
    std::vector<RobotStats> robots;
    bool store = false; // dingtalk_store is used: its two series are shown
    std::uint64_t store_errors = 0;
    bool store_up = true;
    bool actions = false; // some location has dingtalk_action: its series are shown
    std::array<std::uint64_t, kActionResults> silences{};
    std::array<std::uint64_t, kExpireResults> expires{};
};

std::string to_prometheus(const MetricsSnapshot &m);

// A robot name fit for a label value and a log line: [A-Za-z0-9_.:-], at most 63 bytes.
std::string robot_name(std::string_view wanted);

} // namespace dingtalk
