#include "mention.hpp"

#include "text.hpp"
#include "view.hpp"

#include <algorithm>
#include <unordered_set>

namespace dingtalk
{

Mentions resolve_mentions(const std::vector<MentionRule> &rules, const Notification &n)
{
    Mentions at;
    for (const auto &rule : rules) {
        bool applies = rule.severities.empty();
        for (const auto &a : n.alerts) {
            const std::string sev = severity_key(a); // rule.severities are lower case
            applies = applies || (a.status == Status::firing && !sev.empty() &&
                                  std::find(rule.severities.begin(), rule.severities.end(), sev) !=
                                      rule.severities.end());
        }
        if (!applies) {
            continue;
        }
        for (const auto &m : rule.mobiles) {
            if (std::find(at.mobiles.begin(), at.mobiles.end(), m) == at.mobiles.end()) {
                at.mobiles.push_back(m);
            }
        }
        for (const auto &u : rule.user_ids) {
            if (std::find(at.user_ids.begin(), at.user_ids.end(), u) == at.user_ids.end()) {
                at.user_ids.push_back(u);
            }
        }
        at.all = at.all || rule.all;
    }
    return at;
}

namespace
{

std::string add_severities(MentionRule &rule, std::string_view list)
{
    for (std::size_t pos = 0; pos <= list.size();) {
        const std::size_t comma = std::min(list.find(',', pos), list.size());
        std::string s(list.substr(pos, comma - pos));
        pos = comma + 1;
        if (s.empty()) {
            continue;
        }
        std::transform(s.begin(), s.end(), s.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (const std::string known = severity_typo_of(s); !known.empty()) {
            return "severity \"" + s + "\" looks like a typo of \"" + known +
                   "\", which would never match";
        }
        rule.severities.push_back(std::move(s));
    }
    return rule.severities.empty() ? "empty \"severity=\"" : "";
}

bool is_mention(std::string_view v, MentionKind kind)
{
    const bool mobile = kind == MentionKind::mobiles;
    return !v.empty() && v.size() <= 64 && std::all_of(v.begin(), v.end(), [&](char c) {
        return (c >= '0' && c <= '9') ||
               (mobile ? c == '+' || c == '-'
                       : (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' ||
                             c == '.');
    });
}

} // namespace

namespace
{

// "+86-13800000000" or "13800000000": what a label may name as a mobile number.
bool is_mobile(std::string_view v)
{
    const auto digits = [](std::string_view d, std::size_t min, std::size_t max) {
        return d.size() >= min && d.size() <= max &&
               std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    const std::size_t dash = v.find('-');
    if (!v.empty() && v[0] == '+' && dash != std::string_view::npos) {
        return digits(v.substr(1, dash - 1), 1, 4) && digits(v.substr(dash + 1), 5, 20);
    }
    return digits(v, 5, 20);
}

// The value the alert names for `name`: its annotation, else its label; "" when neither.
std::string_view named_by(const Alert &a, const std::string &name)
{
    for (const Labels *m : {&a.annotations, &a.labels}) {
        const auto it = m->find(name);
        if (it != m->end() && !it->second.empty()) {
            return it->second;
        }
    }
    return {};
}

// The entries of one alert's value into list (and seen, its set). Linear in the value: past the
// cap only counted, repeats found in the set.
void add_from(std::string_view value, bool mobiles, std::vector<std::string> &list,
              std::unordered_set<std::string> &seen, std::size_t &budget, MentionsFromAlerts &taken)
{
    for (std::size_t pos = 0; pos < value.size();) {
        const std::size_t end = std::min(value.find_first_of(", ", pos), value.size());
        const std::string_view entry = value.substr(pos, end - pos);
        pos = end + 1;
        if (entry.empty()) {
            continue;
        }
        if (!(mobiles ? is_mobile(entry) : is_mention(entry, MentionKind::user_ids))) {
            ++taken.invalid;
        } else if (budget == 0) {
            ++taken.over_cap;
        } else if (seen.emplace(entry).second) {
            list.emplace_back(entry);
            --budget;
            ++taken.added;
        }
    }
}

// Why nobody was mentioned, the rules' side: "no firing alert has severity a, b" or "the
// rules say off"; "" without rules.
std::string why_rules_mention_nobody(const std::vector<MentionRule> &rules)
{
    if (rules.empty()) {
        return "";
    }
    std::vector<std::string> named;
    for (const auto &rule : rules) {
        for (const auto &s : rule.severities) {
            if (std::find(named.begin(), named.end(), s) == named.end()) {
                named.push_back(s);
            }
        }
    }
    std::string list;
    for (const auto &s : named) {
        list += (list.empty() ? "" : ", ") + s;
    }
    return list.empty() ? "the rules say off" : "no firing alert has severity " + list;
}

} // namespace

MentionsFromAlerts add_mentions_from_alerts(const MentionSources &from, const Notification &n,
                                            Mentions &at)
{
    MentionsFromAlerts taken;
    if (from.empty()) {
        return taken;
    }
    std::size_t budget = kMaxMentionsFromAlerts;
    std::unordered_set<std::string> mobiles(at.mobiles.begin(), at.mobiles.end()),
        user_ids(at.user_ids.begin(), at.user_ids.end());
    for (const auto &a : n.alerts) {
        if (a.status != Status::firing) {
            continue; // a resolved alert calls nobody
        }
        if (!from.mobiles_from.empty()) {
            add_from(named_by(a, from.mobiles_from), true, at.mobiles, mobiles, budget, taken);
        }
        if (!from.user_ids_from.empty()) {
            add_from(named_by(a, from.user_ids_from), false, at.user_ids, user_ids, budget, taken);
        }
    }
    return taken;
}

std::string describe_mentions(const std::vector<MentionRule> &rules, const MentionSources &from,
                              const Mentions &at, const Notification &n,
                              const MentionsFromAlerts &taken)
{
    if (rules.empty() && from.empty()) {
        return "";
    }
    std::string s;
    if (!at.empty()) {
        std::string who = at.all ? "everyone" : "";
        for (const auto *list : {&at.mobiles, &at.user_ids}) {
            for (const auto &m : *list) {
                who += (who.empty() ? "@" : " @") + m;
            }
        }
        s = "mentioned " + who;
    } else if (n.count(Status::firing) == 0) {
        s = "mentioned nobody: no alert is firing";
    } else {
        std::string why = why_rules_mention_nobody(rules);
        if (!from.empty() && taken.invalid + taken.over_cap == 0) {
            const std::string names = from.mobiles_from.empty() || from.user_ids_from.empty()
                                          ? from.mobiles_from + from.user_ids_from
                                          : from.mobiles_from + " or " + from.user_ids_from;
            why +=
                std::string(why.empty() ? "" : "; ") + "no firing alert names anyone in " + names;
        }
        s = "mentioned nobody" + (why.empty() ? std::string() : ": " + why);
    }
    if (taken.invalid > 0) {
        s += "; dropped " + std::to_string(taken.invalid) +
             " named by the alerts that are not a mobile number or user id";
    }
    if (taken.over_cap > 0) {
        s += "; dropped " + std::to_string(taken.over_cap) +
             " named by the alerts past the first " + std::to_string(kMaxMentionsFromAlerts);
    }
    return s;
}

std::string add_mention_argument(MentionRule &rule, MentionKind kind, std::string_view arg)
{
    if (arg.substr(0, 9) == "severity=") {
        return add_severities(rule, arg.substr(9));
    }
    const std::string quoted = "\"" + plain_line(arg, 64) + "\"";
    if (kind == MentionKind::all) {
        if (arg != "on" && arg != "off") {
            return quoted + " is not on, off or severity=...";
        }
        rule.all = arg == "on";
    } else if (!is_mention(arg, kind)) {
        return quoted + (kind == MentionKind::mobiles
                             ? " is not a mobile number (digits, + and -)"
                             : " is not a DingTalk user id (letters, digits, _ - .)");
    } else {
        (kind == MentionKind::mobiles ? rule.mobiles : rule.user_ids).emplace_back(arg);
    }
    return "";
}

std::string check_mention_rule(const MentionRule &rule, MentionKind kind)
{
    if (kind != MentionKind::all && rule.mobiles.empty() && rule.user_ids.empty()) {
        return "nobody to mention";
    }
    if (rule.mobiles.size() + rule.user_ids.size() > 64) {
        return "too many mentions (64 at most)";
    }
    return "";
}

std::string mention_line(const Mentions &at)
{
    std::string line;
    for (const auto &m : at.mobiles) {
        line += (line.empty() ? "@" : " @") + m;
    }
    for (const auto &u : at.user_ids) {
        line += (line.empty() ? "@" : " @") + u;
    }
    if (at.all && line.empty()) {
        line = "@所有人";
    }
    return line;
}

} // namespace dingtalk
