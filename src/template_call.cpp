#include "template_call.hpp"

#include "text.hpp"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <vector>

namespace dingtalk
{

namespace
{

// An argument as written: a Go string ("..." with escapes, or `raw`) or a number.
struct Arg {
    bool quoted = false;
    std::string text;
};

bool hex(char c, int &v)
{
    v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
        : std::isxdigit(static_cast<unsigned char>(c))
            ? std::tolower(static_cast<unsigned char>(c)) - 'a' + 10
            : -1;
    return v >= 0;
}

// A "..." string's escape at s[i] (after the backslash) onto out; false when it is none.
bool unescape(const std::string &s, std::size_t &i, std::string &out)
{
    static const std::string from = "\\\"'ntr", to = "\\\"'\n\t\r";
    if (i < s.size() && from.find(s[i]) != std::string::npos) {
        out += to[from.find(s[i++])];
        return true;
    }
    int hi = 0, lo = 0;
    if (i + 2 < s.size() && s[i] == 'x' && hex(s[i + 1], hi) && hex(s[i + 2], lo)) {
        out += static_cast<char>(hi * 16 + lo);
        i += 3;
        return true;
    }
    return false;
}

// One quoted argument starting at s[i] (its quote); i ends after it.
bool quoted(const std::string &s, std::size_t &i, Arg &arg, std::string &error)
{
    const char q = s[i++];
    while (i < s.size() && s[i] != q) {
        if (q == '"' && s[i] == '\\') {
            ++i;
            if (!unescape(s, i, arg.text)) {
                error = "an unknown escape \\" + s.substr(i, 1) +
                        " in a string (\\\\ \\\" \\n \\t \\r \\xHH; `...` takes none)";
                return false;
            }
        } else {
            arg.text += s[i++];
        }
    }
    if (i == s.size()) {
        error = "a string not closed in \"" + s + "\"";
        return false;
    }
    ++i;
    arg.quoted = true;
    return true;
}

// The arguments after a function's name: strings and numbers, separated by spaces.
bool parse_args(const std::string &s, std::vector<Arg> &args, std::string &error)
{
    for (std::size_t i = 0; i < s.size();) {
        if (s[i] == ' ' || s[i] == '\t') {
            ++i;
            continue;
        }
        Arg arg;
        if (s[i] == '"' || s[i] == '`') {
            if (!quoted(s, i, arg, error)) {
                return false;
            }
        } else {
            while (i < s.size() && s[i] != ' ' && s[i] != '\t') {
                arg.text += s[i++];
            }
        }
        args.push_back(std::move(arg));
    }
    return true;
}

bool number(const Arg &a, std::uint64_t max, std::uint64_t &n)
{
    if (a.quoted || a.text.empty() || a.text.size() > 9 ||
        !std::all_of(a.text.begin(), a.text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return false;
    }
    n = std::stoull(a.text);
    return n <= max;
}

// %XX in a value written in a name: a value's %, a } or spaces at its ends.
bool percent_decoded(const std::string &in, std::string &out)
{
    for (std::size_t i = 0; i < in.size(); ++i) {
        int hi = 0, lo = 0;
        if (in[i] != '%') {
            out += in[i];
        } else if (i + 2 < in.size() && hex(in[i + 1], hi) && hex(in[i + 2], lo)) {
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else {
            return false;
        }
    }
    return true;
}

bool valid_utf8(const std::string &s)
{
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        const std::size_t n = utf8_length(s, i, cp);
        if (n == 0 || cp < 0x20) {
            return false;
        }
        i += n;
    }
    return true;
}

bool starts_with(const std::string &s, const std::string &prefix)
{
    return s.compare(0, prefix.size(), prefix) == 0;
}

// ---------------------------------------------------------------------------------------------
// label_is.NAME.VALUE and the others: NAME a label name, VALUE everything after its dot

const char *const kValueMaps[][2] = {{"label_is", "labels"},
                                     {"annotation_is", "annotations"},
                                     {"group_label_is", "group_labels"},
                                     {"common_label_is", "common_labels"},
                                     {"common_annotation_is", "common_annotations"}};

std::optional<TemplateCall> value_is(const std::string &name, const std::string &map,
                                     std::size_t at, std::string &error)
{
    const std::size_t dot = name.find('.', at);
    const std::string key = name.substr(at, dot == std::string::npos ? dot : dot - at);
    const bool word = !key.empty() && !std::isdigit(static_cast<unsigned char>(key[0])) &&
                      std::all_of(key.begin(), key.end(), [](char c) {
                          return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                      });
    TemplateCall c;
    if (dot == std::string::npos || !word) {
        error = "\"" + name + "\": write " + name.substr(0, at) +
                "NAME.VALUE (a label name, a dot, then the value as it is)";
        return std::nullopt;
    }
    if (!percent_decoded(name.substr(dot + 1), c.value) || !valid_utf8(c.value)) {
        error = "\"" + name + "\": a value's %, } and spaces at its ends are written %25, %7D, " +
                "%20; other % or control characters are not a value";
        return std::nullopt;
    }
    c.kind = TemplateCall::Kind::value_is;
    c.map = map;
    c.key = key;
    return c;
}

// ---------------------------------------------------------------------------------------------
// firing_count_gt.N and the others

const char *const kCounts[] = {"firing_count", "resolved_count", "alert_count", "shown",
                               "omitted",      "more_count",     "index"};

std::optional<TemplateCall> compare(const std::string &name, const std::string &count, bool greater,
                                    std::size_t at, std::string &error)
{
    TemplateCall c;
    if (!number({false, name.substr(at)}, 1000000, c.number)) {
        error = "\"" + name + "\": write " + name.substr(0, at) + "N, N a number up to 1000000";
        return std::nullopt;
    }
    c.kind = TemplateCall::Kind::compare;
    c.count = count;
    c.greater = greater;
    return c;
}

// ---------------------------------------------------------------------------------------------
// starts_at "LAYOUT", ends_at "LAYOUT", now ["LAYOUT"]

std::optional<TemplateCall> time(const std::string &head, const std::vector<Arg> &args,
                                 std::string &error)
{
    TemplateCall c;
    c.kind = TemplateCall::Kind::time;
    c.time = head;
    if (args.size() > 1 || (args.size() == 1 && !args[0].quoted)) {
        error = head + " takes one Go time layout, quoted: {{" + head + " \"2006-01-02 15:04\"}}";
        return std::nullopt;
    }
    if (args.size() == 1 && !(c.layout = GoLayout::parse(args[0].text, error))) {
        return std::nullopt;
    }
    return c;
}

// ---------------------------------------------------------------------------------------------
// the functions

// Cut s to at most max bytes at a UTF-8 boundary, and never in an escape the text had: not after
// a lone backslash, not inside an entity (&amp;).
std::string cut(std::string s, std::size_t max)
{
    if (s.size() <= max) {
        return s;
    }
    std::size_t end = max;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
        --end;
    }
    s.resize(end);
    const std::size_t amp = s.rfind('&');
    if (amp != std::string::npos && s.size() - amp <= 8 && s.find(';', amp) == std::string::npos) {
        s.resize(amp);
    }
    const std::size_t text = s.find_last_not_of('\\');
    const std::size_t slashes = s.size() - (text == std::string::npos ? 0 : text + 1);
    s.resize(s.size() - slashes % 2);
    return s;
}

// Go's strings.Title for ASCII: a letter after anything but a letter, digit or _ goes upper.
std::string title_case(std::string s)
{
    bool after_separator = true;
    for (char &c : s) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (after_separator && std::islower(u)) {
            c = static_cast<char>(std::toupper(u));
        }
        after_separator = u < 0x80 && !std::isalnum(u) && u != '_';
    }
    return s;
}

std::string replace_all(const std::string &s, const std::string &from, const std::string &to)
{
    std::string out;
    std::size_t last = 0;
    for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, last)) {
        out.append(s, last, at - last).append(to);
        last = at + from.size();
        if (out.size() > std::max(s.size(), kMaxFunctionGrowth)) {
            break;
        }
    }
    return out.append(s, last, std::string::npos);
}

// The lines of s that are not blank, joined with sep.
std::string join_lines(const std::string &s, const std::string &sep)
{
    std::string out;
    for (std::size_t line = 0; line < s.size();) {
        const std::size_t eol = std::min(s.find('\n', line), s.size());
        const std::string l = s.substr(line, eol - line);
        if (l.find_first_not_of(" \t\r") != std::string::npos) {
            out += out.empty() ? "" : sep;
            out += l;
        }
        line = eol + 1;
        if (out.size() > std::max(s.size(), kMaxFunctionGrowth)) {
            break;
        }
    }
    return out;
}

// A regular expression replacement: RE2 (linear in the text: no backtracking), with Go's
// replacement syntax ($1, ${1}, ${name}, $name, $$) and Go's ReplaceAllString's way with empty
// matches.
class RegexReplace
{
public:
    static std::shared_ptr<const RegexReplace> make(const std::string &pattern,
                                                    const std::string &repl, std::string &error);
    std::string operator()(const std::string &s) const;

private:
    RegexReplace(const std::string &pattern, const RE2::Options &o) : re_(pattern, o) {}
    bool parse_repl(const std::string &repl, std::string &error);

    RE2 re_;
    std::vector<std::pair<std::string, int>> pieces_; // text, then a group (-1: none)
};

std::shared_ptr<const RegexReplace> RegexReplace::make(const std::string &pattern,
                                                       const std::string &repl, std::string &error)
{
    RE2::Options o;
    o.set_log_errors(false);
    o.set_max_mem(1 << 20);
    std::shared_ptr<RegexReplace> r(new RegexReplace(pattern, o));
    if (pattern.size() > 512 || !r->re_.ok()) {
        error = "regex_replace: " +
                (r->re_.ok() ? std::string("a pattern is 512 bytes at most") : r->re_.error());
        return nullptr;
    }
    return r->parse_repl(repl, error) ? r : nullptr;
}

bool RegexReplace::parse_repl(const std::string &repl, std::string &error)
{
    const auto word = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    };
    pieces_.push_back({"", -1});
    for (std::size_t i = 0; i < repl.size();) {
        const bool braced = i + 1 < repl.size() && repl[i + 1] == '{';
        std::size_t end = i + 1 + (braced ? 1 : 0);
        while (end < repl.size() && word(repl[end])) {
            ++end;
        }
        const std::string name = repl.substr(i + 1 + (braced ? 1 : 0), end - i - 1 - braced);
        if (repl[i] != '$' || (name.empty() && !braced)) { // a $ of nothing is itself, as in Go
            pieces_.back().first += repl[i];
            i += repl.compare(i, 2, "$$") == 0 ? 2 : 1;
            continue;
        }
        int group = -1;
        if (const auto it = re_.NamedCapturingGroups().find(name);
            it != re_.NamedCapturingGroups().end()) {
            group = it->second;
        } else if (!name.empty() && name.size() < 4 &&
                   std::all_of(name.begin(), name.end(), ::isdigit)) {
            group = std::stoi(name);
        }
        if (group < 0 || group > re_.NumberOfCapturingGroups() ||
            (braced && (end >= repl.size() || repl[end] != '}'))) {
            error = "regex_replace: \"" + repl.substr(i, end - i + (braced ? 1 : 0)) +
                    "\" names no group of the pattern (a $ itself is $$; ${1}x is group 1, then x)";
            return false;
        }
        pieces_.push_back({"", group});
        pieces_.push_back({"", -1});
        i = end + (braced ? 1 : 0);
    }
    return true;
}

std::string RegexReplace::operator()(const std::string &s) const
{
    const int n = re_.NumberOfCapturingGroups() + 1;
    std::vector<re2::StringPiece> m(static_cast<std::size_t>(n));
    std::string out;
    std::size_t search = 0, last_end = 0;
    const std::size_t cap = std::max(s.size(), kMaxFunctionGrowth);
    while (search <= s.size() && out.size() <= cap &&
           re_.Match(s, search, s.size(), RE2::UNANCHORED, m.data(), n)) {
        const std::size_t begin = static_cast<std::size_t>(m[0].data() - s.data());
        const std::size_t end = begin + m[0].size();
        out.append(s, last_end, begin - last_end);
        if (end > last_end || begin == 0) { // not an empty match right after another
            for (const auto &[text, group] : pieces_) {
                if (group < 0) {
                    out += text;
                } else {
                    out.append(m[group].data(), m[group].size());
                }
            }
        }
        last_end = end;
        char32_t cp = 0;
        const std::size_t width =
            search < s.size() ? std::max<std::size_t>(1, utf8_length(s, search, cp)) : 1;
        search = search + width > end ? search + width : end;
    }
    return out.append(s, last_end, std::string::npos);
}

std::optional<TemplateCall> function(const std::string &head, const std::vector<Arg> &a,
                                     std::string &error)
{
    static const std::map<std::string, std::pair<std::string, const char *>> kArity = {
        {"title_case", {"", "{{#title_case}}...{{/title_case}}"}},
        {"trunc", {"n", "{{#trunc 20}}...{{/trunc}} (at most 20 bytes)"}},
        {"replace", {"ss", "{{#replace \"_\" \" \"}}...{{/replace}}"}},
        {"default", {"s", "{{#default \"-\"}}...{{/default}}"}},
        {"join", {"s", "{{#join \", \"}}...{{/join}} (its lines, joined)"}},
        {"regex_replace", {"ss", "{{#regex_replace \":[0-9]+$\" \"\"}}...{{/regex_replace}}"}},
    };
    const auto &[kinds, usage] = kArity.at(head);
    bool fits = a.size() == kinds.size();
    for (std::size_t i = 0; fits && i < a.size(); ++i) {
        fits = (kinds[i] == 's') == a[i].quoted && a[i].text.size() <= 512;
    }
    std::uint64_t n = 0;
    if (!fits || (head == "trunc" && !number(a[0], 65536, n)) ||
        (head == "replace" && a[0].text.empty())) {
        error = head + " is written " + std::string(usage);
        return std::nullopt;
    }
    TemplateCall c;
    c.kind = TemplateCall::Kind::function;
    if (head == "title_case") {
        c.apply = title_case;
    } else if (head == "trunc") {
        c.apply = [n](const std::string &s) { return cut(s, n); };
    } else if (head == "replace") {
        c.apply = [from = a[0].text, to = a[1].text](const std::string &s) {
            return replace_all(s, from, to);
        };
    } else if (head == "default") {
        c.apply = [d = a[0].text](const std::string &s) {
            return s.find_first_not_of(" \t\r\n") == std::string::npos ? d : s;
        };
    } else if (head == "join") {
        c.apply = [sep = a[0].text](const std::string &s) { return join_lines(s, sep); };
    } else if (const auto re = RegexReplace::make(a[0].text, a[1].text, error)) {
        c.apply = [re](const std::string &s) { return (*re)(s); };
    } else {
        return std::nullopt;
    }
    const auto apply = c.apply;
    c.apply = [apply](const std::string &s) {
        return cut(apply(s), std::max(s.size(), kMaxFunctionGrowth));
    };
    return c;
}

bool is_function(const std::string &head)
{
    for (const char *f : {"title_case", "trunc", "replace", "default", "join", "regex_replace"}) {
        if (head == f) {
            return true;
        }
    }
    return false;
}

// What kind of tag each kind of call is written in.
bool tag_fits(const TemplateCall &c, const std::string &head, char tag, std::string &error)
{
    const bool section = tag == '#' || tag == '^';
    if (c.kind == TemplateCall::Kind::time && section) {
        error = "{{" + head + " ...}} is a value, not a section";
        return false;
    }
    if (c.kind == TemplateCall::Kind::function && tag != '#') {
        error = head + " is a function: {{#" + head + " ...}}...{{/" + head + "}}";
        return false;
    }
    if ((c.kind == TemplateCall::Kind::value_is || c.kind == TemplateCall::Kind::compare) &&
        !section) {
        error = head + " is a condition: {{#" + head + "...}}...{{/" + head + "...}} (or {{^...}})";
        return false;
    }
    return true;
}

std::optional<TemplateCall> parse_named(const std::string &name, const std::string &head,
                                        std::string &error)
{
    for (const auto &vm : kValueMaps) {
        if (starts_with(name, std::string(vm[0]) + ".")) {
            return value_is(name, vm[1], std::strlen(vm[0]) + 1, error);
        }
    }
    for (const char *count : kCounts) {
        for (const char *op : {"_gt.", "_lt."}) {
            if (starts_with(name, std::string(count) + op)) {
                return compare(name, count, op[1] == 'g', std::strlen(count) + 4, error);
            }
        }
    }
    std::vector<Arg> args;
    const bool called =
        head.size() < name.size() && (name[head.size()] == ' ' || name[head.size()] == '\t');
    if ((head == "now" || ((head == "starts_at" || head == "ends_at") && called)) &&
        parse_args(name.substr(head.size()), args, error)) {
        return time(head, args, error);
    }
    if (is_function(head) && parse_args(name.substr(head.size()), args, error)) {
        return function(head, args, error);
    }
    return std::nullopt;
}

} // namespace

std::string call_head(const std::string &name)
{
    const std::string head = name.substr(0, std::min(name.find(' '), name.find('\t')));
    return is_function(head) ? head : name;
}

std::optional<TemplateCall> parse_call(const std::string &name, char tag, std::string &error)
{
    const std::string head = name.substr(0, std::min(name.find(' '), name.find('\t')));
    std::optional<TemplateCall> c = parse_named(name, head, error);
    if (c && !tag_fits(*c, head.substr(0, head.find('.')), tag, error)) {
        return std::nullopt;
    }
    return c;
}

} // namespace dingtalk
