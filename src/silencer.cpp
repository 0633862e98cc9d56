#include "silencer.hpp"

#include "metrics.hpp"
#include "text.hpp"

#include <algorithm>

namespace dingtalk
{

namespace
{

char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

// %XX and '+' decoded; false on a broken escape.
bool form_decode(std::string_view in, std::string &out)
{
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '+') {
            out.push_back(' ');
        } else if (in[i] != '%') {
            out.push_back(in[i]);
        } else if (i + 2 < in.size() && hex_digit(in[i + 1]) >= 0 && hex_digit(in[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex_digit(in[i + 1]) * 16 + hex_digit(in[i + 2])));
            i += 2;
        } else {
            return false;
        }
    }
    return true;
}

// Valid UTF-8, line breaks as spaces, no other control character, at most max bytes.
const char *clean_line(std::string &s, std::size_t max)
{
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        const std::size_t n = utf8_length(s, i, cp);
        if (n == 0) {
            return "不是 UTF-8";
        }
        if (cp == '\r' || cp == '\n' || cp == '\t') {
            s[i] = ' ';
        } else if (cp < 0x20 || cp == 0x7F) {
            return "含有控制字符";
        }
        i += n;
    }
    return s.size() > max ? "过长" : nullptr;
}

// The form field's index in ActionForm's order, or -1 for one the page does not have.
int field_index(std::string_view name)
{
    static constexpr std::string_view names[] = {"l", "t", "name", "comment"};
    for (int i = 0; i < 4; ++i) {
        if (names[i] == name) {
            return i;
        }
    }
    return -1;
}

std::string duration_of(const ActionLink &link)
{
    return silence_duration_text(link.seconds, link.until_resolved);
}

ResultPage failure_page(const SilenceResult &r)
{
    ResultPage p;
    p.heading = "未静默";
    p.message = (r.unreachable ? "无法连接 Alertmanager：没有做任何更改。"
                 : r.too_large ? "Alertmanager 的回答超过了本服务器读取的上限：没有做任何更改。"
                               : "Alertmanager 拒绝了这个静默：没有做任何更改。") +
                std::string("请稍后再试，或在 Alertmanager 中静默这条告警。");
    // r.error (Alertmanager's address, its answer) goes to the log only: whoever holds a link
    // sees the page
    return p;
}

} // namespace

bool parse_action_form(std::string_view body, ActionForm &form, std::string &error)
{
    if (body.size() > kMaxActionForm) {
        error = "表单超过 4096 字节";
        return false;
    }
    std::string *fields[] = {&form.link, &form.token, &form.name, &form.comment};
    bool seen[4] = {false, false, false, false};
    while (!body.empty()) {
        const std::size_t end = std::min(body.find('&'), body.size());
        const std::string_view pair = body.substr(0, end);
        body.remove_prefix(std::min(end + 1, body.size()));
        const std::size_t eq = std::min(pair.find('='), pair.size());
        const int i = field_index(pair.substr(0, eq));
        if (i < 0) {
            continue;
        }
        if (seen[i] || !form_decode(pair.substr(std::min(eq + 1, pair.size())), *fields[i])) {
            error = "表单字段“" + std::string(pair.substr(0, eq)) + "”损坏或重复";
            return false;
        }
        seen[i] = true;
    }
    const char *name = clean_line(form.name, kMaxNameBytes);
    const char *comment = clean_line(form.comment, kMaxCommentBytes);
    error = name      ? std::string("姓名") + name
            : comment ? std::string("备注") + comment
                      : std::string();
    return error.empty();
}

bool is_form_type(std::string_view content_type)
{
    static constexpr std::string_view form = "application/x-www-form-urlencoded";
    if (content_type.size() < form.size() ||
        !std::equal(form.begin(), form.end(), content_type.begin(),
                    [](char a, char b) { return a == ascii_lower(b); })) {
        return false;
    }
    const std::string_view rest = content_type.substr(form.size());
    return rest.empty() || rest.front() == ';' || rest.front() == ' ';
}

const char *cross_site(std::string_view origin, std::string_view fetch_site, std::string_view host)
{
    if (!fetch_site.empty() && fetch_site != "same-origin" && fetch_site != "none") {
        return "表单来自其他网站（Sec-Fetch-Site）";
    }
    if (origin.empty() || origin == "null") {
        return nullptr;
    }
    const std::size_t scheme = origin.find("://");
    const std::string_view authority =
        scheme == std::string_view::npos ? std::string_view() : origin.substr(scheme + 3);
    const bool same = !authority.empty() && authority.size() == host.size() &&
                      std::equal(authority.begin(), authority.end(), host.begin(),
                                 [](char a, char b) { return ascii_lower(a) == ascii_lower(b); });
    return same ? nullptr : "表单来自其他网站（Origin）";
}

std::string page_time(const TimeZone &zone, std::int64_t unix_seconds)
{
    return zone.format(TimePoint(std::chrono::seconds(unix_seconds)));
}

namespace
{

// Alertmanager's endsAt ("2027-01-15T10:00:00.000Z") as the pages show times; as it came when
// it is no RFC 3339 time.
std::string shown_end(const TimeZone &zone, const std::string &ends_at)
{
    const std::optional<TimePoint> t = parse_rfc3339(ends_at);
    return t ? zone.format(*t) : ends_at;
}

} // namespace

ActionOutcome silence_from_link(const AlertmanagerApi &api, const ActionLink &link,
                                const ActionForm &form, std::int64_t now, const TimeZone &zone)
{
    ActionOutcome out;
    const SilenceResult found = find_silences(api, link.matchers);
    if (found.ok && !found.silences.empty()) {
        const Silence &s = found.silences.front();
        out.result = ActionResult::already;
        out.silence_id = s.id;
        out.until_resolved = link.until_resolved && made_until_resolved(s);
        out.page = {
            true,
            "已在静默中",
            "这条告警已经在静默中：没有做任何更改。",
            {{"创建者", s.created_by}, {"截止", shown_end(zone, s.ends_at)}, {"备注", s.comment}}};
        return out;
    }
    NewSilence n;
    n.matchers = link.matchers;
    n.starts_at = now;
    n.ends_at = now + link.seconds;
    n.created_by = form.name.empty() ? "DingTalk" : "DingTalk: " + form.name;
    n.comment = "从钉钉静默，" + duration_of(link) +
                (form.comment.empty() ? "" : std::string("：") + form.comment);
    const SilenceResult made = found.ok ? create_silence(api, n) : found;
    if (!made.ok) {
        out.error = made.error;
        out.page = failure_page(made);
        return out;
    }
    out.result = ActionResult::created;
    out.silence_id = made.id;
    out.until_resolved = link.until_resolved;
    out.page = {
        true,
        "已静默",
        "Alertmanager 已静默这条告警，" + duration_of(link) + "。",
        {{"截止", page_time(zone, n.ends_at)}, {"创建者", n.created_by}, {"静默 ID", made.id}}};
    return out;
}

bool made_until_resolved(const Silence &s)
{
    // the comment silence_from_link writes for an "until resolved" link:
    // "从钉钉静默，直到恢复（最长7天）"
    static constexpr std::string_view kComment = "从钉钉静默，直到恢复";
    return s.comment.compare(0, kComment.size(), kComment) == 0;
}

static_assert(static_cast<std::size_t>(ActionResult::refused) + 1 == kActionResults,
              "dingtalk_actions_total has a series per result");

const char *to_string(ActionResult r)
{
    return action_label(static_cast<std::size_t>(r));
}

} // namespace dingtalk
