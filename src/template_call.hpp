// The template names that carry an argument, as Go bridge templates branch and call functions:
// a label's or annotation's value as a condition (label_is.env.prod), a count compared with a
// number (firing_count_gt.3), a time in a Go layout (starts_at "15:04"), and functions with
// their arguments ({{#trunc 20}}...{{/trunc}}). Each is parsed and checked once, when the
// template is (nginx -t); the alert data is never read for its structure.
#pragma once

#include "golayout.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace dingtalk
{

struct TemplateCall {
    enum class Kind {
        value_is, // label_is.NAME.VALUE ...: a section, true when the value is VALUE
        compare,  // firing_count_gt.N ...: a section, true when the count is above (below) N
        time,     // starts_at "LAYOUT" ...: a value
        function, // trunc 20 ...: a section whose rendered text it changes
    };
    Kind kind = Kind::value_is;
    // value_is: the map (labels, annotations: the alert's; group_labels, common_labels,
    // common_annotations: the notification's), the name and the value, decoded
    std::string map, key, value;
    // compare: firing_count, resolved_count, alert_count, shown, omitted, more_count or index
    std::string count;
    bool greater = true;
    std::uint64_t number = 0;
    // time: starts_at, ends_at or now; no layout: the zone's (dingtalk_timezone's)
    std::string time;
    std::shared_ptr<const GoLayout> layout;
    // function: what it makes of its section's rendered text
    std::function<std::string(const std::string &)> apply;
};

// What `name` (a tag's name, as written) calls, when it is one of these names; nothing when it
// is none, and nothing with `error` set ("what is wrong") when it is one written wrong or used
// as the wrong kind of tag (`tag`: '#', '^', ' ' for a value, '{' or '&' unescaped).
std::optional<TemplateCall> parse_call(const std::string &name, char tag, std::string &error);

// The name a function's section may also be closed with: "trunc" for "trunc 20"; any other name
// itself.
std::string call_head(const std::string &name);

// A function's text never grows past this, or past what it was when longer.
constexpr std::size_t kMaxFunctionGrowth = 256 * 1024;

} // namespace dingtalk
