#include "render.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <unordered_set>

namespace dingtalk
{

namespace
{

// "**title**: value" and a blank line.
void add_line(std::string &b, std::string_view title, std::string_view value)
{
    b.append("**").append(title).append("**: ").append(value).append("\n\n");
}

std::string builtin_block(const AlertView &v, const std::string &silence)
{
    std::string b;
    b.reserve(256 + v.detail.size() + v.other_labels.size() + v.link.size() + silence.size());
    if (v.has_severity) {
        add_line(b, "告警级别", v.severity);
    }
    if (v.has_alertname) {
        add_line(b, "告警类型", v.alertname);
    }
    if (!v.target.empty()) {
        add_line(b, target_title(v.target_label), v.target);
    }
    if (v.has_namespace) {
        add_line(b, "故障namespace", v.namespace_);
    }
    if (v.has_detail) {
        add_line(b, "告警详情", v.detail);
    }
    add_line(b, "告警状态", to_string(v.alert->status));
    add_line(b, "触发时间", v.starts_at);
    if (v.alert->status == Status::resolved) {
        add_line(b, "结束时间", v.ends_at);
    }
    if (!v.other_labels.empty()) {
        add_line(b, "其他标签", v.other_labels);
    }
    if (!v.link.empty()) {
        b.append("[查看图表](").append(v.link).append(")");
    }
    if (!silence.empty()) {
        b.append(v.link.empty() ? "" : " · ").append("[静默](").append(silence).append(")");
    }
    if (!v.link.empty() || !silence.empty()) {
        b += "\n\n";
    }
    return b;
}

// Bytes each byte takes inside a JSON string literal beyond its own, as jansson writes it: 1 for
// the two-character escapes, 5 for the other controls (\u00XX), 0 for every other byte.
constexpr std::array<unsigned char, 256> kJsonExtra = [] {
    std::array<unsigned char, 256> extra{};
    for (std::size_t c = 0; c < 0x20; ++c) {
        extra[c] = 5;
    }
    for (const unsigned char c : {'"', '\\', '\b', '\f', '\n', '\r', '\t'}) {
        extra[c] = 1;
    }
    return extra;
}();

// The bytes of s[i, i + 8) that may need an escape in JSON, as the high bit of each byte of the
// result (byte k of s in bits 8k to 8k + 7): every control, '"' and '\\', and runs of ' ', '#'
// or ']' just above one of them (the zero-byte test of Bit Twiddling Hacks, against each: a
// borrow out of a byte that matched can mark the bytes above it, never hide one).
std::uint64_t escape_marks(std::string_view s, std::size_t i)
{
    constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    const auto below = [&](std::uint64_t w, std::uint64_t c) {
        return (w - ones * c) & ~w & highs;
    };
    return below(word, 0x20) | below(word ^ (ones * '"'), 1) | below(word ^ (ones * '\\'), 1);
}

// Calls f(k, c) for each byte c = s[k] that needs an escape in JSON, in order: eight bytes at a
// time, and within those only at the bytes escape_marks points to.
template <class F> void for_each_json_escape(std::string_view s, F f)
{
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        for (std::uint64_t m = escape_marks(s, i); m != 0; m &= m - 1) {
            const std::size_t k = i + static_cast<std::size_t>(__builtin_ctzll(m)) / 8;
            const unsigned char c = static_cast<unsigned char>(s[k]);
            if (kJsonExtra[c] != 0) {
                f(k, c);
            }
        }
    }
    for (; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (kJsonExtra[c] != 0) {
            f(i, c);
        }
    }
}

// The escape of a byte that kJsonExtra says needs one, written at p; returns the end.
char *write_json_escape(char *p, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '\\';
    switch (c) {
    case '\n':
        *p++ = 'n';
        break;
    case '\t':
        *p++ = 't';
        break;
    case '\r':
        *p++ = 'r';
        break;
    case '\b':
        *p++ = 'b';
        break;
    case '\f':
        *p++ = 'f';
        break;
    case '"':
    case '\\':
        *p++ = static_cast<char>(c);
        break;
    default:
        *p++ = 'u';
        *p++ = '0';
        *p++ = '0';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0xF];
    }
    return p;
}

// The request body is written directly rather than through jansson: it is on every delivery's
// path, and jansson's dump (UTF-8 decoding per character) was a third of the rendering time.
// Sized first, then written in place, runs of plain bytes copied at once.
void append_json_string(std::string &out, std::string_view s)
{
    const std::size_t at = out.size();
    out.resize(at + json_escaped_size(s) + 2);
    char *p = &out[at];
    *p++ = '"';
    std::size_t run = 0;
    for_each_json_escape(s, [&](std::size_t k, unsigned char c) {
        p = write_json_escape(std::copy(s.data() + run, s.data() + k, p), c);
        run = k + 1;
    });
    p = std::copy(s.data() + run, s.data() + s.size(), p);
    *p = '"';
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

void trim_end(std::string &text)
{
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
}

// What must follow the text so that DingTalk highlights every mention: it does so only when
// the text names the mention too, whatever a template printed. "" when nothing is missing.
std::string mention_suffix(const std::string &text, const Mentions &at)
{
    bool missing = at.all && at.mobiles.empty() && at.user_ids.empty() &&
                   text.find("@所有人") == std::string::npos;
    for (const auto *list : {&at.mobiles, &at.user_ids}) {
        for (const auto &m : *list) {
            missing = missing || text.find("@" + m) == std::string::npos;
        }
    }
    return missing ? "\n\n" + mention_line(at) : "";
}

// What follows the text: the mentions it lacks, then the robot's keyword when the text lacks it
// (DingTalk refuses a message without one, 310000): last, as after a template's own mentions.
std::string closing_lines(const std::string &text, const RenderOptions &opt)
{
    std::string lines = mention_suffix(text, opt.at);
    if (!opt.keyword.empty() && text.find(opt.keyword) == std::string::npos &&
        lines.find(opt.keyword) == std::string::npos) {
        lines += "\n\n" + opt.keyword;
    }
    return lines;
}

std::string with_closing_lines(std::string text, const RenderOptions &opt)
{
    trim_end(text);
    return text + closing_lines(text, opt);
}

// The longest run of whole lines of text whose JSON-escaped size is at most budget; a single
// line too long for it is cut at a UTF-8 boundary, and an emphasis left open by the cut is
// dropped. A last resort for templates whose fixed part alone is too large: what is left must
// still read as markdown, and the mentions after it must stay whole.
std::string cut_to_fit(const std::string &text, std::size_t budget)
{
    const std::string ellipsis = "…";
    std::size_t used = json_escaped_size("\n\n" + ellipsis), end = 0, line_end = 0;
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
        line_end = text[end - 1] == '\n' ? end : line_end;
    }
    if (end == text.size()) {
        return text;
    }
    std::string kept = text.substr(0, line_end > 0 ? line_end : end);
    if (line_end == 0) {
        std::size_t stars = 0;
        for (std::size_t p = kept.find("**"); p != std::string::npos; p = kept.find("**", p + 2)) {
            ++stars;
        }
        if (stars % 2 == 1) {
            kept.erase(kept.rfind("**"));
        }
        while (!kept.empty() && kept.back() == '\\') {
            kept.pop_back(); // a dangling escape would swallow what follows
        }
    }
    trim_end(kept);
    return kept + (kept.empty() ? "" : "\n\n") + ellipsis;
}

class Composer
{
public:
    Composer(const Notification &n, const RenderOptions &opt)
        : n_(n), opt_(opt),
          hidden_(opt.hidden_labels ? *opt.hidden_labels : default_hidden_labels())
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
        set_page(Page{});
        // views are handed out by address: never reallocate
        views_.reserve(order_.size());
        plain_views_.reserve(order_.size());
        now_ = opt.now != TimePoint{} ? opt.now
                                      : std::chrono::time_point_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now());
    }

    // Which alerts of the order a message shows: from `begin`; " (1/3)" after its title when
    // it is one of several; whether it is the last (only the last says what is not shown).
    struct Page {
        std::size_t begin = 0;
        std::string part;
        bool last = true;
    };

    void set_page(Page p)
    {
        page_ = std::move(p);
        header_ = "### " + escape_markdown(plain_title(n_) + page_.part, kMaxTitle * 2) + "\n\n";
    }

    // The title with k alerts of the page shown: the title template's, else the built-in one.
    std::string title(std::size_t k)
    {
        std::string t;
        if (opt_.title_template) {
            TemplateInput in = input(k, plain_views_, plain_line);
            in.part.clear(); // added below, whatever the template makes of the title
            t = opt_.title_template->render(in);
        }
        return (t.empty() ? plain_title(n_) : t) + page_.part;
    }

    std::size_t total() const { return order_.size(); } // the alerts that may be shown

    // Alerts of the notification a message with k alerts of the page does not show: all but
    // those shown by it and the pages before it, when it is the last; none before the last.
    std::size_t not_shown(std::size_t k) const
    {
        return page_.last ? n_.total() - page_.begin - k : 0;
    }

    // Text with k alerts of the page, mentions not yet added.
    std::string body(std::size_t k)
    {
        if (opt_.text_template) {
            std::string t = opt_.text_template->render(input(k, views_, escape_markdown));
            // Blank lines collapse into one: markdown gives them no meaning.
            collapse_blank_lines(t);
            return t;
        }
        std::string t = header_;
        for (std::size_t i = page_.begin; i < page_.begin + k; ++i) {
            const Status s = order_[i]->status;
            if (i == page_.begin || s != order_[i - 1]->status) {
                t += s == Status::firing
                         ? "#### 告警中 (" + std::to_string(n_.count(Status::firing)) + ")\n\n"
                         : "#### 已恢复 (" + std::to_string(n_.count(Status::resolved)) + ")\n\n";
            } else {
                t += "---\n\n";
            }
            t += block(i);
        }
        const std::string more = page_.last ? omitted_line(n_, not_shown(k)) : "";
        t += more.empty() ? "" : more + "\n\n";
        return t;
    }

    std::string text(std::size_t k) { return with_closing_lines(body(k), opt_); }

    // How many alerts could fit at most, judging by their blocks alone (built-in layout).
    std::size_t upper_bound(std::size_t budget)
    {
        if (opt_.text_template) {
            return total() - page_.begin;
        }
        std::size_t used = json_escaped_size(header_), k = 0;
        while (page_.begin + k < total()) {
            used += json_escaped_size(block(page_.begin + k));
            if (used > budget) {
                break;
            }
            ++k;
        }
        return k;
    }

private:
    const AlertView &view(std::size_t i) { return view(i, views_, escape_markdown); }

    const AlertView &view(std::size_t i, std::vector<AlertView> &views, Escape esc)
    {
        while (views.size() <= i) {
            const Alert &a = *order_[views.size()];
            views.push_back(make_view(a, *opt_.zone, esc, hidden_));
            views.back().silence = opt_.silence_link ? silence_link_of(n_, a, hidden_) : "";
        }
        return views[i];
    }

    TemplateInput input(std::size_t k, std::vector<AlertView> &views, Escape esc)
    {
        TemplateInput in;
        in.n = &n_;
        in.shown.reserve(k);
        for (std::size_t i = page_.begin; i < page_.begin + k; ++i) {
            in.shown.push_back(&view(i, views, esc));
        }
        in.not_shown = not_shown(k);
        in.part = page_.part;
        in.last_part = page_.last;
        in.at = &opt_.at;
        in.zone = opt_.zone;
        in.styles = opt_.styles ? opt_.styles : &Styles::defaults();
        in.now = now_;
        in.silence_links = opt_.silence_link;
        return in;
    }

    const std::string &block(std::size_t i)
    {
        while (blocks_.size() <= i) {
            const AlertView &v = view(blocks_.size());
            blocks_.push_back(builtin_block(v, v.alert->status == Status::firing ? v.silence : ""));
        }
        return blocks_[i];
    }

    const Notification &n_;
    const RenderOptions &opt_;
    const LabelNames &hidden_;
    std::vector<const Alert *> order_;
    std::vector<AlertView> views_;       // built as needed: a big group shows a few dozen
    std::vector<AlertView> plain_views_; // the same, as plain text, for the title template
    std::vector<std::string> blocks_;
    std::string header_;
    Page page_;
    TimePoint now_;
};

} // namespace

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

std::string check_keyword(std::string_view word)
{
    if (word.empty()) {
        return "empty: name one of the robot's keywords";
    }
    if (word.size() > 64) {
        return "longer than 64 bytes";
    }
    if (plain_line(word, 64) != word || word.front() == ' ' || word.back() == ' ') {
        return "a keyword is one line of UTF-8 text, without control characters or spaces at "
               "either end";
    }
    return "";
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

std::size_t json_escaped_size(std::string_view s)
{
    std::size_t n = s.size();
    for_each_json_escape(s, [&](std::size_t, unsigned char c) { n += kJsonExtra[c]; });
    return n;
}

namespace
{

// The most alerts of the composer's page that fit in one request, with m the message that shows
// them; nothing when not even the text without alerts fits.
std::optional<std::size_t> fit_alerts(Composer &c, const RenderOptions &opt, Message &m)
{
    const std::size_t max = opt.max_request_bytes;
    std::size_t tried = SIZE_MAX;
    auto attempt = [&](std::size_t k) {
        tried = k;
        m.title = c.title(k);
        m.text = c.text(k);
        m.request_body = request_body(m.title, m.text, opt.at);
        return m.request_body.size() <= max;
    };

    // The most alerts that fit: the size grows with every alert shown (the "N more" line
    // changes by a digit at most). Grown from a few, in proportion to what the alerts so far
    // took (at most x4 a step), then bisected: a few renders, each of what is shown, never of
    // the whole body.
    std::size_t fit = 0, limit = c.upper_bound(max);
    for (std::size_t k = std::min<std::size_t>(16, limit); k > fit;) {
        if (!attempt(k)) {
            limit = k - 1;
            break;
        }
        fit = k;
        const std::size_t estimate = fit * max / std::max<std::size_t>(m.request_body.size(), 1);
        k = std::min({std::max(estimate, fit + 1), fit * 4, limit});
    }
    while (fit < limit) {
        const std::size_t mid = fit + (limit - fit + 1) / 2;
        if (attempt(mid)) {
            fit = mid;
        } else {
            limit = mid - 1;
        }
    }
    if (fit == 0 && !attempt(0)) {
        return std::nullopt;
    }
    if (tried != fit) {
        attempt(fit);
    }
    m.shown = fit;
    m.omitted = c.not_shown(fit);
    return fit;
}

} // namespace

Message render_message(const Notification &n, const RenderOptions &opt)
{
    Message m;
    Composer c(n, opt);
    if (!fit_alerts(c, opt, m)) {
        // Not even the text without alerts fits (a template's fixed part, a huge mention
        // list): cut whole lines of it, and keep the keyword and the mentions whole after the
        // cut (room for all of them: the cut may take those the text had).
        const std::size_t max = opt.max_request_bytes;
        m.title = c.title(0);
        std::string text = c.body(0);
        trim_end(text);
        const std::size_t overhead = request_body(m.title, closing_lines("", opt), opt.at).size();
        m.text = cut_to_fit(text, max > overhead ? max - overhead : 0);
        m.text += closing_lines(m.text, opt);
        m.request_body = request_body(m.title, m.text, opt.at);
        m.shown = 0;
        m.omitted = n.total();
    }
    return m;
}

namespace
{

// Where each message of several starts and how many alerts it shows: as many as fit, firing
// first, the last one ending with "N more" when even max_messages are not enough. Empty when
// they cannot be planned (a page that holds no alert): one message then.
std::vector<std::pair<std::size_t, std::size_t>>
plan_pages(Composer &first, Composer &others, const RenderOptions &opt, std::size_t max_messages)
{
    // planned with the widest part label, so that the real one fits as well
    const std::string widest =
        " (" + std::to_string(max_messages) + "/" + std::to_string(max_messages) + ")";
    std::vector<std::pair<std::size_t, std::size_t>> plan;
    for (std::size_t begin = 0; begin < first.total();) {
        Composer &c = plan.empty() ? first : others;
        Message m;
        c.set_page({begin, widest, true});
        const auto k = fit_alerts(c, opt, m);
        if (!k || *k == 0) {
            return {};
        }
        if (begin + *k == c.total() || plan.size() + 1 == max_messages) {
            plan.emplace_back(begin, *k);
            return plan;
        }
        c.set_page({begin, widest, false}); // not the last: no "N more" line to make room for
        std::size_t take = fit_alerts(c, opt, m).value_or(*k);
        if (begin + take >= c.total()) {
            take = *k; // the rest fits only without "N more": the last page says it, after this
        }
        plan.emplace_back(begin, take);
        begin += take;
    }
    return plan;
}

} // namespace

std::vector<Message> render_messages(const Notification &n, const RenderOptions &opt,
                                     std::size_t max_messages)
{
    std::vector<Message> out{render_message(n, opt)};
    if (max_messages <= 1 || out[0].shown == n.alerts.size()) {
        return out;
    }
    RenderOptions rest = opt;
    rest.at = Mentions{}; // the first message mentions; the others would only ring again
    Composer first(n, opt), others(n, rest);
    const auto plan = plan_pages(first, others, opt, std::min(max_messages, kMaxMessages));
    if (plan.size() < 2) {
        return out;
    }
    out.clear();
    for (std::size_t i = 0; i < plan.size(); ++i) {
        Composer &c = i == 0 ? first : others;
        c.set_page({plan[i].first,
                    " (" + std::to_string(i + 1) + "/" + std::to_string(plan.size()) + ")",
                    i + 1 == plan.size()});
        Message m;
        m.title = c.title(plan[i].second);
        m.text = c.text(plan[i].second);
        m.request_body = request_body(m.title, m.text, i == 0 ? opt.at : rest.at);
        m.shown = plan[i].second;
        m.omitted = c.not_shown(plan[i].second);
        out.push_back(std::move(m));
    }
    return out;
}

} // namespace dingtalk
