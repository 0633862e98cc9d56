#include "template.hpp"

#include "go_hint.hpp"
#include "template_call.hpp"
#include "text.hpp"
#include "sign.hpp"

#include <kainjow/mustache.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <bitset>
#include <cctype>
#include <stdexcept>
#include <map>
#include <unordered_map>

namespace dingtalk
{

namespace mu = kainjow::mustache;

// The names of a template that carry an argument, by name as written, each parsed once: a
// function's also as the lambda kainjow calls.
struct TemplateCalls {
    struct Call {
        TemplateCall call;
        mu::data fn;
    };
    std::unordered_map<std::string, Call> calls;

    std::size_t count(const std::string &name) const { return calls.count(name); }
    void emplace(const std::string &name, Call c) { calls.emplace(name, std::move(c)); }
    const Call *find(const std::string &name) const
    {
        const auto it = calls.find(name);
        return it == calls.end() ? nullptr : &it->second;
    }
};

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
        "truncated_alerts", "more_count", "more", "has_more", "has_buttons",
        // functions
        "urlencode", "strip_port", "upper", "lower",
        // each alert
        "index", "first", "first_firing", "first_resolved", "section_start", "severity",
        "severity_is", "alertname", "pod", "namespace", "detail", "has_severity", "has_alertname",
        "has_namespace", "has_detail", "target", "target_label", "target_title", "has_target",
        "starts_at", "starts_at_date", "starts_at_time", "starts_at_rfc3339", "ends_at",
        "ends_at_date", "ends_at_time", "ends_at_rfc3339", "duration", "duration_short",
        "other_labels", "has_other_labels", "generator_url", "has_generator_url", "fingerprint",
        "silence_links", "has_silence_links",
        // in a list of labels
        "name", "value", "name_is",
        // in silence_links
        "label", "url"};
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
    char kind;              // ' ' variable, '{' or '&' unescaped, '#', '^', '/', '!', '>', '=',
                            // '<' (a block's definition)
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
            std::string("#^/!&>=<").find(inner[0]) != std::string::npos) {
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

// A name that carries an argument (label_is.env.prod, {{#trunc 20}}): its call, parsed once, and
// what it makes the template use.
bool check_call(const Tag &tag, std::string &error, TemplateCalls &calls,
                std::set<std::string> &used)
{
    std::optional<TemplateCall> call = parse_call(tag.name, tag.kind, error);
    if (!call) {
        return error.empty();
    }
    if (call->kind == TemplateCall::Kind::compare && call->count != "index") {
        used.insert(call->count); // shown, omitted ... make the template vary by page
    }
    mu::data fn;
    if (call->kind == TemplateCall::Kind::function) {
        fn =
            mu::lambda2{[apply = call->apply](const std::string &text, const mu::renderer &render) {
                return apply(render(text));
            }};
    }
    calls.emplace(tag.name, TemplateCalls::Call{std::move(*call), std::move(fn)});
    return true;
}

// A typo in a name renders as nothing in mustache; catch it when the configuration loads. The
// names used go into `used`, the map lookups ("labels.instance") into `keys`, the names that
// carry an argument into `calls`.
bool check_tags(const std::string &src, const std::vector<Tag> &tags, std::string &error,
                std::set<std::string> &used, std::set<std::string> &keys, TemplateCalls &calls)
{
    for (const Tag &tag : tags) {
        const std::string where = "line " + std::to_string(line_of(src, tag.begin)) + ": ";
        if (tag.kind == '=') {
            error = where + "changing the delimiters is not supported";
            return false;
        }
        if (tag.kind == '!' || tag.kind == '/' || tag.kind == '<' || tag.kind == '>' ||
            tag.name == "." || tag.name.empty() || calls.count(tag.name) != 0) {
            continue; // closing tags are check_sections' to check, blocks check_blocks'
        }
        const std::string go = tag.kind == ' ' || tag.kind == '#' ? go_hint(tag.name) : "";
        if (!check_call(tag, error, calls, used)) {
            error = where + (go.empty() || tag.kind != ' ' ? error : go);
            return false;
        }
        if (calls.count(tag.name) != 0) {
            continue;
        }
        const std::string first = tag.name.substr(0, tag.name.find('.'));
        if (std::find(kNames.begin(), kNames.end(), first) == kNames.end()) {
            error = where + (!go.empty() ? go
                                         : "unknown name \"" + tag.name +
                                               "\" (see \"Names\" in docs/messages.md for the "
                                               "names a template can use)");
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
// or at an unclosed tag after it). A function's section may be closed by its name alone
// ({{#trunc 20}}...{{/trunc}}): `whole` is the source with such a closing tag written whole, as
// kainjow wants it.
bool check_sections(const std::string &src, const std::vector<Tag> &tags, std::string &error,
                    std::string &whole)
{
    std::vector<const Tag *> open;
    std::size_t copied = 0;
    for (const Tag &tag : tags) {
        const std::string line = "line " + std::to_string(line_of(src, tag.begin)) + ": ";
        if (tag.kind == '#' || tag.kind == '^' || tag.kind == '<') {
            open.push_back(&tag);
        } else if (tag.kind == '/' && open.empty()) {
            const std::string go = go_hint("/" + tag.name); // a Go comment: {{/* ... */}}
            error = line + (go.empty() ? "Unopened section \"" + tag.name + "\"" : go);
            return false;
        } else if (tag.kind == '/' && tag.name != open.back()->name &&
                   tag.name != call_head(open.back()->name)) {
            error = line + "{{/" + tag.name + "}} where {{/" + call_head(open.back()->name) +
                    "}} (line " + std::to_string(line_of(src, open.back()->begin)) +
                    ") was expected";
            return false;
        } else if (tag.kind == '/') {
            whole.append(src, copied, tag.begin - copied).append("{{/" + open.back()->name + "}}");
            copied = tag.end;
            open.pop_back();
        }
    }
    whole.append(src, copied, std::string::npos);
    return true;
}

// ---------------------------------------------------------------------------------------------
// blocks: {{<name}}...{{/name}} defines a block where it stands (and prints nothing there),
// {{>name}} prints it; both in the same file, and expanded when the template is parsed: a
// template's structure is never looked up in the data.

using Blocks = std::map<std::string, std::string>;

constexpr std::size_t kMaxExpanded = 1 << 20; // a template with its blocks expanded
constexpr int kMaxBlockDepth = 8;

// What a tag takes from the source: its whole line when it stands alone on it.
std::pair<std::size_t, std::size_t> span_of(const std::string &src, const Tag &t, bool &alone)
{
    const std::size_t nl = t.begin == 0 ? std::string::npos : src.rfind('\n', t.begin - 1);
    const std::size_t from = nl == std::string::npos ? 0 : nl + 1;
    const std::size_t eol = std::min(src.find('\n', t.end), src.size());
    alone = blank(src, from, t.begin) && blank(src, t.end, eol);
    return alone ? std::make_pair(from, std::min(eol + 1, src.size()))
                 : std::make_pair(t.begin, t.end);
}

// The tag that closes tags[i] (check_sections found every section closed).
std::size_t closer_of(const std::vector<Tag> &tags, std::size_t i)
{
    std::size_t depth = 0;
    for (++i; i < tags.size(); ++i) {
        if (tags[i].kind == '#' || tags[i].kind == '^' || tags[i].kind == '<') {
            ++depth;
        } else if (tags[i].kind == '/' && depth-- == 0) {
            break;
        }
    }
    return i;
}

// Takes the definitions out of src into blocks (the rest into `rest`), and checks that each
// block used is defined.
bool collect_blocks(const std::string &src, const std::vector<Tag> &tags, Blocks &blocks,
                    std::string &rest, std::string &error)
{
    long depth = 0;
    std::size_t copied = 0;
    for (std::size_t i = 0; i < tags.size(); ++i) {
        const Tag &t = tags[i];
        const std::string where = "line " + std::to_string(line_of(src, t.begin)) + ": ";
        if (t.kind == '<' && (depth > 0 || blocks.count(t.name) != 0)) {
            error = where + "block \"" + t.name + "\" is defined twice, or inside a section";
            return false;
        }
        if (t.kind == '<') {
            const std::size_t j = closer_of(tags, i);
            bool alone_open = false, alone_close = false;
            const auto open = span_of(src, t, alone_open);
            const auto close = span_of(src, tags[j], alone_close);
            blocks[t.name] = src.substr(open.second, close.first - open.second);
            rest.append(src, copied, open.first - copied);
            copied = close.second;
            i = j;
            continue;
        }
        depth += t.kind == '#' || t.kind == '^' ? 1 : t.kind == '/' ? -1 : 0;
    }
    rest.append(src, copied, std::string::npos);
    for (const Tag &t : tags) {
        if (t.kind == '>' && blocks.count(t.name) == 0) {
            error = "line " + std::to_string(line_of(src, t.begin)) + ": no block \"" + t.name +
                    "\" in this template (partials are not supported: define it in the same " +
                    "file with {{<" + t.name + "}}...{{/" + t.name + "}})";
            return false;
        }
    }
    return true;
}

// src with each {{>name}} replaced by its block (a line of its own by the block's lines).
bool expand_blocks(const std::string &src, const Blocks &blocks, int depth, std::string &out,
                   std::string &error)
{
    std::size_t copied = 0;
    for (const Tag &t : tags_of(src)) {
        if (t.kind != '>') {
            continue;
        }
        std::string body;
        if (depth == kMaxBlockDepth ||
            !expand_blocks(blocks.at(t.name), blocks, depth + 1, body, error)) {
            error = error.empty()
                        ? "block \"" + t.name + "\" uses blocks over 8 deep (does it use itself?)"
                        : error;
            return false;
        }
        bool alone = false;
        const auto span = span_of(src, t, alone);
        if (alone && !body.empty() && body.back() != '\n') {
            body += '\n';
        }
        out.append(src, copied, span.first - copied).append(body);
        copied = span.second;
        if (out.size() > kMaxExpanded) {
            error = "the template with its blocks expanded is over 1 MiB";
            return false;
        }
    }
    out.append(src, copied, std::string::npos);
    return true;
}

// The template with its blocks expanded, checked as written (the lines of its errors are those
// of the file).
bool with_blocks(const std::string &source, std::string &expanded, std::string &error)
{
    std::set<std::string> used, keys;
    TemplateCalls calls;
    std::string whole;
    const std::vector<Tag> tags = tags_of(source);
    if (!check_tags(source, tags, error, used, keys, calls) ||
        !check_sections(source, tags, error, whole)) {
        return false;
    }
    for (const Tag &t : tags_of(whole)) {
        if (t.kind == '<') {
            whole[whole.find('<', t.begin)] = '#'; // a section, for kainjow
        }
    }
    mu::mustache probe(whole); // on the same lines as the source
    if (!probe.is_valid()) {
        error = with_line(whole, probe.error_message());
        return false;
    }
    Blocks blocks;
    std::string rest;
    return collect_blocks(source, tags, blocks, rest, error) &&
           expand_blocks(rest, blocks, 0, expanded, error);
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

// An alert's names (those of its place in a list aside), then the forms of its two maps: the
// labels' four (kMaps[0]) and their list, the annotations' the same.
// clang-format off
enum AlertKey {
    kStatus, kFiring, kResolved, kSeverity, kSeverityIs, kEmoji, kColor, kAlertname, kPod,
    kNamespace, kDetail, kHasSeverity, kHasAlertname, kHasNamespace, kHasDetail, kTarget,
    kTargetLabel, kTargetTitle, kHasTarget, kStartsAt, kStartsAtDate, kStartsAtTime,
    kStartsAtRfc3339, kEndsAt, kEndsAtDate, kEndsAtTime, kEndsAtRfc3339, kDuration,
    kDurationShort, kOtherLabels, kHasOtherLabels, kGeneratorUrl, kHasGeneratorUrl, kSilenceUrl,
    kHasSilenceUrl, kFingerprint, kSilenceLinks, kHasSilenceLinks,
    kLabels, kLabelsUrl, kLabelsLink, kLabelsRaw, kLabelList,
    kAnnotations, kAnnotationsUrl, kAnnotationsLink, kAnnotationsRaw, kAnnotationList,
    kAlertKeys
};
const char *const kAlertKeyNames[kAlertKeys] = {
    "status", "firing", "resolved", "severity", "severity_is", "emoji", "color", "alertname",
    "pod", "namespace", "detail", "has_severity", "has_alertname", "has_namespace", "has_detail",
    "target", "target_label", "target_title", "has_target", "starts_at", "starts_at_date",
    "starts_at_time", "starts_at_rfc3339", "ends_at", "ends_at_date", "ends_at_time",
    "ends_at_rfc3339", "duration", "duration_short", "other_labels", "has_other_labels",
    "generator_url", "has_generator_url", "silence_url", "has_silence_url", "fingerprint",
    "silence_links", "has_silence_links",
    "labels", "labels_url", "labels_link", "labels_raw", "label_list",
    "annotations", "annotations_url", "annotations_link", "annotations_raw", "annotation_list"};
// clang-format on

// One of the four object forms of a map (labels, labels_url ...): one value can be looked up
// without the others.
bool is_object_form(int k)
{
    return (k >= kLabels && k < kLabelList) || (k >= kAnnotations && k < kAnnotationList);
}

// What depends on the message: its title and mentions, then what depends on how many alerts it
// shows and whether it is the last.
// clang-format off
enum MessageKey {
    kTitle, kMentions, kHasMentions,
    kShown, kOmitted, kTruncated, kTruncatedAlerts, kMoreCount, kMore, kHasMore, kHasButtons,
    kMessageKeys
};
const char *const kMessageKeyNames[kMessageKeys] = {
    "title", "mentions", "has_mentions",
    "shown", "omitted", "truncated", "truncated_alerts", "more_count", "more", "has_more",
    "has_buttons"};
// clang-format on

// What an alert's place in a list says: index and first; in `alerts` also the rest.
const char *const kPlaceNames[] = {"index", "first", "first_firing", "first_resolved",
                                   "section_start"};
const char *const kListNames[] = {"alerts", "firing", "resolved"};

template <class T, std::size_t N> int index_of(const T (&names)[N], const std::string &name)
{
    for (std::size_t i = 0; i < N; ++i) {
        if (name == names[i]) {
            return static_cast<int>(i);
        }
    }
    return -1;
}

// The data a template sees, in three parts: the notification's (the same for every message of
// it), the message's, and each alert's (the same in every message that shows it), value by
// value as a render looks them up. A render joins them in a Lookup.
class DataBuilder
{
public:
    DataBuilder(const TemplateInput &in, Template::Kind kind, const std::set<std::string> &used)
        : in_(in), n_(*in.n), used_(used),
          esc_(kind == Template::Kind::text ? escape_markdown : plain_line)
    {
        for (std::size_t k = 0; k < kAlertKeys; ++k) {
            uses_[k] = used.count(kAlertKeyNames[k]) != 0;
        }
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

    // By MessageKey.
    std::vector<mu::data> message() const
    {
        std::vector<mu::data> d;
        d.reserve(kMessageKeys);
        d.emplace_back(esc_(plain_title(n_) + in_.part, kMaxTitle * 2));
        const std::string mentions = mention_line(*in_.at);
        d.emplace_back(mentions);
        d.emplace_back(!mentions.empty());
        d.emplace_back(count(in_.shown.size()));
        d.emplace_back(count(in_.not_shown));
        // what the notification does not show is said once, by its last message
        const std::uint64_t truncated = in_.last_part ? n_.truncated_alerts : 0;
        d.emplace_back(in_.not_shown > 0 || truncated > 0);
        d.emplace_back(count(truncated));
        d.emplace_back(count(in_.not_shown + truncated));
        const std::string line = in_.last_part ? omitted_line(n_, in_.not_shown) : "";
        const std::string more = esc_ == plain_line ? plain_line(line, kMaxTitle * 2) : line;
        d.emplace_back(more);
        d.emplace_back(!more.empty());
        d.emplace_back(in_.buttons);
        return d;
    }

    bool uses(const char *name) const { return used_.count(name) != 0; }
    // Whether the template names it: no other name of an alert is ever looked up (a dotted
    // name's first part is), so no other is made.
    bool uses(int k) const { return uses_[static_cast<std::size_t>(k)]; }

    // One name of an alert.
    mu::data alert(const AlertView &v, AlertKey k) const
    {
        const Alert &a = *v.alert;
        const std::optional<TimePoint> ends =
            a.status == Status::resolved ? a.ends_at : std::nullopt;
        switch (k) {
        case kStatus:
            return mu::data(to_string(a.status));
        case kFiring:
            return mu::data(a.status == Status::firing);
        case kResolved:
            return mu::data(a.status == Status::resolved);
        case kSeverity:
            return mu::data(v.severity);
        case kSeverityIs: {
            mu::data is;
            is.set(severity_key(a).empty() ? "-" : severity_key(a), true);
            return is;
        }
        case kEmoji:
            return mu::data(in_.styles->of(a).emoji);
        case kColor:
            return mu::data(in_.styles->of(a).color);
        case kAlertname:
            return mu::data(v.alertname);
        case kPod:
            return mu::data(v.pod);
        case kNamespace:
            return mu::data(v.namespace_);
        case kDetail:
            return mu::data(v.detail);
        case kHasSeverity:
            return mu::data(v.has_severity);
        case kHasAlertname:
            return mu::data(v.has_alertname);
        case kHasNamespace:
            return mu::data(v.has_namespace);
        case kHasDetail:
            return mu::data(v.has_detail);
        case kTarget:
            return mu::data(v.target);
        case kTargetLabel:
            return mu::data(esc_(v.target_label, kMaxValue));
        case kTargetTitle:
            return mu::data(target_title(v.target_label));
        case kHasTarget:
            return mu::data(!v.target.empty());
        case kStartsAt:
        case kStartsAtDate:
        case kStartsAtTime:
        case kStartsAtRfc3339:
            return time(a.starts_at, a.starts_at_offset, k - kStartsAt);
        case kEndsAt:
        case kEndsAtDate:
        case kEndsAtTime:
        case kEndsAtRfc3339:
            return time(ends, a.ends_at_offset, k - kEndsAt);
        case kDuration:
        case kDurationShort:
            return duration(a, k == kDuration);
        case kOtherLabels:
            return mu::data(v.other_labels);
        case kHasOtherLabels:
            return mu::data(!v.other_labels.empty());
        case kGeneratorUrl:
            return mu::data(v.link);
        case kHasGeneratorUrl:
            return mu::data(!v.link.empty());
        case kSilenceUrl:
            return mu::data(v.silence);
        case kHasSilenceUrl:
            return mu::data(!v.silence.empty());
        case kFingerprint:
            return mu::data(esc_(a.fingerprint, kMaxValue));
        case kSilenceLinks: {
            mu::data list{mu::data::type::list};
            for (const LinkView &l : v.silence_links) {
                mu::data item;
                item.set("label", l.label);
                item.set("url", l.url);
                list.push_back(item);
            }
            return list;
        }
        case kHasSilenceLinks:
            return mu::data(!v.silence_links.empty());
        case kLabelList:
            return map_list(a.labels, esc_, uses("name_is"));
        case kAnnotationList:
            return map_list(a.annotations, esc_, uses("name_is"));
        default:
            return map_object(map_of(a, k), form_of(k));
        }
    }

    // One value of one of the object forms of an alert's map (labels.instance), or nothing
    // (invalid) when it has no such name: what alert(v, k).get(name) would find.
    mu::data alert(const AlertView &v, AlertKey k, const std::string &name) const
    {
        const Labels &m = map_of(*v.alert, k);
        const auto it = m.find(name);
        return it == m.end() ? mu::data(mu::data::type::invalid)
                             : mu::data(form_of(k)(it->second, kMaxValue));
    }

private:
    static const Labels &map_of(const Alert &a, int k)
    {
        return k < kAnnotations ? a.labels : a.annotations;
    }

    Escape form_of(int k) const
    {
        switch ((k - kLabels) % (kAnnotations - kLabels)) {
        case 1:
            return url_form;
        case 2:
            return link_form;
        case 3:
            return raw_form;
        default:
            return esc_;
        }
    }

    // starts_at, starts_at_date, starts_at_time, starts_at_rfc3339 (form 0 to 3); "-" unknown.
    mu::data time(const std::optional<TimePoint> &t, Offset sent, int form) const
    {
        static const TimeZone::Form forms[] = {TimeZone::Form::date_time, TimeZone::Form::date,
                                               TimeZone::Form::time, TimeZone::Form::rfc3339};
        if (!t) {
            return mu::data("-");
        }
        return mu::data(in_.timezone->format(*t, forms[form], sent));
    }

    // How long it lasted (resolved) or has lasted so far (firing); "-" when the times are
    // unknown.
    mu::data duration(const Alert &a, bool words) const
    {
        std::optional<TimePoint> end = a.status == Status::resolved ? a.ends_at : in_.now;
        if (!a.starts_at || !end) {
            return mu::data("-");
        }
        const auto s = std::chrono::duration_cast<std::chrono::seconds>(*end - *a.starts_at);
        return mu::data(words ? duration_words(s) : duration_short(s));
    }

    const TemplateInput &in_;
    const Notification &n_;
    const std::set<std::string> &used_;
    Escape esc_;
    std::bitset<kAlertKeys> uses_;
};

const mu::data kTrue(true), kFalse(false);

// A list of alerts as a template sees it: `alerts` (every alert shown), `firing` or `resolved`.
// Its items are stand-ins (true), one per alert, that the Lookup turns into the alert's data and
// what its place in the list says; nothing of an alert is copied into a list.
struct AlertList {
    int kind = 0; // in kListNames
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

// What one name (or the first part of a dotted one) is, wherever it is looked up.
struct Route {
    std::string name;               // the tag's name (routes are kept by its address)
    std::vector<std::string> parts; // kainjow's split of a dotted name: at each dot, an empty
                                    // last part dropped; empty for a name without a dot
    int alert = -1;                 // AlertKey
    int place = -1;                 // in kPlaceNames
    int message = -1;               // MessageKey
    int list = -1;                  // in kListNames
    const mu::data *notification = nullptr;
    const TemplateCalls::Call *call = nullptr; // a name that carries an argument
};

// One alert's values, each made the first time a render looks it up.
struct AlertData {
    std::vector<mu::data> values; // of the names the template uses (TemplateCache::Impl::slots);
                                  // invalid: not made yet
    std::map<std::pair<int, std::string>, mu::data> picked; // labels.instance ...: one value
};

} // namespace

// What the renders of one notification with one template keep between them.
struct TemplateCache::Impl {
    std::uint64_t template_id = 0;
    const Notification *n = nullptr;
    std::optional<mu::data> notification;
    std::unordered_map<const AlertView *, AlertData> alerts;
    std::vector<mu::data> indexes; // "1", "2" ...
    std::unordered_map<const std::string *, Route> routes;
    std::unordered_map<std::string, mu::data> nows; // {{now "LAYOUT"}} ...
    std::array<int, kAlertKeys> slots{}; // where AlertData::values has each name; -1: unused
    std::size_t used_slots = 0;
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
// cached data. The bottom item stands for the notification's data and the message's, together;
// an item of an alert list for its alert's data and, before it, what its place says.
class Lookup : public mu::basic_context<std::string>
{
public:
    Lookup(TemplateCache::Impl &cache, const DataBuilder &data, const TemplateInput &in,
           const std::vector<mu::data> &message, const std::vector<AlertList> &lists,
           const TemplateCalls &calls, RenderWatch *watch)
        : cache_(cache), data_(data), in_(in), message_(message), lists_(lists), calls_(calls),
          watch_(watch), alerts_(in.shown.size(), nullptr)
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
        if (cache_.used_slots == 0) {
            for (int k = 0; k < kAlertKeys; ++k) {
                cache_.slots[k] = data.uses(k) ? static_cast<int>(cache_.used_slots++) : -1;
            }
        }
    }

    void push(const mu::data *d) override
    {
        stack_.push_back(d);
        for (const AlertList &l : lists_) {
            if (const auto at = l.place(d)) {
                reach(l.shown[*at]);
            }
        }
    }

    void pop() override { stack_.pop_back(); }

    const mu::data *get(const std::string &name) const override
    {
        if (name.size() == 1 && name[0] == '.') {
            return stack_.back();
        }
        const Route &r = route(name);
        if (r.call != nullptr) {
            return call(*r.call);
        }
        if (r.parts.empty()) {
            for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
                if (const mu::data *v = find(*it, r, name)) {
                    return v;
                }
            }
            return nullptr;
        }
        for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
            const mu::data *var = nullptr;
            std::size_t next = 1;
            const auto at = r.parts.size() > 1 && is_object_form(r.alert) ? place(*it) : nullptr;
            if (at != nullptr) {
                var = picked(at->first->shown[at->second], r.alert, r.parts[1]);
                next = 2;
            } else {
                var = find(*it, r, r.parts[0]);
            }
            for (; var != nullptr && next < r.parts.size(); ++next) {
                var = var->get(r.parts[next]);
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
    // What was rendered so far depends on alert i: tells the watch of every alert up to it.
    void reach(std::size_t i) const
    {
        for (; watch_ != nullptr && reached_ <= i; ++reached_) {
            watch_->alert(reached_);
        }
    }

    const Route &route(const std::string &name) const
    {
        if (cache_.routes.size() > 4096) {
            cache_.routes.clear(); // names of lambdas' sections, parsed each time they run
        }
        const auto [it, added] = cache_.routes.try_emplace(&name);
        Route &r = it->second;
        if (!added && r.name == name) {
            return r;
        }
        r = Route{};
        r.name = name;
        if (name.find('.') != std::string::npos) {
            r.parts = mu::split(name, '.');
        }
        const std::string &head = r.parts.empty() ? name : r.parts.front();
        r.alert = index_of(kAlertKeyNames, head);
        r.place = index_of(kPlaceNames, head);
        r.message = index_of(kMessageKeyNames, head);
        r.list = index_of(kListNames, head);
        r.notification = cache_.notification->get(head);
        r.call = calls_.find(name);
        return r;
    }

    const mu::data *call(const TemplateCalls::Call &c) const
    {
        switch (c.call.kind) {
        case TemplateCall::Kind::function:
            return &c.fn;
        case TemplateCall::Kind::value_is:
            return value_is(c.call) ? &kTrue : &kFalse;
        case TemplateCall::Kind::compare:
            return compare(c.call) ? &kTrue : &kFalse;
        case TemplateCall::Kind::time:
            break;
        }
        return time(c.call);
    }

    // The alert of the innermost alert list item on the stack, by its position in in_.shown.
    std::optional<std::size_t> innermost_alert() const
    {
        for (auto it = stack_.rbegin(); it != stack_.rend(); ++it) {
            if (const auto at = place(*it)) {
                return at->first->shown[at->second];
            }
        }
        return std::nullopt;
    }

    // label_is.NAME.VALUE (in an alert: false outside one), group_label_is ...: a missing label
    // is the empty value, as Go's eq sees it.
    bool value_is(const TemplateCall &c) const
    {
        const Labels *m = c.map == "group_labels"         ? &in_.n->group_labels
                          : c.map == "common_labels"      ? &in_.n->common_labels
                          : c.map == "common_annotations" ? &in_.n->common_annotations
                                                          : nullptr;
        if (m == nullptr) {
            const auto i = innermost_alert();
            if (!i) {
                return false;
            }
            const Alert &a = *in_.shown[*i]->alert;
            m = c.map == "labels" ? &a.labels : &a.annotations;
        }
        const auto it = m->find(c.key);
        return it == m->end() ? c.value.empty() : it->second == c.value;
    }

    bool compare(const TemplateCall &c) const
    {
        std::uint64_t n = 0;
        const std::uint64_t truncated = in_.last_part ? in_.n->truncated_alerts : 0;
        if (c.count == "index") {
            const auto i = innermost_alert();
            n = i ? *i + 1 : 0;
        } else if (c.count == "firing_count" || c.count == "resolved_count") {
            n = in_.n->count(c.count == "firing_count" ? Status::firing : Status::resolved);
        } else if (c.count == "alert_count") {
            n = in_.n->total();
        } else {
            if (watch_ != nullptr) {
                watch_->varies();
            }
            n = c.count == "shown"     ? in_.shown.size()
                : c.count == "omitted" ? in_.not_shown
                                       : in_.not_shown + truncated;
        }
        return c.greater ? n > c.number : n < c.number;
    }

    // starts_at "LAYOUT" (an alert's), ends_at "LAYOUT" (a resolved alert's, else "-"), now.
    const mu::data *time(const TemplateCall &c) const
    {
        const auto shown = [&](const std::optional<TimePoint> &t, Offset sent) {
            return mu::data(!t         ? std::string("-")
                            : c.layout ? in_.timezone->format(*t, *c.layout, sent)
                                       : in_.timezone->format(*t, TimeZone::Form::date_time, sent));
        };
        if (c.time == "now") {
            const auto [it, added] = cache_.nows.try_emplace(c.layout ? c.layout->text() : "");
            if (added) {
                it->second = shown(in_.now, Offset(0));
            }
            return &it->second;
        }
        const auto i = innermost_alert();
        if (!i) {
            return nullptr;
        }
        AlertData &d = alert(*i);
        const std::string &layout = c.layout ? c.layout->text() : std::string();
        auto it = d.picked.find({kAlertKeys + (c.time == "ends_at"), layout});
        if (it == d.picked.end()) {
            const Alert &a = *in_.shown[*i]->alert;
            const bool ends = c.time == "ends_at";
            it = d.picked
                     .emplace(std::make_pair(kAlertKeys + ends, layout),
                              shown(!ends                          ? a.starts_at
                                    : a.status == Status::resolved ? a.ends_at
                                                                   : std::nullopt,
                                    ends ? a.ends_at_offset : a.starts_at_offset))
                     .first;
        }
        return &it->second;
    }

    // The alert list item p is, and its place in it; null when it is none.
    const std::pair<const AlertList *, std::size_t> *place(const mu::data *p) const
    {
        for (const AlertList &l : lists_) {
            if (const auto at = l.place(p)) {
                place_ = {&l, *at};
                return &place_;
            }
        }
        return nullptr;
    }

    const mu::data *find(const mu::data *item, const Route &r, const std::string &key) const
    {
        if (item == &root_) {
            if (r.message >= 0) {
                if (r.message >= kShown && watch_ != nullptr) {
                    watch_->varies();
                }
                return &message_[r.message];
            }
            if (r.list >= 0 && !lists_.empty()) {
                const AlertList &l = lists_[r.list];
                if (!l.shown.empty()) {
                    reach(l.shown.front()); // whether it is empty is the same for all that
                                            // show its first alert
                }
                return &l.items;
            }
            return r.notification;
        }
        if (const auto at = place(item)) {
            return in_alert(*at->first, at->second, r);
        }
        return item->get(key);
    }

    const mu::data *in_alert(const AlertList &l, std::size_t at, const Route &r) const
    {
        const std::size_t i = l.shown[at];
        if (r.place == 0) {
            return &cache_.indexes[i];
        }
        if (r.place == 1) {
            return at == 0 ? &kTrue : &kFalse;
        }
        if (r.place > 1 && l.kind == 0) {
            const bool firing = in_.shown[i]->alert->status == Status::firing;
            const bool start = in_section_[i] == 0;
            const bool value = r.place == 4   ? start
                               : r.place == 2 ? firing && start
                                              : !firing && start;
            return value ? &kTrue : &kFalse;
        }
        if (r.alert < 0 || cache_.slots[r.alert] < 0) {
            return nullptr;
        }
        mu::data &v = alert(i).values[cache_.slots[r.alert]];
        if (v.is_invalid()) {
            v = data_.alert(*in_.shown[i], static_cast<AlertKey>(r.alert));
        }
        return &v;
    }

    // labels.instance, annotations_url.summary ... in alert i.
    const mu::data *picked(std::size_t i, int form, const std::string &name) const
    {
        if (cache_.slots[form] < 0) {
            return nullptr;
        }
        AlertData &d = alert(i);
        if (const mu::data &whole = d.values[cache_.slots[form]]; !whole.is_invalid()) {
            return whole.get(name); // the whole map was made
        }
        auto it = d.picked.find({form, name});
        if (it == d.picked.end()) {
            it = d.picked
                     .emplace(std::make_pair(form, name),
                              data_.alert(*in_.shown[i], static_cast<AlertKey>(form), name))
                     .first;
        }
        return it->second.is_invalid() ? nullptr : &it->second;
    }

    AlertData &alert(std::size_t i) const
    {
        if (alerts_[i] == nullptr) {
            AlertData &d = cache_.alerts[in_.shown[i]];
            while (d.values.size() < cache_.used_slots) {
                d.values.emplace_back(mu::data::type::invalid);
            }
            alerts_[i] = &d;
        }
        return *alerts_[i];
    }

    TemplateCache::Impl &cache_;
    const DataBuilder &data_;
    const TemplateInput &in_;
    const std::vector<mu::data> &message_;
    const std::vector<AlertList> &lists_;
    const TemplateCalls &calls_;
    RenderWatch *watch_;
    const mu::data root_; // stands for the notification's and the message's data
    std::vector<const mu::data *> stack_;
    std::vector<std::size_t> in_section_;     // each alert's place among those of its status
    mutable std::vector<AlertData *> alerts_; // each alert's data, once found
    mutable std::pair<const AlertList *, std::size_t> place_;
    mutable std::size_t reached_ = 0; // alerts reached so far (told to watch_)
};

// The lists the template names (all three when it names any: as one render always made them).
std::vector<AlertList> alert_lists(const TemplateInput &in, const DataBuilder &data)
{
    std::vector<AlertList> lists;
    if (!data.uses("alerts") && !data.uses("firing") && !data.uses("resolved")) {
        return lists;
    }
    lists.resize(3);
    lists[1].kind = 1;
    lists[2].kind = 2;
    const bool firing = data.uses("firing"), resolved = data.uses("resolved");
    std::array<mu::list, 3> items; // made whole, then copied once: a list may hold thousands
    for (std::size_t i = 0; i < in.shown.size(); ++i) {
        const bool is_firing = in.shown[i]->alert->status == Status::firing;
        for (const std::size_t l : {std::size_t(0), std::size_t(is_firing ? 1 : 2)}) {
            if (l == 0 || (is_firing ? firing : resolved)) {
                if (items[l].empty()) {
                    items[l].reserve(in.shown.size());
                }
                items[l].emplace_back(true);
                lists[l].shown.push_back(i);
            }
        }
    }
    for (std::size_t l = 0; l < 3; ++l) {
        lists[l].items = mu::data(items[l]);
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
                   std::set<std::string> keys, std::shared_ptr<const TemplateCalls> calls)
    : source_(std::move(source)), kind_(kind), used_(std::move(used)), map_keys_(std::move(keys)),
      calls_(std::move(calls)), id_(next_id++)
{
}

std::shared_ptr<const Template> Template::parse(std::string source, Kind kind, std::string &error)
{
    // What a template prints goes into the JSON request as it is: it must be UTF-8.
    if (!valid_utf8(source, error)) {
        return nullptr;
    }
    std::string expanded;
    if (!with_blocks(source, expanded, error)) {
        return nullptr;
    }
    std::set<std::string> used, keys;
    auto calls = std::make_shared<TemplateCalls>();
    std::string whole;
    if (!check_tags(expanded, tags_of(expanded), error, used, keys, *calls) ||
        !check_sections(expanded, tags_of(expanded), error, whole)) {
        return nullptr; // not after with_blocks: a block's tags are the file's
    }
    return std::shared_ptr<const Template>(
        new Template(without_standalone_lines(whole, tags_of(whole)), kind, std::move(used),
                     std::move(keys), std::move(calls)));
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
    const std::vector<mu::data> message = data.message();
    const std::vector<AlertList> lists = alert_lists(in, data);
    Lookup lookup(c, data, in, message, lists, *calls_, watch);
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

bool Template::varies_by_page() const
{
    for (const char *name : {"alerts", "firing", "resolved", "shown", "omitted", "truncated",
                             "truncated_alerts", "more_count", "more", "has_more", "has_buttons"}) {
        if (used_.count(name) != 0) {
            return true;
        }
    }
    return false;
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
