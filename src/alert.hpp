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

using Labels = std::map<std::string, std::string>;
// Microseconds: 64 bits of them reach from year 1 (Go's zero time) far past any alert; finer
// digits are dropped (messages show seconds).
using TimePoint = std::chrono::time_point<std::chrono::system_clock, std::chrono::microseconds>;

enum class Status { firing, resolved };

struct Alert {
    Status status = Status::firing;
    Labels labels;
    Labels annotations;
    std::optional<TimePoint> starts_at;
    std::optional<TimePoint> ends_at; // empty for Alertmanager's "0001-01-01T00:00:00Z"
    std::string generator_url;
    std::string fingerprint;
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
    std::vector<Alert> alerts;

    std::size_t count(Status s) const;
};

struct ParseResult {
    std::optional<Notification> notification;
    std::string error; // set when notification is empty: why the body is not a notification
};

// Parses one webhook body. Never throws on bad input; the error says what and where.
ParseResult parse_notification(std::string_view body);

// RFC 3339 with any number of fractional digits and a Z or +hh:mm offset. Year 1 (Go's zero
// time) parses fine; callers decide what it means.
std::optional<TimePoint> parse_rfc3339(std::string_view text);

const char *to_string(Status s);

} // namespace dingtalk
