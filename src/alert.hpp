// Alertmanager webhook payload (version 4) as typed C++ values.
//
// Parsing is strict about types and lenient about absence: a field of the wrong type is an error
// that names the field, a missing field is simply empty. Alertmanager always sends every field,
// but people testing with curl do not, and refusing them would lose alerts for nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// std::less<>: looked up by string_view or literal without building a string.
using Labels = std::map<std::string, std::string, std::less<>>;
// Microseconds: 64 bits of them reach from year 1 (Go's zero time) far past any alert; finer
// digits are dropped (messages show seconds).
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

// Minutes east of UTC.
using Offset = std::chrono::minutes;

enum class Status { firing, resolved };

struct Alert {
    Status status = Status::firing;
    Labels labels;
    Labels annotations;
    std::optional<TimePoint> starts_at;
    std::optional<TimePoint> ends_at; // empty for Alertmanager's "0001-01-01T00:00:00Z"
    Offset starts_at_offset{0};       // the UTC offset each time was written with ("+08:00")
    Offset ends_at_offset{0};
    std::string generator_url;
    std::string fingerprint;
};

// What one body may cost: a body that is cheap to send must not be expensive to hold. Alerts,
// labels and values past these caps are still checked (a wrong type anywhere is a 400) and
// counted, but not kept.
struct ParseLimits {
    std::size_t max_body_bytes = std::size_t(1) << 20; // a larger body is refused
    std::size_t max_alerts = 100;                      // kept; firing first (dingtalk_max_alerts)
    std::size_t max_pairs = 128;        // labels (or annotations) kept per alert and per group map
    std::size_t max_name_bytes = 256;   // a label name is cut here (ending in "…")
    std::size_t max_value_bytes = 4096; // a value is cut here: more than any message shows
};

struct Notification {
    std::string version;
    std::string group_key;
    std::int64_t truncated_alerts = 0;
    Status status = Status::firing;
    std::string receiver;
    Labels group_labels;
    Labels common_labels;
    Labels common_annotations;
    std::string external_url;
    std::vector<Alert> alerts;      // in body order, at most ParseLimits::max_alerts
    std::size_t firing_total = 0;   // in the body, kept or not
    std::size_t resolved_total = 0; // in the body, kept or not

    std::size_t count(Status s) const
    {
        return s == Status::firing ? firing_total : resolved_total;
    }
    std::size_t total() const { return firing_total + resolved_total; }
    std::size_t not_kept() const { return total() - alerts.size(); }

    // Sets the totals from `alerts` (for notifications built by hand).
    void count_alerts();
};

struct ParseResult {
    std::optional<Notification> notification;
    std::string error; // set when notification is empty: why the body is not a notification
};

// Parses one webhook body. Never throws on bad input; the error says what and where. Time and
// memory grow linearly with the body's size, whatever its shape.
ParseResult parse_notification(std::string_view body, const ParseLimits &limits = {});

// RFC 3339 with any number of fractional digits and a Z or +hh:mm offset. Year 1 (Go's zero
// time) parses fine; callers decide what it means.
std::optional<TimePoint> parse_rfc3339(std::string_view text, Offset *offset = nullptr);

const char *to_string(Status s);

} // namespace dingtalk
