#include "render.hpp"

#include <algorithm>

namespace dingtalk
{

namespace
{

std::string builtin_block(const AlertView &v)
{
    std::string b;
    b.reserve(256 + v.detail.size() + v.other_labels.size() + v.link.size());
    b += "**告警级别**: " + v.severity + "\n\n";
    b += "**告警类型**: " + v.alertname + "\n\n";
    b += "**故障pod**: " + v.pod + "\n\n";
    b += "**故障namespace**: " + v.namespace_ + "\n\n";
    b += "**告警详情**: " + v.detail + "\n\n";
    b += "**告警状态**: " + std::string(to_string(v.alert->status)) + "\n\n";
    b += "**触发时间**: " + v.starts_at + "\n\n";
    if (v.alert->status == Status::resolved) {
        b += "**结束时间**: " + v.ends_at + "\n\n";
    }
    if (!v.other_labels.empty()) {
        b += "**其他标签**: " + v.other_labels + "\n\n";
    }
    if (!v.link.empty()) {
        b += "[查看图表](" + v.link + ")\n\n";
    }
    return b;
}

// The request body is written directly rather than through jansson: it is on every delivery's
// path, and jansson's dump (UTF-8 decoding per character) was a third of the rendering time.
void append_json_string(std::string &out, std::string_view s)
{
    static const char hex[] = "0123456789abcdef";
    out += '"';
    std::size_t run = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        out.append(s.data() + run, i - run);
        run = i + 1;
        switch (c) {
        case '"':
            out += "\\\"";
            break;
        case '\\':
            out += "\\\\";
            break;
        case '\n':
            out += "\\n";
            break;
        case '\t':
            out += "\\t";
            break;
        case '\r':
            out += "\\r";
            break;
        case '\b':
            out += "\\b";
            break;
        case '\f':
            out += "\\f";
            break;
        default:
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xF];
        }
    }
    out.append(s.data() + run, s.size() - run);
    out += '"';
}

void append_json_array(std::string &out, const std::vector<std::string> &v)
{
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        append_json_string(out, v[i]);
    }
    out += ']';
}

// {"msgtype":"markdown","markdown":{"title":...,"text":...},"at":{...}}. Every string in it
// is valid UTF-8 (values are sanitized when rendered), so this is valid JSON.
std::string request_body(const std::string &title, const std::string &text, const Mentions &at)
{
    std::string out;
    out.reserve(64 + title.size() + text.size() + text.size() / 8);
    out += R"({"msgtype":"markdown","markdown":{"title":)";
    append_json_string(out, title);
    out += R"(,"text":)";
    append_json_string(out, text);
    out += '}';
    if (!at.empty()) {
        out += R"(,"at":{"atMobiles":)";
        append_json_array(out, at.mobiles);
        out += R"(,"atUserIds":)";
        append_json_array(out, at.user_ids);
        out += at.all ? R"(,"isAtAll":true})" : R"(,"isAtAll":false})";
    }
    out += '}';
    return out;
}

void collapse_blank_lines(std::string &text)
{
    std::string tidy;
    tidy.reserve(text.size());
    std::size_t newlines = 0;
    for (const char c : text) {
        newlines = c == '\n' ? newlines + 1 : 0;
        if (newlines <= 2 && !(c == '\n' && tidy.empty())) {
            tidy += c;
        }
    }
    text.swap(tidy);
}

// DingTalk highlights a mention only when the text names it too: make sure it does, whatever
// a template printed.
std::string with_mentions(std::string text, const Mentions &at, bool tidy_blank_lines)
{
    // Blank lines collapse into one (markdown gives them no meaning, and template lines that
    // hold only a section tag leave them); no blank lines at either end.
    if (tidy_blank_lines) {
        collapse_blank_lines(text);
    }
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
    bool missing = at.all && at.mobiles.empty() && at.user_ids.empty() &&
                   text.find("@所有人") == std::string::npos;
    for (const auto *list : {&at.mobiles, &at.user_ids}) {
        for (const auto &m : *list) {
            missing = missing || text.find("@" + m) == std::string::npos;
        }
    }
    if (missing) {
        text += "\n\n" + mention_line(at);
    }
    return text;
}

// Cuts text so that its JSON-escaped size is at most `budget`, at a UTF-8 boundary. A last
// resort for templates whose fixed part alone is too large.
std::string cut_to_fit(const std::string &text, std::size_t budget)
{
    const std::string ellipsis = "…";
    std::size_t used = json_escaped_size(ellipsis), end = 0;
    while (end < text.size()) {
        std::size_t next = end + 1;
        while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) {
            ++next;
        }
        const std::size_t cost = json_escaped_size(std::string_view(text).substr(end, next - end));
        if (used + cost > budget) {
            break;
        }
        used += cost;
        end = next;
    }
    return text.substr(0, end) + (end < text.size() ? ellipsis : "");
}

class Composer
{
public:
    Composer(const Notification &n, const RenderOptions &opt) : n_(n), opt_(opt)
    {
        // Firing first: when space runs out, what is still burning matters most.
        order_.reserve(n.alerts.size());
        for (const Status s : {Status::firing, Status::resolved}) {
            for (const auto &a : n.alerts) {
                if (a.status == s) {
                    order_.push_back(&a);
                }
            }
        }
        header_ = "### " + escape_markdown(plain_title(n), kMaxTitle * 2) + "\n\n";
        views_.reserve(order_.size()); // views are handed out by address: never reallocate
    }

    std::size_t total() const { return order_.size(); }

    // Text with the first k alerts of the order.
    std::string text(std::size_t k)
    {
        if (opt_.text_template) {
            std::vector<const AlertView *> shown;
            shown.reserve(k);
            for (std::size_t i = 0; i < k; ++i) {
                shown.push_back(&view(i));
            }
            return with_mentions(opt_.text_template->render_text(n_, shown, total() - k, opt_.at),
                                 opt_.at, true);
        }
        std::string t = header_;
        for (std::size_t i = 0; i < k; ++i) {
            const Status s = order_[i]->status;
            if (i == 0 || s != order_[i - 1]->status) {
                t += s == Status::firing
                         ? "#### 告警中 (" + std::to_string(n_.count(Status::firing)) + ")\n\n"
                         : "#### 已恢复 (" + std::to_string(n_.count(Status::resolved)) + ")\n\n";
            } else {
                t += "---\n\n";
            }
            t += block(i);
        }
        const std::string more = omitted_line(n_, total() - k);
        t += more.empty() ? "" : more + "\n\n";
        return with_mentions(std::move(t), opt_.at, false);
    }

    // How many alerts could fit at most, judging by their blocks alone (built-in layout).
    std::size_t upper_bound(std::size_t budget)
    {
        if (opt_.text_template) {
            return total();
        }
        std::size_t used = json_escaped_size(header_), k = 0;
        while (k < total()) {
            used += json_escaped_size(block(k));
            if (used > budget) {
                break;
            }
            ++k;
        }
        return k;
    }

private:
    const AlertView &view(std::size_t i)
    {
        while (views_.size() <= i) {
            views_.push_back(make_view(*order_[views_.size()], *opt_.zone));
        }
        return views_[i];
    }

    const std::string &block(std::size_t i)
    {
        while (blocks_.size() <= i) {
            blocks_.push_back(builtin_block(view(blocks_.size())));
        }
        return blocks_[i];
    }

    const Notification &n_;
    const RenderOptions &opt_;
    std::vector<const Alert *> order_;
    std::vector<AlertView> views_; // built as needed: a 1000-alert group shows a few dozen
    std::vector<std::string> blocks_;
    std::string header_;
};

} // namespace

Mentions resolve_mentions(const std::vector<MentionRule> &rules, const Notification &n)
{
    Mentions at;
    for (const auto &rule : rules) {
        bool applies = rule.severities.empty();
        for (const auto &a : n.alerts) {
            auto sev = a.labels.find("severity");
            applies = applies || (a.status == Status::firing && sev != a.labels.end() &&
                                  std::find(rule.severities.begin(), rule.severities.end(),
                                            sev->second) != rule.severities.end());
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

Message render_message(const Notification &n, const RenderOptions &opt)
{
    Message m;
    if (opt.title_template) {
        m.title = opt.title_template->render_title(n, opt.at);
    }
    if (m.title.empty()) {
        m.title = plain_title(n);
    }

    Composer c(n, opt);
    const std::size_t max = opt.max_request_bytes;
    auto attempt = [&](std::size_t k) {
        m.text = c.text(k);
        m.request_body = request_body(m.title, m.text, opt.at);
        m.shown = k;
        return m.request_body.size() <= max;
    };

    // Usually everything fits. If not, find the most alerts that do: the size grows with every
    // alert shown (the "N more" line changes by a digit at most), so a binary search is exact.
    const std::size_t bound = c.upper_bound(max);
    if (bound >= c.total() && attempt(c.total())) {
        m.omitted = 0;
        return m;
    }
    std::size_t lo = 1, hi = std::min(bound, c.total() - 1), best = 0;
    while (lo <= hi) {
        const std::size_t mid = lo + (hi - lo) / 2;
        if (attempt(mid)) {
            best = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    if (best == 0 || !attempt(best)) {
        // Not even one alert fits (a template's fixed text, a huge mention list): cut the text.
        attempt(1);
        const std::size_t overhead = request_body(m.title, "", opt.at).size();
        m.text = cut_to_fit(m.text, max > overhead ? max - overhead : 0);
        m.request_body = request_body(m.title, m.text, opt.at);
        best = 1;
    }
    m.shown = best;
    m.omitted = c.total() - best;
    return m;
}

} // namespace dingtalk
