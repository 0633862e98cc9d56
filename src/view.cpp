#include "view.hpp"

#include "text.hpp"
#include "sign.hpp"

#include <algorithm>
#include <array>
#include <cctype>

namespace dingtalk
{

namespace
{

const std::string kNone = "-";

const std::string *find(const Labels &m, std::string_view key)
{
    auto it = m.find(key);
    return it == m.end() || it->second.empty() ? nullptr : &it->second;
}

std::string label_or_none(const Labels &m, Escape esc, std::string_view key,
                          std::string_view fallback = {})
{
    const std::string *v = find(m, key);
    if (v == nullptr && !fallback.empty()) {
        v = find(m, fallback);
    }
    return v ? esc(*v, kMaxValue) : kNone;
}

bool is_shown_elsewhere(std::string_view label, std::string_view target)
{
    return label == "alertname" || label == "severity" || label == "pod" || label == "pod_name" ||
           label == "namespace" || (!target.empty() && label == target);
}

bool contains(const LabelNames &names, std::string_view name)
{
    return std::find(names.begin(), names.end(), name) != names.end();
}

std::string external_base(const Notification &n)
{
    std::string url = safe_link_url(n.external_url);
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url;
}

} // namespace

const LabelNames &default_hidden_labels()
{
    static const LabelNames names = {"prometheus", "prometheus_replica", "uid", "endpoint",
                                     "service"};
    return names;
}

const std::vector<std::pair<std::string, std::string>> &identity_labels()
{
    static const std::vector<std::pair<std::string, std::string>> labels = {
        {"pod", "故障pod"},
        {"pod_name", "故障pod"},
        {"node", "故障节点"},
        {"deployment", "故障deployment"},
        {"statefulset", "故障statefulset"},
        {"daemonset", "故障daemonset"},
        {"job_name", "故障job"},
        // after the workloads: kube-state-metrics' alerts carry its own address as instance
        {"instance", "故障实例"},
        {"job", "故障job"},
    };
    return labels;
}

std::string target_title(const std::string &label)
{
    for (const auto &[name, title] : identity_labels()) {
        if (name == label) {
            return title;
        }
    }
    return "";
}

std::string check_label_name(std::string_view name)
{
    const auto word = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    };
    if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0])) ||
        !std::all_of(name.begin(), name.end(), word)) {
        return "\"" + plain_line(name, 64) + "\" is not a label name (letters, digits and _)";
    }
    return "";
}

std::string add_label_name(LabelNames &names, std::string_view name)
{
    if (std::string why = check_label_name(name); !why.empty()) {
        return why;
    }
    if (name == "off") {
        return "off stands alone: it hides no label";
    }
    if (contains(names, name)) {
        return "\"" + std::string(name) + "\" is named twice";
    }
    if (names.size() == 64) {
        return "too many labels (64 at most)";
    }
    names.emplace_back(name);
    return "";
}

AlertView make_view(const Alert &a, const TimeZone &tz, Escape esc, const LabelNames &hidden)
{
    AlertView v;
    v.alert = &a;
    v.severity = label_or_none(a.labels, esc, "severity");
    v.alertname = label_or_none(a.labels, esc, "alertname");
    v.pod = label_or_none(a.labels, esc, "pod", "pod_name");
    v.namespace_ = label_or_none(a.labels, esc, "namespace");
    v.has_severity = find(a.labels, "severity") != nullptr && !contains(hidden, "severity");
    v.has_alertname = find(a.labels, "alertname") != nullptr && !contains(hidden, "alertname");
    v.has_namespace = find(a.labels, "namespace") != nullptr && !contains(hidden, "namespace");
    for (const auto &id : identity_labels()) {
        const std::string *value = find(a.labels, id.first);
        if (value != nullptr && !contains(hidden, id.first)) {
            v.target_label = id.first;
            v.target = esc(*value, kMaxValue);
            break;
        }
    }

    const std::string *detail = find(a.annotations, "message");
    if (detail == nullptr) {
        detail = find(a.annotations, "description");
    }
    if (detail == nullptr) {
        detail = find(a.annotations, "summary");
    }
    v.detail = detail ? esc(*detail, kMaxDetail) : kNone;
    v.has_detail = detail != nullptr;
    using Form = TimeZone::Form;
    v.starts_at =
        a.starts_at ? tz.format(*a.starts_at, Form::date_time, a.starts_at_offset) : kNone;
    v.ends_at = a.status == Status::resolved && a.ends_at
                    ? tz.format(*a.ends_at, Form::date_time, a.ends_at_offset)
                    : kNone;

    std::string others;
    for (const auto &kv : a.labels) {
        if (!is_shown_elsewhere(kv.first, v.target_label) && !contains(hidden, kv.first)) {
            others += others.empty() ? "" : ", ";
            others.append(kv.first).append("=").append(kv.second);
        }
    }
    v.other_labels = esc(others, kMaxOtherLabels);
    v.link = safe_link_url(a.generator_url);
    return v;
}

std::string plain_title(const Notification &n)
{
    const std::size_t firing = n.count(Status::firing), resolved = n.count(Status::resolved);
    std::string t = "[";
    if (firing > 0) {
        t += "FIRING:" + std::to_string(firing);
    }
    if (resolved > 0) {
        t += firing > 0 ? ", " : "";
        t += "RESOLVED:" + std::to_string(resolved);
    }
    t += "] ";

    std::string names;
    for (const auto &kv : n.group_labels) {
        if (!kv.second.empty()) {
            names += names.empty() ? "" : " ";
            names += kv.second;
        }
    }
    if (names.empty()) {
        const std::string *alertname = find(n.common_labels, "alertname");
        names = alertname ? *alertname : "Alertmanager";
    }
    return plain_line(t + names, kMaxTitle);
}

std::string alertmanager_link(const Notification &n)
{
    const std::string base = external_base(n);
    return base.empty() ? "" : base + "/#/alerts";
}

namespace
{

// Whether url starts with http:// or https://, in any case.
bool is_http(std::string_view url)
{
    auto starts_with_ci = [&](std::string_view prefix) {
        if (url.size() < prefix.size()) {
            return false;
        }
        for (std::size_t i = 0; i < prefix.size(); ++i) {
            if (std::tolower(static_cast<unsigned char>(url[i])) != prefix[i]) {
                return false;
            }
        }
        return true;
    };
    return starts_with_ci("http://") || starts_with_ci("https://");
}

// Alertmanager's new-silence page at base (external_base) with the labels `keep` takes as
// matchers, or "" when it takes none. Only base can need escaping for a link, and it has been
// escaped: what is left to check is the length, and base's http(s):// (cut trailing slashes can
// take it).
template <class Keep>
std::string silence_link(const std::string &base, const Labels &labels, Keep keep)
{
    // {name="value",...} with " and \ escaped in values, URL-encoded as it is written
    std::string link = base + "/#/silences/new?filter=%7B";
    const std::size_t first = link.size();
    for (const auto &[name, value] : labels) {
        if (!keep(name)) {
            continue;
        }
        link += link.size() > first ? "%2C" : "";
        append_url_encoded(link, name);
        link += "%3D%22";
        std::size_t run = 0;
        for (std::size_t i = 0; i < value.size(); ++i) {
            if (value[i] == '"' || value[i] == '\\') {
                append_url_encoded(link, std::string_view(value).substr(run, i - run));
                link += value[i] == '"' ? "%5C%22" : "%5C%5C";
                run = i + 1;
            }
        }
        append_url_encoded(link, std::string_view(value).substr(run));
        link += "%22";
        if (link.size() > kMaxUrl) {
            return "";
        }
    }
    if (link.size() == first) {
        return "";
    }
    link += "%7D";
    if (link.size() > kMaxUrl || !is_http(link)) {
        return "";
    }
    return link;
}

} // namespace

std::string silence_link(const Notification &n, const Labels &matchers)
{
    const std::string base = external_base(n);
    return base.empty() ? ""
                        : silence_link(base, matchers, [](const std::string &) { return true; });
}

std::string silence_link_of(const Notification &n, const Alert &a, const LabelNames &hidden)
{
    const std::string base = external_base(n);
    if (base.empty()) {
        return "";
    }
    const auto shown = [&](const std::string &name) { return !contains(hidden, name); };
    std::string link = silence_link(base, a.labels, shown);
    if (!link.empty() && link.size() <= kMaxSilenceLink) {
        return link; // "" is also a link past kMaxUrl: that one takes the short form too
    }
    return silence_link(base, a.labels, [&](const std::string &name) {
        const bool says_what = name == "alertname" || name == "severity" || name == "namespace" ||
                               !target_title(name).empty();
        return says_what && shown(name);
    });
}

std::string omitted_line(const Notification &n, std::size_t omitted)
{
    const std::uint64_t total = omitted + static_cast<std::uint64_t>(n.truncated_alerts);
    if (total == 0) {
        return "";
    }
    // Alerts past dingtalk_max_alerts were never kept: a limit of one message all the same.
    const char *ours = n.not_kept() > 0 ? "超出单条消息上限" : "超出钉钉消息长度限制";
    std::string line = "**另有 " + std::to_string(total) + " 条告警未显示**";
    if (omitted > 0 && n.truncated_alerts > 0) {
        line += "（" + std::to_string(omitted) + " 条" + ours + "，" +
                std::to_string(n.truncated_alerts) + " 条被 Alertmanager max_alerts 截断）";
    } else if (omitted > 0) {
        line += std::string("（") + ours + "）";
    } else {
        line += "（被 Alertmanager max_alerts 截断）";
    }
    const std::string link = alertmanager_link(n);
    if (!link.empty()) {
        line += "，[在 Alertmanager 中查看全部](" + link + ")";
    }
    return line;
}

namespace
{
// What a link target percent-encodes: spaces, controls and bytes past ASCII, and what would end
// or break a markdown link or an HTML attribute ( ) < > " \\ `.
constexpr std::array<bool, 256> kLinkEscaped = [] {
    std::array<bool, 256> escaped{};
    for (std::size_t c = 0; c < 256; ++c) {
        escaped[c] = c <= 0x20 || c >= 0x7F || c == '(' || c == ')' || c == '<' || c == '>' ||
                     c == '"' || c == '\\' || c == '`';
    }
    return escaped;
}();

} // namespace

std::string safe_link_url(std::string_view url)
{
    if (url.size() > kMaxUrl || !is_http(url)) {
        return "";
    }
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(url.size());
    std::size_t run = 0; // where the bytes not yet copied start: copied a run at a time
    for (std::size_t i = 0; i < url.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(url[i]);
        if (kLinkEscaped[c]) {
            const char escape[3] = {'%', hex[c >> 4], hex[c & 0xF]};
            out.append(url.data() + run, i - run).append(escape, 3);
            run = i + 1;
        }
    }
    out.append(url.data() + run, url.size() - run);
    return out.size() > kMaxUrl ? "" : out;
}

} // namespace dingtalk

namespace dingtalk
{

const Styles &Styles::defaults()
{
    static const Styles styles = [] {
        Styles s;
        s.severities = {{"critical", {"🔴", "#D93026"}},
                        {"error", {"🔴", "#D93026"}},
                        {"warning", {"🟠", "#FF8C00"}},
                        {"info", {"🔵", "#1677FF"}}};
        s.other = {"⚪", "#808080"};
        s.resolved = {"✅", "#2EA44F"};
        return s;
    }();
    return styles;
}

namespace
{

// An emoji goes into markdown and a colour into <font color="...">: nothing that could end
// either.
bool usable_emoji(std::string_view e)
{
    if (e.empty() || e.size() > 32) {
        return false;
    }
    for (std::size_t i = 0; i < e.size();) {
        char32_t cp = 0;
        const std::size_t len = utf8_length(e, i, cp);
        const bool special =
            cp < 0x80 && std::string_view("*_[]()<>&\\`#~|\"'").find(static_cast<char>(cp)) !=
                             std::string_view::npos;
        if (len == 0 || cp <= 0x20 || special) {
            return false;
        }
        i += len;
    }
    return true;
}

bool usable_color(std::string_view c)
{
    auto all = [&](std::size_t from, auto pred) {
        return std::all_of(c.begin() + static_cast<long>(from), c.end(),
                           [&](char ch) { return pred(static_cast<unsigned char>(ch)); });
    };
    if (!c.empty() && c[0] == '#') {
        return (c.size() == 4 || c.size() == 7) && all(1, ::isxdigit);
    }
    return !c.empty() && c.size() <= 20 && all(0, ::isalpha);
}

} // namespace

std::string Styles::set(std::string_view severity, std::string_view emoji, std::string_view color)
{
    if (!usable_emoji(emoji)) {
        return "an emoji is up to 32 bytes of UTF-8, without spaces or markdown specials";
    }
    if (!color.empty() && !usable_color(color)) {
        return "a colour is #RGB, #RRGGBB or a name of letters";
    }
    std::string key(severity);
    for (char &c : key) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (const std::string known = severity_typo_of(key); !known.empty()) {
        return "\"" + key + "\" looks like a typo of \"" + known + "\", which would never match";
    }
    Style *style = key == "resolved" ? &resolved : key == "default" ? &other : nullptr;
    for (auto &s : severities) {
        style = s.first == key ? &s.second : style;
    }
    if (style == nullptr) {
        severities.emplace_back(key, Style{});
        style = &severities.back().second;
    }
    style->emoji.assign(emoji);
    if (!color.empty()) {
        style->color.assign(color);
    }
    return "";
}

std::string severity_key(const Alert &a)
{
    auto it = a.labels.find("severity");
    std::string key = it == a.labels.end() ? "" : it->second;
    for (char &c : key) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return key;
}

namespace
{

// One slip of the keyboard turns `word` into `s`: a letter left out, one mistyped, or two
// neighbours swapped. Never a letter more: "pager", "errors", "high1" are names of their own.
bool one_slip(std::string_view s, std::string_view word)
{
    if (s.size() + 1 == word.size()) {
        for (std::size_t i = 0; i < word.size(); ++i) {
            if (std::string(word.substr(0, i)) + std::string(word.substr(i + 1)) == s) {
                return true;
            }
        }
        return false;
    }
    if (s.size() != word.size()) {
        return false;
    }
    std::vector<std::size_t> diff;
    for (std::size_t i = 0; i < s.size() && diff.size() <= 2; ++i) {
        if (s[i] != word[i]) {
            diff.push_back(i);
        }
    }
    return diff.size() == 1 || (diff.size() == 2 && diff[1] == diff[0] + 1 &&
                                s[diff[0]] == word[diff[1]] && s[diff[1]] == word[diff[0]]);
}

} // namespace

std::string severity_typo_of(std::string_view severity)
{
    static const char *const known[] = {"critical", "error",    "warning", "info",
                                        "page",     "high",     "medium",  "major",
                                        "minor",    "disaster", "notice",  "emergency"};
    if (severity.size() < 4 || severity.size() > 16 ||
        std::find(std::begin(known), std::end(known), severity) != std::end(known)) {
        return "";
    }
    for (const char *k : known) {
        if (one_slip(severity, k)) {
            return k;
        }
    }
    return "";
}

const Style &Styles::of(const Alert &a) const
{
    if (a.status == Status::resolved) {
        return resolved;
    }
    const std::string key = severity_key(a);
    for (const auto &s : severities) {
        if (s.first == key) {
            return s.second;
        }
    }
    return other;
}

const Style &Styles::of(const Notification &n) const
{
    std::size_t best = severities.size() + 1; // firing of another severity: other
    for (const Alert &a : n.alerts) {
        if (a.status != Status::firing) {
            continue;
        }
        const std::string key = severity_key(a);
        std::size_t rank = severities.size();
        for (std::size_t i = 0; i < severities.size(); ++i) {
            rank = severities[i].first == key ? std::min(rank, i) : rank;
        }
        best = std::min(best, rank);
    }
    if (best > severities.size()) {
        return n.firing_total > 0 ? other : resolved; // firing alerts past the cap: unknown
    }
    return best == severities.size() ? other : severities[best].second;
}

namespace
{

std::string two_units(long long big, const char *big_unit, long long small, const char *small_unit,
                      const char *sep)
{
    std::string out = std::to_string(big) + big_unit;
    if (small > 0) {
        out += sep + std::to_string(small) + small_unit;
    }
    return out;
}

template <class Units> std::string spell(std::chrono::seconds d, const Units &u, const char *sep)
{
    const long long s = d.count() < 0 ? 0 : static_cast<long long>(d.count());
    if (s < 60) {
        return std::to_string(s) + u[0];
    }
    if (s < 3600) {
        return std::to_string(s / 60) + u[1];
    }
    if (s < 86400) {
        return two_units(s / 3600, u[2], s % 3600 / 60, u[1], sep);
    }
    return two_units(s / 86400, u[3], s % 86400 / 3600, u[2], sep);
}

} // namespace

std::string duration_words(std::chrono::seconds d)
{
    static const char *const units[] = {"秒", "分钟", "小时", "天"};
    return spell(d, units, "");
}

std::string duration_short(std::chrono::seconds d)
{
    static const char *const units[] = {"s", "m", "h", "d"};
    return spell(d, units, " ");
}

} // namespace dingtalk
