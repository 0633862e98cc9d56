#include "template.hpp"

#include "text.hpp"
#include "sign.hpp"

#include <kainjow/mustache.hpp>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <stdexcept>
#include <unordered_map>

namespace dingtalk
{

namespace mu = kainjow::mustache;

namespace
{

std::atomic<std::uint64_t> next_id{1};

// The label and annotation maps; each also comes as <name>_url (URL-encoded, for a value in a
// link), <name>_link (a value that is itself an http(s) URL, as a link target, else empty),
// <name>_raw (one line, nothing escaped), and as a list.
const std::vector<std::pair<std::string, std::string>> kMaps = {
    {"labels", "label_list"},
    {"annotations", "annotation_list"},
    {"group_labels", "group_label_list"},
    {"common_labels", "common_label_list"},
    {"common_annotations", "common_annotation_list"},
};

const std::vector<std::string> kNames = [] {
    std::vector<std::string> names = {
        // the notification
        "title", "status", "status_upper", "firing_count", "resolved_count", "alert_count",
        "receiver", "group_key", "external_url", "alertmanager_url", "has_alertmanager_url",
        "silence_url", "has_silence_url", "mentions", "has_mentions", "emoji", "color", "alerts",
        "firing", "resolved", "has_firing", "has_resolved", "shown", "omitted", "truncated",
        "truncated_alerts", "more_count", "more", "has_more",
        // functions
        "urlencode", "strip_port", "upper", "lower",
        // each alert
        "index", "first", "first_firing", "first_resolved", "section_start", "severity",
        "severity_is", "alertname", "pod", "namespace", "detail", "has_severity", "has_alertname",
        "has_namespace", "has_detail", "target", "target_label", "target_title", "has_target",
        "starts_at", "starts_at_date", "starts_at_time", "starts_at_rfc3339", "ends_at",
        "ends_at_date", "ends_at_time", "ends_at_rfc3339", "duration", "duration_short",
        "other_labels", "has_other_labels", "generator_url", "has_generator_url", "fingerprint",
        // in a list of labels
        "name", "value", "name_is"};
    for (const auto &m : kMaps) {
        for (const char *form : {"", "_url", "_link", "_raw"}) {
            names.push_back(m.first + form);
        }
        names.push_back(m.second);
    }
    for (const char *name :
         {"group_label_values", "other_common_label_values", "has_other_common_labels"}) {
        names.push_back(name);
    }
    return names;
}();

std::size_t line_of(const std::string &src, std::size_t pos)
{
    pos = std::min(pos, src.size());
    return 1 + static_cast<std::size_t>(std::count(src.begin(), src.begin() + pos, '\n'));
}

// kainjow reports "Unclosed section \"x\" at 123" (a byte offset): say the line instead.
std::string with_line(const std::string &src, const std::string &msg)
{
    const std::size_t at = msg.rfind(" at ");
    if (at != std::string::npos && at + 4 < msg.size() &&
        std::all_of(msg.begin() + at + 4, msg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        const std::size_t pos = std::stoul(msg.substr(at + 4));
        return "line " + std::to_string(line_of(src, pos)) + ": " + msg.substr(0, at);
    }
    return msg;
}

// ---------------------------------------------------------------------------------------------
// the template's own tags, as the parser sees them

struct Tag {
    std::size_t begin, end; // of "{{...}}" in the source
    char kind;              // ' ' variable, '{' or '&' unescaped, '#', '^', '/', '!', '>', '='
    std::string name;
};

std::string trimmed(std::string s)
{
    s.erase(0, s.find_first_not_of(" \t"));
    s.erase(s.find_last_not_of(" \t") + 1);
    return s;
}

// Every tag with the default delimiters (a template that changes them is refused, so these
// are all of them). Unclosed tags are the parser's to report.
std::vector<Tag> tags_of(const std::string &src)
{
    std::vector<Tag> tags;
    for (std::size_t pos = src.find("{{"); pos != std::string::npos; pos = src.find("{{", pos)) {
        const bool triple = src.compare(pos, 3, "{{{") == 0;
        const std::size_t start = pos + (triple ? 3 : 2);
        const std::size_t close = src.find(triple ? "}}}" : "}}", start);
        if (close == std::string::npos) {
            break;
        }
        std::string inner = trimmed(src.substr(start, close - start));
        char kind = triple ? '{' : ' ';
        if (!triple && !inner.empty() &&
            std::string("#^/!&>=").find(inner[0]) != std::string::npos) {
            kind = inner[0];
            inner = trimmed(inner.substr(1));
        }
        pos = close + (triple ? 3 : 2);
        tags.push_back({start - (triple ? 3 : 2), pos, kind, inner});
    }
    return tags;
}

bool standalone_kind(char kind)
{
    return kind == '#' || kind == '^' || kind == '/' || kind == '!';
}

bool blank(const std::string &s, std::size_t from, std::size_t to)
{
    return std::all_of(s.begin() + from, s.begin() + to,
                       [](char c) { return c == ' ' || c == '\t' || c == '\r'; });
}

// A line with nothing but one section, inverted, closing or comment tag leaves no line behind
// (the mustache spec's "standalone" tags): its blanks and its line break go. kainjow does this
// only for a section that renders, so it is done here for all, before kainjow sees the text:
// the tag then starts the next line. kainjow also drops any line that had a section tag and
// renders to blanks, which would now take an empty line after such a tag with it: that line's
// break becomes {{_nl}}, a variable that prints it (kainjow keeps what a variable printed).
std::string without_standalone_lines(const std::string &src, const std::vector<Tag> &tags)
{
    std::string out;
    std::size_t copied = 0, t = 0;
    for (std::size_t line = 0; line < src.size();) {
        const std::size_t eol = std::min(src.find('\n', line), src.size());
        std::size_t first = t;
        while (t < tags.size() && tags[t].begin < eol) {
            ++t;
        }
        if (t - first == 1 && standalone_kind(tags[first].kind) && tags[first].begin >= line &&
            tags[first].end <= eol && blank(src, line, tags[first].begin) &&
            blank(src, tags[first].end, eol)) {
            out.append(src, copied, line - copied);
            out.append(src, tags[first].begin, tags[first].end - tags[first].begin);
            copied = std::min(eol + 1, src.size());
            if (copied < src.size() && src[copied] == '\n') {
                out.append("{{_nl}}"); // an empty line right after the tag
                ++copied;
            }
        }
        line = eol + 1;
    }
    out.append(src, copied, std::string::npos);
    return out;
}

bool is_map_name(const std::string &first)
{
    for (const auto &m : kMaps) {
        for (const char *form : {"", "_url", "_link", "_raw"}) {
            if (first == m.first + form) {
                return true;
            }
        }
    }
    return false;
}

// A typo in a name renders as nothing in mustache; catch it when the configuration loads. The
// names used go into `used`, the map lookups ("labels.instance") into `keys`.
bool check_tags(const std::string &src, const std::vector<Tag> &tags, std::string &error,
                std::set<std::string> &used, std::set<std::string> &keys)
{
    for (const Tag &tag : tags) {
        const std::string where = "line " + std::to_string(line_of(src, tag.begin)) + ": ";
        if (tag.kind == '>') {
            error = where + "partials are not supported";
            return false;
        }
        if (tag.kind == '=') {
            error = where + "changing the delimiters is not supported";
            return false;
        }
        if (tag.kind == '!' || tag.name == "." || tag.name.empty()) {
            continue;
        }
        const std::string first = tag.name.substr(0, tag.name.find('.'));
        if (std::find(kNames.begin(), kNames.end(), first) == kNames.end()) {
            error = where + "unknown name \"" + tag.name +
                    "\" (see \"Names\" in docs/messages.md for the names a template can use)";
            return false;
        }
        used.insert(first);
        if (is_map_name(first) && first.size() < tag.name.size()) {
            keys.insert(tag.name);
        }
    }
    return true;
}

// A closing tag must close the section opened last. kainjow lets any closing tag close it and
// then reports the section left open at its opening tag, far from the mistake: say the line of
// the closing tag instead. A section never closed is kainjow's to report (at its opening tag,
// or at an unclosed tag after it).
bool check_sections(const std::string &src, const std::vector<Tag> &tags, std::string &error)
{
    std::vector<const Tag *> open;
    for (const Tag &tag : tags) {
        if (tag.kind == '#' || tag.kind == '^') {
            open.push_back(&tag);
        } else if (tag.kind == '/' && open.empty()) {
            error = "line " + std::to_string(line_of(src, tag.begin)) + ": Unopened section \"" +
                    tag.name + "\"";
            return false;
        } else if (tag.kind == '/' && tag.name != open.back()->name) {
            error = "line " + std::to_string(line_of(src, tag.begin)) + ": {{/" + tag.name +
                    "}} where {{/" + open.back()->name + "}} (line " +
                    std::to_string(line_of(src, open.back()->begin)) + ") was expected";
            return false;
        } else if (tag.kind == '/') {
            open.pop_back();
        }
    }
    return true;
}

// ---------------------------------------------------------------------------------------------
// the data

using Escape = std::string (*)(std::string_view, std::size_t);

std::string url_form(std::string_view s, std::size_t)
{
    return url_encode(s.substr(0, kMaxUrl));
}

std::string link_form(std::string_view s, std::size_t)
{
    return safe_link_url(s);
}

std::string raw_form(std::string_view s, std::size_t max)
{
    return plain_line(s, max); // one line of valid UTF-8, nothing escaped
}

mu::data map_object(const Labels &m, Escape esc)
{
    mu::data obj;
    for (const auto &kv : m) {
        obj.set(kv.first, esc(kv.second, kMaxValue));
    }
    return obj;
}

// Each item: name, value and, when the template asks, name_is.<name> (true) to leave some out.
mu::data map_list(const Labels &m, Escape esc, bool name_is)
{
    mu::data list{mu::data::type::list};
    for (const auto &kv : m) {
        mu::data item;
        item.set("name", esc(kv.first, kMaxValue));
        item.set("value", esc(kv.second, kMaxValue));
        if (name_is) {
            mu::data is;
            is.set(kv.first, true);
            item.set("name_is", is);
        }
        list.push_back(item);
    }
    return list;
}

// The forms of one map the template names: only those are built (an alert may have 128
// labels).
void set_map(mu::data &d, const std::pair<std::string, std::string> &names, const Labels &m,
             Escape esc, const std::set<std::string> &used)
{
    if (used.count(names.first)) {
        d.set(names.first, map_object(m, esc));
    }
    if (used.count(names.first + "_url")) {
        d.set(names.first + "_url", map_object(m, url_form));
    }
    if (used.count(names.first + "_link")) {
        d.set(names.first + "_link", map_object(m, link_form));
    }
    if (used.count(names.first + "_raw")) {
        d.set(names.first + "_raw", map_object(m, raw_form));
    }
    if (used.count(names.second)) {
        d.set(names.second, map_list(m, esc, used.count("name_is") != 0));
    }
}

// The values of the labels in `m` (by name) that are not in `except`, space-separated.
std::string values_of(const Labels &m, const Labels &except)
{
    std::string values;
    for (const auto &kv : m) {
        if (except.count(kv.first) == 0) {
            values += (values.empty() ? "" : " ") + kv.second;
        }
    }
    return values;
}

// A count that prints as a number and is false at 0 in a section.
mu::data count(std::uint64_t n)
{
    return mu::lambda{[n](const std::string &text) -> std::string {
        return text.empty() ? std::to_string(n) : n > 0 ? text : std::string();
    }};
}

std::string strip_port(std::string s)
{
    const std::size_t colon = s.rfind(':');
    if (colon != std::string::npos && colon + 1 < s.size() &&
        std::all_of(s.begin() + colon + 1, s.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
        (s.find(':') == colon || (colon > 0 && s[colon - 1] == ']'))) {
        s.erase(colon);
    }
    return s;
}

std::string ascii_case(std::string s, int (*f)(int))
{
    for (char &c : s) {
        c = static_cast<char>(f(static_cast<unsigned char>(c)));
    }
    return s;
}

// The functions: their section's text, rendered, then changed.
void set_functions(mu::data &d)
{
    using renderer = mu::renderer;
    d.set("urlencode", mu::lambda2{[](const std::string &text, const renderer &render) {
              return url_encode(render(text));
          }});
    d.set("strip_port", mu::lambda2{[](const std::string &text, const renderer &render) {
              return strip_port(render(text));
          }});
    d.set("upper", mu::lambda2{[](const std::string &text, const renderer &render) {
              return ascii_case(render(text), ::toupper);
          }});
    d.set("lower", mu::lambda2{[](const std::string &text, const renderer &render) {
              return ascii_case(render(text), ::tolower);
          }});
}

void set_times(mu::data &d, const std::string &prefix, const std::optional<TimePoint> &t,
               const TimeZone &tz)
{
    d.set(prefix, t ? tz.format(*t) : "-");
    d.set(prefix + "_date", t ? tz.format(*t, TimeZone::Form::date) : "-");
    d.set(prefix + "_time", t ? tz.format(*t, TimeZone::Form::time) : "-");
    d.set(prefix + "_rfc3339", t ? tz.format(*t, TimeZone::Form::rfc3339) : "-");
}

// How long it lasted (resolved) or has lasted so far (firing); "-" when the times are unknown.
void set_duration(mu::data &d, const Alert &a, TimePoint now)
{
    std::optional<TimePoint> end = a.status == Status::resolved ? a.ends_at : now;
    if (!a.starts_at || !end) {
        d.set("duration", "-");
        d.set("duration_short", "-");
        return;
    }
    const auto s = std::chrono::duration_cast<std::chrono::seconds>(*end - *a.starts_at);
    d.set("duration", duration_words(s));
    d.set("duration_short", duration_short(s));
}

// The data a template sees, in three parts: the notification's (the same for every message of
// it), the message's (its title, mentions and what depends on how many alerts it shows), and each
// alert's (the same in every message that shows it; its place in the list aside). A render joins
// them in a Lookup.
class DataBuilder
{
public:
    DataBuilder(const TemplateInput &in, Template::Kind kind, const std::set<std::string> &used)
        : in_(in), n_(*in.n), used_(used),
          esc_(kind == Template::Kind::text ? escape_markdown : plain_line)
    {
    }

    mu::data notification() const
    {
        mu::data d;
        d.set("_nl", "\n"); // see without_standalone_lines()
        d.set("status", to_string(n_.status));
        d.set("status_upper", n_.status == Status::firing ? "FIRING" : "RESOLVED");
        d.set("firing_count", count(n_.count(Status::firing)));
        d.set("resolved_count", count(n_.count(Status::resolved)));
        d.set("alert_count", count(n_.total()));
        d.set("receiver", esc_(n_.receiver, kMaxValue));
        d.set("group_key", esc_(n_.group_key, kMaxValue));
        set_map(d, kMaps[2], n_.group_labels, esc_, used_);
        d.set("group_label_values", esc_(values_of(n_.group_labels, {}), kMaxValue));
        const std::string others = values_of(n_.common_labels, n_.group_labels);
        d.set("other_common_label_values", esc_(others, kMaxValue));
        d.set("has_other_common_labels", !others.empty());
        set_map(d, kMaps[3], n_.common_labels, esc_, used_);
        set_map(d, kMaps[4], n_.common_annotations, esc_, used_);
        d.set("external_url", safe_link_url(n_.external_url));
        const std::string am = alertmanager_link(n_);
        const std::string silence = in_.silence_links ? silence_link(n_, n_.group_labels) : "";
        d.set("alertmanager_url", am);
        d.set("has_alertmanager_url", !am.empty());
        d.set("silence_url", silence);
        d.set("has_silence_url", !silence.empty());
        const Style &style = in_.styles->of(n_);
        d.set("emoji", style.emoji);
        d.set("color", style.color);
        set_functions(d);
        d.set("has_firing", n_.count(Status::firing) > 0);
        d.set("has_resolved", n_.count(Status::resolved) > 0);
        return d;
    }

    mu::data message() const
    {
        mu::data d;
        d.set("title", esc_(plain_title(n_) + in_.part, kMaxTitle * 2));
        const std::string mentions = mention_line(*in_.at);
        d.set("mentions", mentions);
        d.set("has_mentions", !mentions.empty());
        d.set("shown", count(in_.shown.size()));
        d.set("omitted", count(in_.not_shown));
        // what the notification does not show is said once, by its last message
        const std::uint64_t truncated = in_.last_part ? n_.truncated_alerts : 0;
        d.set("truncated", in_.not_shown > 0 || truncated > 0);
        d.set("truncated_alerts", count(truncated));
        d.set("more_count", count(in_.not_shown + truncated));
        const std::string line = in_.last_part ? omitted_line(n_, in_.not_shown) : "";
        const std::string more = esc_ == plain_line ? plain_line(line, kMaxTitle * 2) : line;
        d.set("more", more);
        d.set("has_more", !more.empty());
        return d;
    }

    bool has_lists() const
    {
        return used_.count("alerts") || used_.count("firing") || used_.count("resolved");
    }
    bool uses(const char *name) const { return used_.count(name) != 0; }

    // One alert's, but for what its place in a list says (index, first...).
    mu::data alert(const AlertView &v) const
    {
        const Alert &a = *v.alert;
        mu::data d;
        d.set("status", to_string(a.status));
        d.set("firing", a.status == Status::firing);
        d.set("resolved", a.status == Status::resolved);
        d.set("severity", v.severity);
        mu::data is;
        is.set(severity_key(a).empty() ? "-" : severity_key(a), true);
        d.set("severity_is", is);
        const Style &style = in_.styles->of(a);
        d.set("emoji", style.emoji);
        d.set("color", style.color);
        set_fields(d, v);
        set_times(d, "starts_at", a.starts_at, *in_.timezone);
        set_times(d, "ends_at", a.status == Status::resolved ? a.ends_at : std::nullopt,
                  *in_.timezone);
        set_duration(d, a, in_.now);
        d.set("other_labels", v.other_labels);
        d.set("has_other_labels", !v.other_labels.empty());
        d.set("generator_url", v.link);
        d.set("has_generator_url", !v.link.empty());
        d.set("silence_url", v.silence);
        d.set("has_silence_url", !v.silence.empty());
        d.set("fingerprint", esc_(a.fingerprint, kMaxValue));
        set_map(d, kMaps[0], a.labels, esc_, used_);
        set_map(d, kMaps[1], a.annotations, esc_, used_);
        return d;
    }

private:
    // The built-in layout's fields, and whether the alert has them.
    void set_fields(mu::data &d, const AlertView &v) const
    {
        d.set("alertname", v.alertname);
        d.set("pod", v.pod);
        d.set("namespace", v.namespace_);
        d.set("detail", v.detail);
        d.set("has_severity", v.has_severity);
        d.set("has_alertname", v.has_alertname);
        d.set("has_namespace", v.has_namespace);
        d.set("has_detail", v.has_detail);
        d.set("target", v.target);
        d.set("target_label", esc_(v.target_label, kMaxValue));
        d.set("target_title", target_title(v.target_label));
        d.set("has_target", !v.target.empty());
    }

    const TemplateInput &in_;
    const Notification &n_;
    const std::set<std::string> &used_;
    Escape esc_;
};

const mu::data kTrue(true), kFalse(false);

// A list of alerts as a template sees it: `alerts` (every alert shown), `firing` or `resolved`.
// Its items are stand-ins (true), one per alert, that the Lookup turns into the alert's data and
// what its place in the list says; nothing of an alert is copied into a list.
struct AlertList {
    enum class Kind { all, firing, resolved };
    Kind kind = Kind::all;
    mu::data items{mu::data::type::list};
    std::vector<std::size_t> shown; // each item's alert, by its position in in.shown

    // The item's place in the list, when p is one of its items.
    std::optional<std::size_t> place(const mu::data *p) const
    {
        const mu::list &l = items.list_value();
        if (l.empty() || p < l.data() || p >= l.data() + l.size()) {
            return std::nullopt;
        }
        return static_cast<std::size_t>(p - l.data());
    }
};

} // namespace

// What the renders of one notification with one template keep between them.
struct TemplateCache::Impl {
    std::uint64_t template_id = 0;
    const Notification *n = nullptr;
    std::optional<mu::data> notification;
    std::unordered_map<const AlertView *, mu::data> alerts;
    std::vector<mu::data> indexes;                                   // "1", "2" ...
    std::unordered_map<std::string, std::vector<std::string>> names; // "a.b" split at the dots
};

TemplateCache::TemplateCache() : impl_(std::make_unique<Impl>()) {}
TemplateCache::~TemplateCache() = default;
TemplateCache::TemplateCache(TemplateCache &&) noexcept = default;
TemplateCache &TemplateCache::operator=(TemplateCache &&) noexcept = default;

namespace
{

// Thrown by the output when its watch stops the render.
struct Stopped {
};

// What a template's names mean during one render: kainjow's context (a stack of data, searched
// from the top, a dotted name resolved whole in one item before the next is tried), over the
// cached data. The bottom item is the notification's data and the message's, together; an item
// of an alert list stands for its alert's data and, before it, what its place says: index and
// first, and in `alerts` also first_firing, first_resolved and section_start.
class Lookup : public mu::basic_context<std::string>
{
public:
    Lookup(TemplateCache::Impl &cache, const DataBuilder &data, const TemplateInput &in,
           const mu::data &message, const std::vector<AlertList> &lists, RenderWatch *watch)
        : cache_(cache), data_(data), in_(in), message_(message), lists_(lists), watch_(watch)
    {
        stack_.push_back(&root_);
        in_section_.reserve(in.shown.size());
        std::size_t nfiring = 0, nresolved = 0;
        for (const AlertView *v : in.shown) {
            in_section_.push_back(v->alert->status == Status::firing ? nfiring++ : nresolved++);
        }
        while (cache_.indexes.size() < in.shown.size()) {
            cache_.indexes.emplace_back(std::to_string(cache_.indexes.size() + 1));
        }
    }

    void push(const mu::data *d) override
    {
        stack_.push_back(d);
        if (watch_ != nullptr) {
            for (const AlertList &l : lists_) {
                if (const auto at = l.place(d)) {
                    for (; reached_ <= l.shown[*at]; ++reached_) {
                        watch_->alert(reached_);
                    }
                }
            }
        }
    }

    void pop() override { stack_.pop_back(); }

    const mu::data *get(const std::string &name) const override
    {
        if (name.size() == 1 && name[0] == '.') {
            return stack_.back();
        }
        if (name.find('.') == std::string::npos) {
            for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
                if (const mu::data *v = find(*it, name)) {
                    return v;
                }
            }
            return nullptr;
        }
        const std::vector<std::string> &names = split(name);
        for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
            const mu::data *var = *it;
            for (const std::string &n : names) {
                if ((var = find(var, n)) == nullptr) {
                    break;
                }
            }
            if (var != nullptr) {
                return var;
            }
        }
        return nullptr;
    }

    const mu::data *get_partial(const std::string &) const override
    {
        return nullptr; // refused when the template is parsed
    }

private:
    // kainjow's split: at each dot, an empty last part dropped.
    const std::vector<std::string> &split(const std::string &name) const
    {
        auto it = cache_.names.find(name);
        if (it == cache_.names.end()) {
            it = cache_.names.emplace(name, mu::split(name, '.')).first;
        }
        return it->second;
    }

    const mu::data *find(const mu::data *item, const std::string &key) const
    {
        if (item == &root_) {
            if (const mu::data *v = message_.get(key)) {
                return v;
            }
            for (const AlertList &l : lists_) {
                if (key == (l.kind == AlertList::Kind::all      ? "alerts"
                            : l.kind == AlertList::Kind::firing ? "firing"
                                                                : "resolved")) {
                    return &l.items;
                }
            }
            return cache_.notification->get(key);
        }
        for (const AlertList &l : lists_) {
            if (const auto at = l.place(item)) {
                return in_alert(l, *at, key);
            }
        }
        return item->get(key);
    }

    const mu::data *in_alert(const AlertList &l, std::size_t at, const std::string &key) const
    {
        const std::size_t i = l.shown[at];
        const bool all = l.kind == AlertList::Kind::all;
        if (key == "index") {
            return &cache_.indexes[i];
        }
        if (key == "first") {
            return at == 0 ? &kTrue : &kFalse;
        }
        if (all && (key == "first_firing" || key == "first_resolved" || key == "section_start")) {
            const bool firing = in_.shown[i]->alert->status == Status::firing;
            const bool start = in_section_[i] == 0;
            const bool value = key == "section_start"  ? start
                               : key == "first_firing" ? firing && start
                                                       : !firing && start;
            return value ? &kTrue : &kFalse;
        }
        const AlertView *v = in_.shown[i];
        auto it = cache_.alerts.find(v);
        if (it == cache_.alerts.end()) {
            it = cache_.alerts.emplace(v, data_.alert(*v)).first;
        }
        return it->second.get(key);
    }

    TemplateCache::Impl &cache_;
    const DataBuilder &data_;
    const TemplateInput &in_;
    const mu::data &message_;
    const std::vector<AlertList> &lists_;
    RenderWatch *watch_;
    const mu::data root_; // stands for the notification's and the message's data
    std::vector<const mu::data *> stack_;
    std::vector<std::size_t> in_section_; // each alert's place among those of its status
    std::size_t reached_ = 0;             // alerts reached so far (told to watch_)
};

// The lists the template names (all three when it names any: as one render always made them).
std::vector<AlertList> alert_lists(const TemplateInput &in, const DataBuilder &data)
{
    std::vector<AlertList> lists;
    if (!data.has_lists()) {
        return lists;
    }
    lists.resize(3);
    lists[1].kind = AlertList::Kind::firing;
    lists[2].kind = AlertList::Kind::resolved;
    const bool firing = data.uses("firing"), resolved = data.uses("resolved");
    for (std::size_t i = 0; i < in.shown.size(); ++i) {
        const bool is_firing = in.shown[i]->alert->status == Status::firing;
        lists[0].items.push_back(kTrue);
        lists[0].shown.push_back(i);
        if (is_firing ? firing : resolved) {
            AlertList &l = lists[is_firing ? 1 : 2];
            l.items.push_back(kTrue);
            l.shown.push_back(i);
        }
    }
    return lists;
}

// Where kainjow writes what it renders: a line (or what a line holds when the render ends) at a
// time.
struct Output {
    std::string text;
    RenderWatch *watch;

    Output &operator<<(const std::string &s)
    {
        text += s;
        if (watch != nullptr && !watch->output(s)) {
            throw Stopped{};
        }
        return *this;
    }
};

// Each thread parses its own copy once: the library does not promise that one parsed template
// can be rendered from several threads at once.
mu::mustache &parsed_copy(std::uint64_t id, const std::string &source)
{
    thread_local std::unordered_map<std::uint64_t, std::unique_ptr<mu::mustache>> cache;
    auto &slot = cache[id];
    if (!slot) {
        slot = std::make_unique<mu::mustache>(source);
        slot->set_custom_escape([](const std::string &s) { return s; }); // values are escaped
    }
    return *slot;
}

bool valid_utf8(const std::string &source, std::string &error)
{
    for (std::size_t i = 0; i < source.size();) {
        char32_t cp = 0;
        const std::size_t len = utf8_length(source, i, cp);
        if (len == 0) {
            error = "line " + std::to_string(line_of(source, i)) + ": not valid UTF-8";
            return false;
        }
        i += len;
    }
    return true;
}

} // namespace

const std::vector<std::string> &template_names()
{
    return kNames;
}

Template::Template(std::string source, Kind kind, std::set<std::string> used,
                   std::set<std::string> keys)
    : source_(std::move(source)), kind_(kind), used_(std::move(used)), map_keys_(std::move(keys)),
      id_(next_id++)
{
}

std::shared_ptr<const Template> Template::parse(std::string source, Kind kind, std::string &error)
{
    // What a template prints goes into the JSON request as it is: it must be UTF-8.
    if (!valid_utf8(source, error)) {
        return nullptr;
    }
    const std::vector<Tag> tags = tags_of(source);
    std::set<std::string> used, keys;
    if (!check_tags(source, tags, error, used, keys) || !check_sections(source, tags, error)) {
        return nullptr;
    }
    mu::mustache probe(source);
    if (!probe.is_valid()) {
        error = with_line(source, probe.error_message());
        return nullptr;
    }
    return std::shared_ptr<const Template>(new Template(without_standalone_lines(source, tags),
                                                        kind, std::move(used), std::move(keys)));
}

std::string Template::render(const TemplateInput &in) const
{
    TemplateCache cache;
    return *render(in, cache, nullptr);
}

std::optional<std::string> Template::render(const TemplateInput &in, TemplateCache &cache,
                                            RenderWatch *watch) const
{
    TemplateCache::Impl &c = *cache.impl_;
    if (c.template_id != id_ || c.n != in.n) {
        c = TemplateCache::Impl{};
        c.template_id = id_;
        c.n = in.n;
    }
    const DataBuilder data(in, kind_, used_);
    if (!c.notification) {
        c.notification = data.notification();
    }
    const mu::data message = data.message();
    const std::vector<AlertList> lists = alert_lists(in, data);
    Lookup lookup(c, data, in, message, lists, watch);
    mu::mustache &tmpl = parsed_copy(id_, source_);
    Output out{std::string(), watch};
    try {
        tmpl.render(lookup, out);
    } catch (const Stopped &) {
        return std::nullopt;
    }
    if (!tmpl.is_valid()) {
        throw std::runtime_error("template: " + tmpl.error_message());
    }
    return kind_ == Kind::title ? plain_line(out.text, kMaxTitle * 2) : std::move(out.text);
}

std::vector<std::string> Template::unset_names(const Notification &n) const
{
    std::vector<std::string> unset;
    for (const std::string &name : map_keys_) {
        std::string map = name.substr(0, name.find('.'));
        const std::string key = name.substr(map.size() + 1);
        for (const char *form : {"_url", "_link", "_raw"}) {
            const std::string f = form;
            if (map.size() > f.size() && map.compare(map.size() - f.size(), f.size(), f) == 0) {
                map.erase(map.size() - f.size());
            }
        }
        bool set = false;
        if (map == "labels" || map == "annotations") {
            for (const Alert &a : n.alerts) {
                set = set || (map == "labels" ? a.labels : a.annotations).count(key) > 0;
            }
        } else {
            const Labels &m = map == "group_labels"    ? n.group_labels
                              : map == "common_labels" ? n.common_labels
                                                       : n.common_annotations;
            set = m.count(key) > 0;
        }
        if (!set) {
            unset.push_back(name);
        }
    }
    return unset;
}

} // namespace dingtalk
