#include "go_hint.hpp"

#include <algorithm>
#include <cctype>
#include <vector>

namespace dingtalk
{

namespace
{

using Words = std::vector<std::string>;

// The action's words: quoted strings kept whole with their quotes, parentheses dropped (Go's
// grouping does not change what is named), a pipe's last command moved first
// (".Labels.x | toUpper" is "toUpper .Labels.x").
Words words_of(std::string s)
{
    Words w;
    for (std::size_t i = 0; i < s.size();) {
        const char c = s[i];
        if (c == ' ' || c == '\t' || c == '(' || c == ')') {
            ++i;
        } else if (c == '"' || c == '`') {
            std::size_t end = i + 1;
            while (end < s.size() && s[end] != c) {
                end += s[end] == '\\' && c == '"' ? 2 : 1;
            }
            w.push_back(s.substr(i, std::min(end + 1, s.size()) - i));
            i = end + 1;
        } else {
            std::size_t end = i;
            while (end < s.size() && std::string(" \t()\"`").find(s[end]) == std::string::npos) {
                ++end;
            }
            w.push_back(s.substr(i, end - i));
            i = end;
        }
    }
    const auto pipe = std::find(w.begin(), w.end(), "|");
    if (pipe != w.end()) {
        Words piped(pipe + 1, w.end());
        piped.insert(piped.end(), w.begin(), pipe);
        return piped;
    }
    return w;
}

std::string unquoted(const std::string &s)
{
    return s.size() >= 2 && (s[0] == '"' || s[0] == '`') ? s.substr(1, s.size() - 2) : s;
}

bool starts_with(const std::string &s, const char *p)
{
    return s.rfind(p, 0) == 0;
}

std::string field(const std::string &f)
{
    return go_field(f);
}

} // namespace

std::string go_field(std::string f)
{
    if (f.rfind("$.", 0) == 0) {
        f.erase(0, 1);
    }
    static const std::pair<const char *, const char *> kMaps[] = {
        {".Labels.", "labels."},
        {".Annotations.", "annotations."},
        {".CommonLabels.", "common_labels."},
        {".CommonAnnotations.", "common_annotations."},
        {".GroupLabels.", "group_labels."}};
    for (const auto &[go, ours] : kMaps) {
        if (f.rfind(go, 0) == 0 && f.find(".SortedPairs") == std::string::npos) {
            return ours + f.substr(std::char_traits<char>::length(go));
        }
    }
    static const std::pair<const char *, const char *> kFields[] = {
        {".Status", "status"},
        {".Receiver", "receiver"},
        {".ExternalURL", "external_url"},
        {".GeneratorURL", "generator_url"},
        {".Fingerprint", "fingerprint"},
        {".GroupKey", "group_key"},
        {".StartsAt", "starts_at"},
        {".EndsAt", "ends_at"},
        {".Alerts.Firing", "firing"},
        {".Alerts.Resolved", "resolved"},
        {".Alerts", "alerts"},
        {".Labels.SortedPairs", "label_list"},
        {".Annotations.SortedPairs", "annotation_list"},
        {".CommonLabels.SortedPairs", "common_label_list"},
        {".CommonAnnotations.SortedPairs", "common_annotation_list"},
        {".GroupLabels.SortedPairs", "group_label_list"}};
    for (const auto &[go, ours] : kFields) {
        if (f == go) {
            return ours;
        }
    }
    // .StartsAt.Format "..." and .StartsAt.Local.Format "...": the layout follows
    for (const char *t : {".StartsAt", ".EndsAt"}) {
        if (f == std::string(t) + ".Format" || f == std::string(t) + ".Local.Format") {
            return t[1] == 'S' ? "starts_at" : "ends_at";
        }
    }
    return "";
}

namespace
{

// index .Labels "x", len .Alerts.Firing, .StartsAt.Format "L": the value as our name.
std::string value(const Words &w, std::size_t at)
{
    if (at >= w.size()) {
        return "";
    }
    if (w[at] == "index" && at + 2 < w.size()) {
        const std::string m = field(w[at + 1] + ".x");
        return m.empty() ? "" : m.substr(0, m.size() - 1) + unquoted(w[at + 2]);
    }
    if (w[at] == "len" && at + 1 < w.size()) {
        const std::string l = field(w[at + 1]);
        return l == "alerts" ? "alert_count" : l.empty() ? "" : l + "_count";
    }
    const std::string f = field(w[at]);
    if ((f == "starts_at" || f == "ends_at") && at + 1 < w.size() && w[at + 1][0] == '"') {
        return f + " " + w[at + 1];
    }
    return f;
}

// if/with CONDITION: the section that is the same condition.
std::string condition(const Words &w)
{
    if (w.size() > 1 && (w[1] == "and" || w[1] == "or" || w[1] == "not")) {
        return w[1] == "and"   ? "a section inside the other: {{#a}}{{#b}}...{{/b}}{{/a}}"
               : w[1] == "not" ? "the inverted section: {{^a}}...{{/a}}"
                               : "a section for each (no section says or)";
    }
    if (w.size() == 4 && (w[1] == "eq" || w[1] == "ne") && w[2] == ".Status") {
        const std::string s = unquoted(w[3]);
        return std::string("{{") + (w[1] == "eq" ? "#" : "^") + s + "}}...{{/" + s +
               "}} in an alert, {{#has_" + s + "}}...{{/has_" + s + "}} for the group";
    }
    if (w.size() >= 4 && (w[1] == "eq" || w[1] == "ne")) {
        const std::string v = value(w, 2);
        const std::size_t dot = v.find('.');
        if (dot != std::string::npos && v.find(' ') == std::string::npos) {
            std::string map = v.substr(0, dot);
            map.pop_back(); // labels: label_is, common_annotations: common_annotation_is
            const std::string name = map + "_is" + v.substr(dot) + "." + unquoted(w.back());
            return std::string("{{") + (w[1] == "eq" ? "#" : "^") + name + "}}...{{/" + name + "}}";
        }
    }
    if (w.size() >= 4 && (w[1] == "gt" || w[1] == "lt" || w[1] == "ge" || w[1] == "le")) {
        const std::string count = value(w, 2);
        if (!count.empty() && std::all_of(w.back().begin(), w.back().end(), ::isdigit)) {
            // ge N is "not below N", le N "not above N"
            const bool above = w[1] == "gt" || w[1] == "le";
            const bool inverted = w[1] == "ge" || w[1] == "le";
            const std::string name = count + (above ? "_gt." : "_lt.") + w.back();
            return std::string("{{") + (inverted ? "^" : "#") + name + "}}...{{/" + name + "}}";
        }
    }
    const std::string v = w.size() == 2 ? value(w, 1) : "";
    return v.empty() ? "{{#name}}...{{/name}}, {{^name}} for its else (docs/go-templates.md)"
                     : "{{#" + v + "}}...{{/" + v + "}}";
}

// The functions Go bridge templates call, by Go's or sprig's name.
// What a function of go_functions() (or a time's: sprig's date, dateInZone, now) is in ours.
std::string function(const Words &w)
{
    const std::string &f = w[0];
    if (f == "len" || f == "index") {
        return "{{" + value(w, 0) + "}}";
    }
    if ((f == "date" || f == "dateInZone") && w.size() >= 3) {
        const std::string t = value(w, 2);
        return t.empty() ? "" : "{{" + t + " " + w[1] + "}}, in dingtalk_timezone";
    }
    if (f == "now") {
        return "{{now \"LAYOUT\"}}";
    }
    for (const GoFunction &g : go_functions()) {
        if (f != g.go) {
            continue;
        }
        const std::string v = value(w, std::min(w.size() - 1, 1 + g.value_at));
        const std::string inner = v.empty() ? "..." : "{{" + v + "}}";
        std::string args;
        for (std::size_t i = 1; i < w.size() && i <= g.args + 1; ++i) {
            args += i == 1 + g.value_at ? "" : " " + w[i];
        }
        const std::string ours = g.ours;
        if (ours.empty()) {
            return inner + " (values are escaped for markdown already)";
        }
        if (ours == "join") {
            return "{{#join" + args + "}}...{{/join}} around a list, one item a line";
        }
        if (ours == "urlencode" && v.find('.') != std::string::npos) {
            return "{{" + v.substr(0, v.find('.')) + "_url" + v.substr(v.find('.')) + "}}";
        }
        return "{{#" + ours + args + "}}" + inner + "{{/" + ours + "}}";
    }
    return "";
}

// A Go template's name for the title or the text (ding.link.title, __subject ...).
bool is_title_template(const std::string &name)
{
    return name.find("title") != std::string::npos || name.find("subject") != std::string::npos;
}

std::string instead(const Words &w)
{
    const std::string &k = w[0];
    if (k == "if" || k == "with") {
        return condition(w);
    }
    if (k == "else") {
        return "{{/name}}{{^name}}: close the section and open its inverse";
    }
    if (k == "end") {
        return "{{/name}}, the section's own name";
    }
    if (k == "range") {
        const std::string list = value(w, w.size() - 1);
        return "{{#" + (list.empty() ? "alerts" : list) + "}}...{{/" +
               (list.empty() ? "alerts" : list) + "}}" +
               (list.find("_list") != std::string::npos ? ", with {{name}} and {{value}}" : "");
    }
    if ((k == "define" || k == "block") && w.size() > 1) {
        return "{{<" + unquoted(w[1]) + "}}...{{/" + unquoted(w[1]) + "}} and {{>" +
               unquoted(w[1]) + "}} where it is used, in the same file";
    }
    if (k == "template" && w.size() > 1) {
        return is_title_template(unquoted(w[1])) ? "{{title}}, or dingtalk_title_template"
                                                 : "{{>" + unquoted(w[1]) + "}}";
    }
    if (k[0] == '$' && !starts_with(k, "$.")) {
        return "no variables: name the value where it is used ({{labels.x}}, {{index}})";
    }
    const std::string f = function(w);
    if (!f.empty()) {
        return f;
    }
    const std::string v = value(w, 0);
    return v.empty() ? "" : "{{" + v + "}}";
}

} // namespace

std::string go_hint(const std::string &tag)
{
    std::string s = tag;
    const auto trim = [&] {
        s.erase(0, s.find_first_not_of(" \t-"));
        s.erase(s.find_last_not_of(" \t-") + 1);
    };
    trim(); // Go's {{- x -}}
    if (starts_with(s, "/*")) {
        return "Go template syntax: a comment is {{! ... }}";
    }
    const Words w = words_of(s);
    if (w.empty()) {
        return "";
    }
    const std::string write = instead(w);
    return write.empty() ? "" : "Go template syntax \"" + s + "\": write " + write;
}

const std::vector<GoFunction> &go_functions()
{
    static const std::vector<GoFunction> kFunctions = {
        {"toUpper", "upper", 0, 0},
        {"upper", "upper", 0, 0},
        {"toLower", "lower", 0, 0},
        {"lower", "lower", 0, 0},
        {"title", "title_case", 0, 0},
        {"trunc", "trunc", 1, 1},
        {"replace", "replace", 2, 2},
        {"default", "default", 1, 1},
        {"reReplaceAll", "regex_replace", 2, 2},
        {"regexReplaceAll", "regex_replace", 2, 1},
        {"urlquery", "urlencode", 0, 0},
        {"markdown", "", 0, 0},
        {"html", "", 0, 0},
        {"join", "join", 1, 1},
    };
    return kFunctions;
}

} // namespace dingtalk
