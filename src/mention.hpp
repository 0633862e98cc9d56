// Whom a message mentions (@): the rules of the dingtalk_at_* directives, and the people the
// firing alerts name (dingtalk_at_*_from).
#pragma once

#include "alert.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

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

// What a dingtalk_at_* directive names.
enum class MentionKind { mobiles, user_ids, all };

// One argument of a dingtalk_at_* directive into the rule: a mobile number (digits, + and -),
// a user id (letters, digits, _ - .), on|off (dingtalk_at_all), or "severity=S1,S2" (matched
// in lower case; a likely typo of a well-known severity is refused). "" when done, else why it
// cannot be.
std::string add_mention_argument(MentionRule &rule, MentionKind kind, std::string_view arg);

// The rule as a whole, once every argument is in: "" when fine, else why not.
std::string check_mention_rule(const MentionRule &rule, MentionKind kind);

// "@13800000000 @user1" (or "@所有人") for the text, else "". No trailing newline.
std::string mention_line(const Mentions &at);

} // namespace dingtalk
