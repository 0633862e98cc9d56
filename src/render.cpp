#include "render.hpp"

#include "json.hpp"

#include <cctype>
#include <cstdlib>
#include <memory>

namespace dingtalk
{

namespace
{

// Caps per value keep one alert well under the message limit, so at least one always fits.
constexpr std::size_t kMaxValue = 512;
constexpr std::size_t kMaxDetail = 2048;
constexpr std::size_t kMaxOtherLabels = 1024;
constexpr std::size_t kMaxUrl = 2048;
constexpr std::size_t kMaxTitle = 128;

const std::string kNone = "-";

bool is_continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

const std::string *find(const Labels &m, const char *key)
{
    auto it = m.find(key);
    return it == m.end() || it->second.empty() ? nullptr : &it->second;
}

std::string label_or_none(const Labels &m, const char *key, const char *fallback = nullptr)
{
    const std::string *v = find(m, key);
    if (v == nullptr && fallback != nullptr) {
        v = find(m, fallback);
    }
    return v ? escape_markdown(*v, kMaxValue) : kNone;
}

// Plain text for the title: one line, cut to a few words' worth.
std::string plain_line(std::string_view in, std::size_t max_bytes)
{
    std::string out;
    for (std::size_t i = 0; i < in.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(in[i]);
        const bool space = c < 0x20 || c == 0x7F;
        if (out.size() >= max_bytes && !is_continuation(c)) {
            out += "…";
            break;
        }
        if (space) {
            if (!out.empty() && out.back() != ' ') {
                out += ' ';
            }
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string title_of(const Notification &n)
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

bool is_shown_elsewhere(const std::string &label)
{
    return label == "alertname" || label == "severity" || label == "pod" || label == "pod_name" ||
           label == "namespace";
}

std::string alert_block(const Alert &a, const Zone &zone)
{
    const std::string *detail = find(a.annotations, "message");
    if (detail == nullptr) {
        detail = find(a.annotations, "description");
    }
    if (detail == nullptr) {
        detail = find(a.annotations, "summary");
    }

    std::string b;
    b += "**告警级别**: " + label_or_none(a.labels, "severity") + "\n\n";
    b += "**告警类型**: " + label_or_none(a.labels, "alertname") + "\n\n";
    b += "**故障pod**: " + label_or_none(a.labels, "pod", "pod_name") + "\n\n";
    b += "**故障namespace**: " + label_or_none(a.labels, "namespace") + "\n\n";
    b += "**告警详情**: " + (detail ? escape_markdown(*detail, kMaxDetail) : kNone) + "\n\n";
    b += "**告警状态**: " + std::string(to_string(a.status)) + "\n\n";
    b += "**触发时间**: " + (a.starts_at ? zone.format(*a.starts_at) : kNone) + "\n\n";
    if (a.status == Status::resolved) {
        b += "**结束时间**: " + (a.ends_at ? zone.format(*a.ends_at) : kNone) + "\n\n";
    }

    std::string others;
    for (const auto &kv : a.labels) {
        if (!is_shown_elsewhere(kv.first)) {
            others += others.empty() ? "" : ", ";
            others += kv.first + "=" + kv.second;
        }
    }
    if (!others.empty()) {
        b += "**其他标签**: " + escape_markdown(others, kMaxOtherLabels) + "\n\n";
    }

    const std::string link = safe_link_url(a.generator_url);
    if (!link.empty()) {
        b += "[查看图表](" + link + ")\n\n";
    }
    return b;
}

std::string alertmanager_link(const Notification &n)
{
    std::string url = safe_link_url(n.external_url);
    if (url.empty()) {
        return "";
    }
    while (!url.empty() && url.back() == '/') {
        url.pop_back();
    }
    return url + "/#/alerts";
}

std::string omitted_line(const Notification &n, std::size_t omitted)
{
    const std::uint64_t total = omitted + static_cast<std::uint64_t>(n.truncated_alerts);
    if (total == 0) {
        return "";
    }
    std::string line = "**另有 " + std::to_string(total) + " 条告警未显示**";
    if (omitted > 0 && n.truncated_alerts > 0) {
        line += "（" + std::to_string(omitted) + " 条超出钉钉消息长度限制，" +
                std::to_string(n.truncated_alerts) + " 条被 Alertmanager max_alerts 截断）";
    } else if (omitted > 0) {
        line += "（超出钉钉消息长度限制）";
    } else {
        line += "（被 Alertmanager max_alerts 截断）";
    }
    const std::string link = alertmanager_link(n);
    if (!link.empty()) {
        line += "，[在 Alertmanager 中查看全部](" + link + ")";
    }
    return line + "\n\n";
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
    return line.empty() ? "" : line + "\n\n";
}

json_t *string_array(const std::vector<std::string> &v)
{
    json_t *a = json_array();
    for (const auto &s : v) {
        json_array_append_new(a, json_stringn(s.data(), s.size()));
    }
    return a;
}

std::string request_body(const std::string &title, const std::string &text, const Mentions &at)
{
    JsonPtr root(json_object());
    json_t *md = json_object();
    json_object_set_new(md, "title", json_stringn(title.data(), title.size()));
    json_object_set_new(md, "text", json_stringn(text.data(), text.size()));
    json_object_set_new(root.get(), "msgtype", json_string("markdown"));
    json_object_set_new(root.get(), "markdown", md);
    if (!at.empty()) {
        json_t *a = json_object();
        json_object_set_new(a, "atMobiles", string_array(at.mobiles));
        json_object_set_new(a, "atUserIds", string_array(at.user_ids));
        json_object_set_new(a, "isAtAll", json_boolean(at.all));
        json_object_set_new(root.get(), "at", a);
    }
    return json_dump(root.get());
}

// Assembles the text from the first `shown` alerts of the ordered list.
std::string assemble(const Notification &n, const std::vector<const Alert *> &order,
                     const std::vector<std::string> &blocks, std::size_t shown,
                     const std::string &header, const std::string &tail)
{
    std::string text = header;
    bool firing_header = false, resolved_header = false;
    for (std::size_t i = 0; i < shown; ++i) {
        const Status s = order[i]->status;
        if (s == Status::firing && !firing_header) {
            text += "#### 告警中 (" + std::to_string(n.count(Status::firing)) + ")\n\n";
            firing_header = true;
        } else if (s == Status::resolved && !resolved_header) {
            text += "#### 已恢复 (" + std::to_string(n.count(Status::resolved)) + ")\n\n";
            resolved_header = true;
        } else {
            text += "---\n\n";
        }
        text += blocks[i];
    }
    text += omitted_line(n, order.size() - shown);
    text += tail;
    while (!text.empty() && text.back() == '\n') {
        text.pop_back();
    }
    return text;
}

} // namespace

std::size_t json_escaped_size(std::string_view s)
{
    std::size_t n = 0;
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
            c == '\t') {
            n += 2;
        } else if (c < 0x20) {
            n += 6;
        } else {
            n += 1;
        }
    }
    return n;
}

std::string escape_markdown(std::string_view in, std::size_t max_bytes)
{
    std::string out;
    out.reserve(in.size() < max_bytes ? in.size() + 16 : max_bytes + 8);
    for (std::size_t i = 0; i < in.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(in[i]);
        if (out.size() >= max_bytes && !is_continuation(c)) {
            out += "…";
            break;
        }
        if (c < 0x20 || c == 0x7F) {
            if (!out.empty() && out.back() != ' ') {
                out += ' ';
            }
            continue;
        }
        switch (c) {
        case '\\':
        case '`':
        case '*':
        case '_':
        case '[':
        case ']':
        case '~':
            out += '\\';
            out += static_cast<char>(c);
            break;
        case '<':
            out += "&lt;";
            break;
        case '>':
            out += "&gt;";
            break;
        case '&':
            out += "&amp;";
            break;
        default:
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string safe_link_url(std::string_view url)
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
    if (url.size() > kMaxUrl || !(starts_with_ci("http://") || starts_with_ci("https://"))) {
        return "";
    }
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : url) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7F || c == '(' || c == ')' || c == '<' || c == '>' || c == '"' ||
            c == '\\' || c == '`') {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out.size() > kMaxUrl ? "" : out;
}

Message render_message(const Notification &n, const RenderOptions &opt)
{
    Message m;
    m.title = title_of(n);

    // Firing first: when space runs out, what is still burning matters most.
    std::vector<const Alert *> order;
    order.reserve(n.alerts.size());
    for (const auto &a : n.alerts) {
        if (a.status == Status::firing) {
            order.push_back(&a);
        }
    }
    for (const auto &a : n.alerts) {
        if (a.status == Status::resolved) {
            order.push_back(&a);
        }
    }

    const std::string header = "### " + escape_markdown(m.title, kMaxTitle * 2) + "\n\n";
    const std::string tail = mention_line(opt.at);

    // Fixed cost: the JSON around the text, the header, the tail, and the longest possible
    // "N more" line (its link and digits do not depend on how many fit).
    const std::size_t fixed = request_body(m.title, "", opt.at).size() + json_escaped_size(header) +
                              json_escaped_size(tail) +
                              json_escaped_size(omitted_line(n, n.alerts.size())) + 64;

    std::vector<std::string> blocks;
    std::size_t used = fixed, shown = 0;
    for (const Alert *a : order) {
        std::string block = alert_block(*a, *opt.zone);
        // section heading or separator, at most this long
        const std::size_t cost = json_escaped_size(block) + 48;
        if (used + cost > opt.max_request_bytes && shown > 0) {
            break;
        }
        used += cost;
        blocks.push_back(std::move(block));
        ++shown;
    }

    // The estimate above is conservative; the exact size decides, dropping alerts if needed.
    for (;;) {
        m.text = assemble(n, order, blocks, shown, header, tail);
        m.request_body = request_body(m.title, m.text, opt.at);
        if (m.request_body.size() <= opt.max_request_bytes || shown <= 1) {
            break;
        }
        --shown;
    }
    m.shown = shown;
    m.omitted = order.size() - shown;
    return m;
}

} // namespace dingtalk
