// Notification -> one DingTalk markdown message that always fits DingTalk's size limit, from
// the built-in layout or a mustache template.
#pragma once

#include "alert.hpp"
#include "template.hpp"
#include "view.hpp"
#include "zone.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// DingTalk refuses request bodies over 20000 bytes (errcode 460101). We stay a little below so
// that a different count on their side (headers, re-encoding) still passes.
constexpr std::size_t kMaxRequestBytes = 19500;

struct Mentions {
    std::vector<std::string> mobiles;
    std::vector<std::string> user_ids;
    bool all = false;

    bool empty() const { return mobiles.empty() && user_ids.empty() && !all; }
};

// dingtalk_at_mobiles / dingtalk_at_user_ids / dingtalk_at_all, each optionally only for some
// severities: the rule applies when a firing alert has one of them.
struct MentionRule {
    std::vector<std::string> mobiles;
    std::vector<std::string> user_ids;
    bool all = false;
    std::vector<std::string> severities; // lower case; empty: always
};

Mentions resolve_mentions(const std::vector<MentionRule> &rules, const Notification &n);

// dingtalk_at_mobiles_from / dingtalk_at_user_ids_from: the annotation (else the label) of the
// firing alerts that names whom to call. "" = none.
struct MentionSources {
    std::string mobiles_from;
    std::string user_ids_from;

    bool empty() const { return mobiles_from.empty() && user_ids_from.empty(); }
};

// Mentions taken from the alerts at most, so that a bad label cannot mention a crowd.
constexpr std::size_t kMaxMentionsFromAlerts = 20;

struct MentionsFromAlerts {
    std::size_t added = 0;    // new to `at`
    std::size_t invalid = 0;  // not a mobile number ([+cc-]digits) or a user id: dropped
    std::size_t over_cap = 0; // past kMaxMentionsFromAlerts: dropped
};

// Adds to `at` the mobiles and user ids that the firing alerts of n name (separated by commas
// or spaces), after those already in it, without repeats.
MentionsFromAlerts add_mentions_from_alerts(const MentionSources &from, const Notification &n,
                                            Mentions &at);

// For the log line: "mentioned [everyone] @138... @user", or "mentioned nobody: " and why, then
// what was dropped from the alerts; "" without rules or sources.
std::string describe_mentions(const std::vector<MentionRule> &rules, const MentionSources &from,
                              const Mentions &at, const Notification &n,
                              const MentionsFromAlerts &taken = {});

// dingtalk_keyword: "" when the word can be one of a robot's keywords, else why not.
std::string check_keyword(std::string_view word);

// What a dingtalk_at_* directive names.
enum class MentionKind { mobiles, user_ids, all };

// One argument of a dingtalk_at_* directive into the rule: a mobile number (digits, + and -),
// a user id (letters, digits, _ - .), on|off (dingtalk_at_all), or "severity=S1,S2" (matched
// in lower case; a likely typo of a well-known severity is refused). "" when done, else why it
// cannot be.
std::string add_mention_argument(MentionRule &rule, MentionKind kind, std::string_view arg);

// The rule as a whole, once every argument is in: "" when fine, else why not.
std::string check_mention_rule(const MentionRule &rule, MentionKind kind);

struct RenderOptions {
    const Zone *zone = nullptr;     // required
    const Styles *styles = nullptr; // null: Styles::defaults()
    TimePoint now{};                // for the age of firing alerts; unset: the clock's now
    Mentions at;
    std::string keyword; // dingtalk_keyword: every text contains it ("" = none)
    std::shared_ptr<const LabelNames> hidden_labels; // null: default_hidden_labels()
    bool silence_link = true; // a firing alert links to Alertmanager's new-silence form
    std::size_t max_request_bytes = kMaxRequestBytes;
    std::shared_ptr<const Template> text_template;  // null: the built-in layout
    std::shared_ptr<const Template> title_template; // null: "[FIRING:3] group labels"
};

struct Message {
    std::string title;
    std::string text;
    std::string request_body; // the JSON POSTed to DingTalk, <= max_request_bytes
    std::size_t shown = 0;    // alerts in the text
    std::size_t omitted = 0;  // alerts of the body not shown: past the cap, or left out to fit
                              // (Alertmanager's truncatedAlerts not included)
};

Message render_message(const Notification &n, const RenderOptions &opt);

// dingtalk_max_messages: a notification that does not fit in one message goes out as up to
// max_messages (1 to kMaxMessages), each under the size limit, titled " (1/3)", " (2/3)"...,
// firing first, no alert split across two; the last ends with "N more" when even they are not
// enough. Only the first mentions anyone. One message when it fits, or max_messages is 1.
constexpr std::size_t kMaxMessages = 10;
std::vector<Message> render_messages(const Notification &n, const RenderOptions &opt,
                                     std::size_t max_messages);

// Bytes the string takes inside a JSON string literal as jansson writes it.
std::size_t json_escaped_size(std::string_view s);

} // namespace dingtalk
