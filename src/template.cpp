#include "template.hpp"

#include "render.hpp"

#include <kainjow/mustache.hpp>

#include <algorithm>
#include <atomic>
#include <set>
#include <unordered_map>

namespace dingtalk
{

namespace mu = kainjow::mustache;

namespace
{

std::atomic<std::uint64_t> next_id{1};

const std::vector<std::string> kTitleNames = {
    "title",
    "status",
    "status_upper",
    "firing_count",
    "resolved_count",
    "alert_count",
    "receiver",
    "group_key",
    "group_labels",
    "group_label_list",
    "common_labels",
    "common_label_list",
    "common_annotations",
    "common_annotation_list",
    "mentions",
    "has_mentions",
    "name",
    "value",
};

const std::vector<std::string> kTextNames = [] {
    std::vector<std::string> names = kTitleNames;
    for (const char *n :
         {// the notification
          "external_url", "alertmanager_url", "silence_url", "alerts", "firing", "resolved",
          "has_firing", "has_resolved", "shown", "omitted", "truncated", "truncated_alerts", "more",
          "has_more", "more_count", "has_alertmanager_url", "has_silence_url",
          // each alert
          "index", "first", "first_firing", "first_resolved", "section_start", "severity",
          "alertname", "pod", "namespace", "detail", "starts_at", "ends_at", "other_labels",
          "has_other_labels", "generator_url", "has_generator_url", "fingerprint", "labels",
          "has_silence_url", "label_list", "annotations", "annotation_list"}) {
        names.emplace_back(n);
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

// A typo in a name renders as nothing in mustache; catch it when the configuration loads. The
// names used go into `used` (all of them when the delimiters change: nothing is known then).
bool check_names(const std::string &src, const std::vector<std::string> &known, std::string &error,
                 std::set<std::string> &used)
{
    for (std::size_t pos = src.find("{{"); pos != std::string::npos; pos = src.find("{{", pos)) {
        const bool triple = src.compare(pos, 3, "{{{") == 0;
        const std::size_t start = pos + (triple ? 3 : 2);
        const std::size_t end = src.find(triple ? "}}}" : "}}", start);
        if (end == std::string::npos) {
            return true; // the parser reports it
        }
        std::string tag = src.substr(start, end - start);
        pos = end + 2;
        tag.erase(0, tag.find_first_not_of(" \t"));
        if (tag.empty() || tag[0] == '!') {
            continue;
        }
        if (tag[0] == '=') {
            used.insert(known.begin(), known.end());
            return true; // custom delimiters: leave the names alone
        }
        if (tag[0] == '>') {
            error = "line " + std::to_string(line_of(src, start)) + ": partials are not supported";
            return false;
        }
        if (std::string("#^/&").find(tag[0]) != std::string::npos) {
            tag.erase(0, 1);
        }
        tag.erase(0, tag.find_first_not_of(" \t"));
        tag.erase(tag.find_last_not_of(" \t") + 1);
        const std::string first = tag.substr(0, tag.find('.'));
        if (tag == "." || first.empty() ||
            std::find(known.begin(), known.end(), first) != known.end()) {
            used.insert(first);
            continue;
        }
        error = "line " + std::to_string(line_of(src, start)) + ": unknown name \"" + tag +
                "\" (see the README for the names a template can use)";
        return false;
    }
    return true;
}

using Escape = std::string (*)(std::string_view, std::size_t);

mu::data labels_object(const Labels &m, Escape esc)
{
    mu::data obj;
    for (const auto &kv : m) {
        obj.set(kv.first, esc(kv.second, kMaxValue));
    }
    return obj;
}

mu::data labels_list(const Labels &m, Escape esc)
{
    mu::data list{mu::data::type::list};
    for (const auto &kv : m) {
        mu::data item;
        item.set("name", esc(kv.first, kMaxValue));
        item.set("value", esc(kv.second, kMaxValue));
        list.push_back(item);
    }
    return list;
}

void set_common(mu::data &d, const Notification &n, const Mentions &at, Escape esc)
{
    const std::size_t firing = n.count(Status::firing), resolved = n.count(Status::resolved);
    d.set("status", to_string(n.status));
    d.set("status_upper", n.status == Status::firing ? "FIRING" : "RESOLVED");
    d.set("firing_count", std::to_string(firing));
    d.set("resolved_count", std::to_string(resolved));
    d.set("alert_count", std::to_string(n.total()));
    d.set("receiver", esc(n.receiver, kMaxValue));
    d.set("group_key", esc(n.group_key, kMaxValue));
    d.set("group_labels", labels_object(n.group_labels, esc));
    d.set("group_label_list", labels_list(n.group_labels, esc));
    d.set("common_labels", labels_object(n.common_labels, esc));
    d.set("common_label_list", labels_list(n.common_labels, esc));
    d.set("common_annotations", labels_object(n.common_annotations, esc));
    d.set("common_annotation_list", labels_list(n.common_annotations, esc));
    const std::string mentions = mention_line(at);
    d.set("mentions", mentions);
    d.set("has_mentions", !mentions.empty());
}

// An alert's data; its label and annotation maps only when the template names them (they are
// most of the cost of an alert with many labels).
mu::data alert_data(const AlertView &v, const Notification &n, std::size_t index,
                    const std::set<std::string> &used)
{
    const Alert &a = *v.alert;
    mu::data d;
    d.set("index", std::to_string(index + 1));
    d.set("status", to_string(a.status));
    d.set("firing", a.status == Status::firing);
    d.set("resolved", a.status == Status::resolved);
    d.set("severity", v.severity);
    d.set("alertname", v.alertname);
    d.set("pod", v.pod);
    d.set("namespace", v.namespace_);
    d.set("detail", v.detail);
    d.set("starts_at", v.starts_at);
    d.set("ends_at", v.ends_at);
    d.set("other_labels", v.other_labels);
    d.set("has_other_labels", !v.other_labels.empty());
    d.set("generator_url", v.link);
    d.set("has_generator_url", !v.link.empty());
    const std::string silence = silence_link(n, a.labels);
    d.set("silence_url", silence);
    d.set("has_silence_url", !silence.empty());
    d.set("fingerprint", escape_markdown(a.fingerprint, kMaxValue));
    if (used.count("labels")) {
        d.set("labels", labels_object(a.labels, escape_markdown));
    }
    if (used.count("label_list")) {
        d.set("label_list", labels_list(a.labels, escape_markdown));
    }
    if (used.count("annotations")) {
        d.set("annotations", labels_object(a.annotations, escape_markdown));
    }
    if (used.count("annotation_list")) {
        d.set("annotation_list", labels_list(a.annotations, escape_markdown));
    }
    return d;
}

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

} // namespace

const std::vector<std::string> &text_names()
{
    return kTextNames;
}
const std::vector<std::string> &title_names()
{
    return kTitleNames;
}

Template::Template(std::string source, std::set<std::string> used)
    : source_(std::move(source)), used_(std::move(used)), id_(next_id++)
{
}

std::shared_ptr<const Template> Template::parse(std::string source, Kind kind, std::string &error)
{
    // What a template prints goes into the JSON request as it is: it must be UTF-8.
    for (std::size_t i = 0; i < source.size();) {
        char32_t cp = 0;
        const std::size_t len = utf8_length(source, i, cp);
        if (len == 0) {
            error = "line " + std::to_string(line_of(source, i)) + ": not valid UTF-8";
            return nullptr;
        }
        i += len;
    }
    mu::mustache probe(source);
    if (!probe.is_valid()) {
        error = with_line(source, probe.error_message());
        return nullptr;
    }
    std::set<std::string> used;
    if (!check_names(source, kind == Kind::text ? kTextNames : kTitleNames, error, used)) {
        return nullptr;
    }
    return std::shared_ptr<const Template>(new Template(std::move(source), std::move(used)));
}

std::string Template::render(const void *data) const
{
    mu::mustache &tmpl = parsed_copy(id_, source_);
    std::string out = tmpl.render(*static_cast<const mu::data *>(data));
    if (!tmpl.is_valid()) {
        throw std::runtime_error("template: " + with_line(source_, tmpl.error_message()));
    }
    return out;
}

std::string Template::render_text(const Notification &n,
                                  const std::vector<const AlertView *> &shown, std::size_t omitted,
                                  const Mentions &at) const
{
    mu::data d;
    set_common(d, n, at, escape_markdown);
    d.set("title", escape_markdown(plain_title(n), kMaxTitle * 2));
    d.set("external_url", safe_link_url(n.external_url));
    const std::string am = alertmanager_link(n), silence = silence_link(n, n.group_labels);
    d.set("alertmanager_url", am);
    d.set("has_alertmanager_url", !am.empty());
    d.set("silence_url", silence);
    d.set("has_silence_url", !silence.empty());

    mu::data alerts{mu::data::type::list}, firing{mu::data::type::list},
        resolved{mu::data::type::list};
    std::size_t nfiring = 0, nresolved = 0;
    for (std::size_t i = 0; i < shown.size(); ++i) {
        mu::data a = alert_data(*shown[i], n, i, used_);
        const bool is_firing = shown[i]->alert->status == Status::firing;
        std::size_t &in_section = is_firing ? nfiring : nresolved;
        if (used_.count(is_firing ? "firing" : "resolved")) {
            mu::data in_list = a;
            in_list.set("first", in_section == 0);
            (is_firing ? firing : resolved).push_back(in_list);
        }
        a.set("first", i == 0);
        a.set("first_firing", is_firing && in_section == 0);
        a.set("first_resolved", !is_firing && in_section == 0);
        a.set("section_start", in_section == 0);
        alerts.push_back(a);
        ++in_section;
    }
    d.set("alerts", alerts);
    d.set("firing", firing);
    d.set("resolved", resolved);
    d.set("has_firing", nfiring > 0);
    d.set("has_resolved", nresolved > 0);
    d.set("shown", std::to_string(shown.size()));
    d.set("omitted", std::to_string(omitted));
    d.set("truncated", omitted > 0 || n.truncated_alerts > 0);
    d.set("truncated_alerts", std::to_string(n.truncated_alerts));
    d.set("more_count", std::to_string(omitted + static_cast<std::uint64_t>(n.truncated_alerts)));
    const std::string more = omitted_line(n, omitted);
    d.set("more", more);
    d.set("has_more", !more.empty());
    return render(&d);
}

std::string Template::render_title(const Notification &n, const Mentions &at) const
{
    mu::data d;
    set_common(d, n, at, plain_line);
    d.set("title", plain_title(n));
    return plain_line(render(&d), kMaxTitle * 2);
}

} // namespace dingtalk
