#include "go_convert.hpp"

#include "go_hint.hpp"
#include "timezone.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <utility>

namespace dingtalk
{

namespace
{

constexpr std::size_t npos = std::string::npos;
constexpr int kMaxDepth = 8;              // templates calling templates, as our blocks
constexpr int kMaxNesting = 64;           // if/range/with in each other, parentheses in each other
constexpr std::size_t kMaxInlined = 1000; // template calls written out in the title
// Go's time.String(): what {{ .StartsAt }} prints
const char *const kGoTimeString = "\"2006-01-02 15:04:05.999999999 -0700 MST\"";

bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string trimmed(std::string s)
{
    s.erase(0, std::min(s.size(), s.find_first_not_of(" \t\r\n")));
    s.erase(s.find_last_not_of(" \t\r\n") + 1);
    return s;
}

bool starts_with(const std::string &s, const std::string &p)
{
    return s.compare(0, p.size(), p) == 0;
}

bool ends_with(const std::string &s, const std::string &p)
{
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// ---------------------------------------------------------------------------------------------
// the file as Go's lexer sees it: text, and actions with their trim markers applied

struct Piece {
    bool action = false;
    std::string text;  // the text, or the action without its delimiters and trim markers
    std::string where; // "FILE line N"
};

// Where the action whose text starts at `from` ends (its "}}"), past quoted strings.
std::size_t action_end(const std::string &s, std::size_t from)
{
    for (std::size_t i = from; i + 1 < s.size(); ++i) {
        const char c = s[i];
        if (c == '"' || c == '\'') {
            for (++i; i < s.size() && s[i] != c; ++i) {
                i += s[i] == '\\' ? 1 : 0;
            }
        } else if (c == '`') {
            i = s.find('`', i + 1);
            if (i == npos) {
                return npos;
            }
        } else if (c == '}' && s[i + 1] == '}') {
            return i;
        }
    }
    return npos;
}

// A comment's end ("*/", then "}}" or " -}}"), from the "/*" at `from`.
std::size_t comment_end(const std::string &s, std::size_t from, bool &trim)
{
    const std::size_t star = s.find("*/", from + 2);
    if (star == npos) {
        return npos;
    }
    trim = s.compare(star + 2, 4, " -}}") == 0;
    const std::size_t close = star + (trim ? 4 : 2);
    return s.compare(close, 2, "}}") == 0 ? close : npos;
}

class Lexer
{
public:
    explicit Lexer(const GoFile &f) : f_(f) {}

    // The pieces; false (and `error`) when an action is not closed.
    bool run(std::vector<Piece> &out, std::string &error)
    {
        const std::string &s = f_.text;
        bool trim_next = false;
        for (std::size_t pos = 0;;) {
            const std::size_t open = s.find("{{", pos);
            std::string text = s.substr(pos, open == npos ? npos : open - pos);
            std::size_t a = open + 2;
            const bool trim_left =
                open != npos && a + 1 < s.size() && s[a] == '-' && space(s[a + 1]);
            if (trim_next) {
                text.erase(0, std::min(text.size(), text.find_first_not_of(" \t\r\n")));
            }
            if (trim_left) {
                text.erase(text.find_last_not_of(" \t\r\n") + 1);
                a += 2;
            }
            if (!text.empty()) {
                out.push_back({false, text, where(pos)});
            }
            if (open == npos) {
                return true;
            }
            while (a < s.size() && space(s[a])) {
                ++a;
            }
            const bool comment = s.compare(a, 2, "/*") == 0;
            bool trim_right = false;
            const std::size_t close = comment ? comment_end(s, a, trim_right) : action_end(s, a);
            if (close == npos) {
                error = where(open) + ": an action (\"{{\") is not closed";
                return false;
            }
            std::string inner = s.substr(a, close - a);
            if (!comment) {
                trim_right = inner.size() >= 2 && inner.back() == '-' && space(inner.end()[-2]);
                inner = trimmed(trim_right ? inner.substr(0, inner.size() - 1) : inner);
                out.push_back({true, inner, where(open)});
            }
            pos = close + 2;
            trim_next = trim_right;
        }
    }

private:
    std::string where(std::size_t pos)
    {
        line_ += static_cast<std::size_t>(
            std::count(f_.text.begin() + counted_, f_.text.begin() + pos, '\n'));
        counted_ = pos;
        return f_.name + " line " + std::to_string(line_);
    }

    const GoFile &f_;
    std::size_t line_ = 1, counted_ = 0;
};

// ---------------------------------------------------------------------------------------------
// an action's pipeline: `.Labels.x | toUpper`, `index .Labels "x"`, `gt (len .Alerts) 3`

// The action's tokens: strings whole with their quotes, ( ) | , := = alone, the rest by spaces.
std::vector<std::string> tokens_of(const std::string &s)
{
    std::vector<std::string> t;
    for (std::size_t i = 0; i < s.size();) {
        const char c = s[i];
        if (space(c)) {
            ++i;
        } else if (c == '(' || c == ')' || c == '|' || c == ',' || c == '=') {
            t.emplace_back(1, c);
            ++i;
        } else if (c == ':' && i + 1 < s.size() && s[i + 1] == '=') {
            t.emplace_back(":=");
            i += 2;
        } else if (c == '"' || c == '\'' || c == '`') {
            std::size_t end = i + 1;
            while (end < s.size() && s[end] != c) {
                end += s[end] == '\\' && c != '`' ? 2 : 1;
            }
            t.push_back(s.substr(i, std::min(end + 1, s.size()) - i));
            i = end + 1;
        } else {
            std::size_t end = i;
            while (end < s.size() && !space(s[end]) &&
                   std::string("()|,=\"'`").find(s[end]) == npos) {
                ++end;
            }
            t.push_back(s.substr(i, end - i));
            i = end;
        }
    }
    return t;
}

struct Expr {
    enum class Kind { bad, field, str, num, call } kind = Kind::bad;
    std::string base;       // field: "" (the dot), "$", "$name"
    std::string s;          // field: ".A.B" ("" for the dot itself); str: as written; call: name
    std::vector<Expr> args; // call: its arguments; field: a method's (.StartsAt.Format "L")
    bool paren = false;
};

class ExprParser
{
public:
    explicit ExprParser(std::vector<std::string> t) : t_(std::move(t)) {}

    // The whole pipeline; kind bad when it is not one.
    Expr parse()
    {
        Expr e = pipeline();
        return ok_ && i_ == t_.size() ? e : Expr{};
    }

private:
    Expr pipeline()
    {
        Expr e = command();
        while (ok_ && i_ < t_.size() && t_[i_] == "|") {
            ++i_;
            Expr next = command();
            ok_ = ok_ && (next.kind == Expr::Kind::call || next.kind == Expr::Kind::field) &&
                  !next.paren;
            next.args.push_back(std::move(e));
            e = std::move(next);
        }
        return e;
    }

    Expr command()
    {
        std::vector<Expr> ops;
        while (ok_ && i_ < t_.size() && t_[i_] != "|" && t_[i_] != ")") {
            ops.push_back(operand());
        }
        if (ops.empty()) {
            ok_ = false;
            return {};
        }
        Expr head = std::move(ops[0]);
        const bool callable = (head.kind == Expr::Kind::call || head.kind == Expr::Kind::field) &&
                              !head.paren && head.args.empty();
        ok_ = ok_ && (ops.size() == 1 || callable);
        head.args.insert(head.args.end(), ops.begin() + 1, ops.end());
        return head;
    }

    Expr operand()
    {
        const std::string &w = t_[i_++];
        Expr e;
        if (w == "(" && ++depth_ <= kMaxNesting) {
            e = pipeline();
            ok_ = ok_ && i_ < t_.size() && t_[i_] == ")";
            ++i_;
            --depth_;
            e.paren = true;
        } else if (w == "(") {
            ok_ = false;
        } else if (w[0] == '"' || w[0] == '`' || w[0] == '\'') {
            e.kind = Expr::Kind::str;
            e.s = w;
        } else if (std::isdigit(static_cast<unsigned char>(w[0])) || w[0] == '-') {
            e.kind = Expr::Kind::num;
            e.s = w;
        } else if (w[0] == '.' || w[0] == '$') {
            e.kind = Expr::Kind::field;
            const std::size_t dot = w[0] == '$' ? w.find('.') : 0;
            e.base = w.substr(0, dot == npos ? w.size() : dot);
            e.s = dot == npos || w == "." ? "" : w.substr(dot);
        } else if (std::isalpha(static_cast<unsigned char>(w[0]))) {
            e.kind = Expr::Kind::call;
            e.s = w;
        } else {
            ok_ = false;
        }
        return e;
    }

    std::vector<std::string> t_;
    std::size_t i_ = 0;
    int depth_ = 0;
    bool ok_ = true;
};

// A Go string literal's value ("a\"b" -> a"b, `raw` -> raw).
std::string unquoted(const std::string &s)
{
    if (s.size() < 2) {
        return s;
    }
    std::string out;
    for (std::size_t i = 1; i + 1 < s.size(); ++i) {
        if (s[0] == '"' && s[i] == '\\' && i + 2 < s.size()) {
            const char e = s[++i];
            out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
        } else {
            out += s[i];
        }
    }
    return out;
}

// ---------------------------------------------------------------------------------------------
// the template as a tree: text, values printed, if/with/range with their else, template calls

struct Node {
    enum class Kind { text, print, if_, with, range, call } kind = Kind::text;
    std::string text;  // the text, or the action as written
    std::string where; // "FILE line N"
    Expr expr;         // print, if, with, range: the pipeline; call: the argument, if any
    std::vector<std::string> vars; // range $i, $a := ...
    std::string name;              // call: the template's name
    std::vector<Node> body, other; // other: the else branch
};

using Defines = std::map<std::string, std::vector<Node>>;

class TreeParser
{
public:
    TreeParser(const std::vector<Piece> &pieces, Defines &defines,
               std::vector<std::string> &problems)
        : p_(pieces), defines_(defines), problems_(problems)
    {
    }

    // The top level of the file (outside every define).
    std::vector<Node> run()
    {
        std::vector<Node> top;
        const Piece *stop = list(top);
        if (stop != nullptr) {
            problems_.push_back(stop->where + ": `" + stop->text + "` closes nothing");
        }
        return top;
    }

private:
    // Nodes up to an {{end}} or {{else ...}} (returned), or the end of the file (null).
    const Piece *list(std::vector<Node> &out)
    {
        if (depth_ == kMaxNesting) { // the rest of the file is left out: bounded recursion
            problems_.push_back(p_[i_ - 1].where + ": `" + p_[i_ - 1].text +
                                "`: actions nested over 64 deep");
            i_ = p_.size();
            return nullptr;
        }
        ++depth_;
        const Piece *stop = nullptr;
        while (stop == nullptr && i_ < p_.size()) {
            const Piece &piece = p_[i_++];
            const std::vector<std::string> t =
                piece.action ? tokens_of(piece.text) : std::vector<std::string>();
            if (!piece.action) {
                out.push_back({Node::Kind::text, piece.text, piece.where, {}, {}, {}, {}, {}});
            } else if (t.empty() || t[0] == "end" || t[0] == "else") {
                stop = &piece;
            } else {
                action(piece, t, out);
            }
        }
        --depth_;
        return stop;
    }

    void action(const Piece &piece, const std::vector<std::string> &t, std::vector<Node> &out)
    {
        const std::string &k = t[0];
        if ((k == "define" || k == "block") && t.size() >= 2) {
            std::vector<Node> body;
            closed(piece.where, list(body), false);
            defines_[unquoted(t[1])] = std::move(body);
            if (k == "define") {
                return;
            }
        }
        Node n{Node::Kind::print, piece.text, piece.where, {}, {}, {}, {}, {}};
        std::vector<std::string> rest(t.begin() + 1, t.end());
        if (k == "template" || k == "block") {
            n.kind = Node::Kind::call;
            n.name = t.size() >= 2 ? unquoted(t[1]) : "";
            rest.assign(t.begin() + std::min<std::size_t>(2, t.size()), t.end());
        } else if (k == "if" || k == "with" || k == "range") {
            branch(n, k, rest);
            out.push_back(std::move(n));
            return;
        } else {
            rest = t;
        }
        n.expr = rest.empty() ? Expr{} : ExprParser(declared(n, rest)).parse();
        out.push_back(std::move(n));
    }

    // if/with/range: the pipeline, the body, and the else (an {{else if}} is an if in it).
    void branch(Node &n, const std::string &k, std::vector<std::string> rest)
    {
        n.kind = k == "if" ? Node::Kind::if_ : k == "with" ? Node::Kind::with : Node::Kind::range;
        n.expr = ExprParser(declared(n, std::move(rest))).parse();
        const Piece *stop = list(n.body);
        if (stop != nullptr && starts_with(stop->text, "else")) {
            const std::vector<std::string> t = tokens_of(stop->text);
            if (t.size() > 1) {
                Node inner{Node::Kind::if_, stop->text.substr(5), stop->where, {}, {}, {}, {}, {}};
                branch(inner, t[1], std::vector<std::string>(t.begin() + 2, t.end()));
                n.other.push_back(std::move(inner));
                return;
            }
            stop = list(n.other);
        }
        closed(n.where, stop, true);
    }

    // range $i, $a := PIPELINE: the variables into n.vars, the pipeline returned.
    static std::vector<std::string> declared(Node &n, std::vector<std::string> t)
    {
        const auto decl = std::find_if(t.begin(), t.end(),
                                       [](const std::string &w) { return w == ":=" || w == "="; });
        if (decl == t.end()) {
            return t;
        }
        for (auto v = t.begin(); v != decl; ++v) {
            if (*v != ",") {
                n.vars.push_back(*v);
            }
        }
        return std::vector<std::string>(decl + 1, t.end());
    }

    // An if/with/range/define (`any`: else too) closed by `stop`; a problem when not.
    void closed(const std::string &where, const Piece *stop, bool any)
    {
        if (stop == nullptr || (!any && stop->text != "end")) {
            problems_.push_back((stop ? stop->where : where) + ": `" + (stop ? stop->text : "end") +
                                "`: an action is not closed by end");
        }
    }

    const std::vector<Piece> &p_;
    std::size_t i_ = 0;
    int depth_ = 0;
    Defines &defines_;
    std::vector<std::string> &problems_;
};

// ---------------------------------------------------------------------------------------------
// what a Go value is, in our names

enum class Dot { nil, root, list, alert, pair, value, other };

struct Ref {
    enum class Kind {
        none,
        root,
        list,
        alert,
        pair,
        scalar,
        map,
        values,
        time,
        count,
        index,
        mentions
    };
    Kind kind = Kind::none;
    std::string name;   // ours: labels.x, firing, labels (a map), starts_at, firing_count
    std::string layout; // time: as written ("2006-01-02"); "" for time.String()
    std::string
        zone; // time: TimeZone::kAsSent (.Format), "Local" (.Local.Format, sprig date) or a name
    bool group = false; // scalar: the notification's (its status), not an alert's
};

struct Ctx {
    Dot dot = Dot::root;
    std::string name;                // list, alert: alerts|firing|resolved; value: its name
    std::map<std::string, Ref> vars; // $a: the alert, $i: its index, $k/$v: name and value
    bool in_alert = false;           // inside an alert (the group's status is not {{status}})
    Dot dollar = Dot::root;          // what $ is: the dot the template was called with
    std::string dollar_name;
};

const std::pair<const char *, const char *> kMapNames[] = {
    {"labels", "label"},
    {"annotations", "annotation"},
    {"common_labels", "common_label"},
    {"group_labels", "group_label"},
    {"common_annotations", "common_annotation"}};

// labels -> label (label_is, label_list)
std::string singular(const std::string &map)
{
    for (const auto &[plural, one] : kMapNames) {
        if (map == plural) {
            return one;
        }
    }
    return "";
}

// A chain of fields from the notification or an alert, through go_hint's table.
Ref from_table(const std::string &chain)
{
    Ref r;
    if (chain == ".AtMobiles") {
        r.kind = Ref::Kind::mentions;
        return r;
    }
    for (const char *suffix : {".Values", ".Names"}) {
        if (ends_with(chain, suffix) && chain != suffix) {
            Ref m = from_table(chain.substr(0, chain.size() - std::string(suffix).size()));
            m.kind =
                m.kind == Ref::Kind::map && suffix[1] == 'V' ? Ref::Kind::values : Ref::Kind::none;
            return m;
        }
    }
    std::string ours = go_field(chain);
    const std::string as_map = go_field(chain + ".x");
    if (ours.empty() && ends_with(as_map, ".x") && as_map.find('.') == as_map.size() - 2) {
        r.kind = Ref::Kind::map;
        r.name = as_map.substr(0, as_map.size() - 2);
    } else if (ends_with(ours, "_list")) { // .Labels.SortedPairs: its map, ranged in pairs
        r.kind = Ref::Kind::map;
        r.name = ours.substr(0, ours.size() - 5) + "s";
    } else if (ours == "alerts" || ours == "firing" || ours == "resolved") {
        r.kind = Ref::Kind::list;
        r.name = ours;
    } else if (ours == "starts_at" || ours == "ends_at") {
        r.kind = Ref::Kind::time;
        r.name = ours;
        r.zone = chain.find(".Local") != npos ? "Local" : std::string(TimeZone::kAsSent);
        r.layout = ends_with(chain, ".Format") ? "?" : ""; // "?": the method's argument
    } else if (!ours.empty()) {
        r.kind = Ref::Kind::scalar;
        r.name = ours;
        r.group = ours == "status";
    }
    return r;
}

Ref of_dot(Dot dot, const std::string &name)
{
    Ref r;
    r.name = name;
    r.kind = dot == Dot::root    ? Ref::Kind::root
             : dot == Dot::list  ? Ref::Kind::list
             : dot == Dot::alert ? Ref::Kind::alert
             : dot == Dot::pair  ? Ref::Kind::pair
             : dot == Dot::value ? Ref::Kind::scalar
             : dot == Dot::other ? Ref::Kind::map
                                 : Ref::Kind::none;
    return r;
}

// `chain` (".Labels.x") from `start`.
Ref follow(const Ref &start, const std::string &chain)
{
    if (chain.empty()) {
        return start;
    }
    Ref r;
    switch (start.kind) {
    case Ref::Kind::root:
    case Ref::Kind::alert: {
        r = from_table(chain);
        r.group = r.group && start.kind == Ref::Kind::root;
        return r;
    }
    case Ref::Kind::list:
        return start.name == "alerts" ? from_table(".Alerts" + chain) : r;
    case Ref::Kind::pair:
        r.kind = chain == ".Name" || chain == ".Value" ? Ref::Kind::scalar : Ref::Kind::none;
        r.name = chain == ".Name" ? "name" : "value";
        return r;
    case Ref::Kind::map:
        r = start;
        r.kind = chain == ".Values" || chain == ".SortedPairs.Values" ? Ref::Kind::values
                                                                      : Ref::Kind::none;
        return r;
    default:
        return r;
    }
}

// The label-name part of a name (labels.x): letters, digits and _.
bool label_name(const std::string &s)
{
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

// A value as it is written in label_is.NAME.VALUE: %, } and spaces at the ends as %XX.
bool is_value(const std::string &v, std::string &out)
{
    static const char *const hex = "0123456789ABCDEF";
    for (std::size_t i = 0; i < v.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(v[i]);
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
        if (c == '%' || c == '}' || (c == ' ' && (i == 0 || i + 1 == v.size()))) {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return true;
}

struct Sec {
    std::string name;
    bool inverted = false;
};

// ---------------------------------------------------------------------------------------------
// the conversion

class Converter
{
public:
    Converter(const Defines &defines, GoConversion &out) : defines_(defines), out_(out) {}

    std::string nodes(const std::vector<Node> &ns, const Ctx &c)
    {
        std::string s;
        for (const Node &n : ns) {
            s += node(n, c);
        }
        return s;
    }

    // Every template call expanded in place (the title has no blocks).
    void set_inline(bool on) { inline_ = on; }

    const std::vector<std::pair<std::string, std::string>> &blocks() const { return blocks_; }
    const std::string &zone() const { return zone_; }
    const std::string &layout() const { return layout_; }
    bool mentions() const { return mentions_; }

private:
    std::string node(const Node &n, const Ctx &c)
    {
        std::string why;
        std::string s;
        switch (n.kind) {
        case Node::Kind::text:
            return n.text;
        case Node::Kind::print:
            s = n.vars.empty() ? print(n.expr, c, why) : "";
            why = n.vars.empty() ? why : "no variables: name the value where it is used";
            break;
        case Node::Kind::if_:
        case Node::Kind::with:
            s = conditional(n, c, why);
            break;
        case Node::Kind::range:
            s = range(n, c, why);
            break;
        case Node::Kind::call:
            s = call(n, c, why);
            break;
        }
        if (!why.empty()) {
            problem(n, why);
        }
        return s;
    }

    void problem(const Node &n, const std::string &why)
    {
        const std::string action = n.text.size() > 60 ? n.text.substr(0, 57) + "..." : n.text;
        out_.problems.push_back(n.where + ": `" + action + "`: " + why);
    }

    // What an expression names: a field, a variable, index/len, a time's Format.
    Ref ref(const Expr &e, const Ctx &c)
    {
        if (e.kind == Expr::Kind::field && e.args.empty()) {
            return field(e, c);
        }
        if (e.kind == Expr::Kind::field) { // a method: .StartsAt.Format "L"
            Ref t = field(e, c);
            const bool format = t.kind == Ref::Kind::time && t.layout == "?" &&
                                e.args.size() == 1 && e.args[0].kind == Expr::Kind::str;
            t.layout = format ? e.args[0].s : "";
            const bool others = ends_with(e.s, "CommonLabels.Remove") && e.args.size() == 1 &&
                                ends_with(e.args[0].s, "GroupLabels.Names");
            return format ? t : others ? other_common() : Ref{};
        }
        return e.kind == Expr::Kind::call ? call_ref(e, c) : Ref{};
    }

    static Ref other_common()
    {
        Ref r;
        r.kind = Ref::Kind::map;
        r.name = "other_common_labels";
        return r;
    }

    Ref field(const Expr &e, const Ctx &c)
    {
        if (e.base.empty()) {
            return follow(of_dot(c.dot, c.name), e.s);
        }
        if (e.base == "$") {
            return follow(of_dot(c.dollar, c.dollar_name), e.s);
        }
        const auto v = c.vars.find(e.base);
        return v == c.vars.end() ? Ref{} : follow(v->second, e.s);
    }

    Ref call_ref(const Expr &e, const Ctx &c)
    {
        Ref r;
        const auto &a = e.args;
        if (e.s == "len" && a.size() == 1) {
            const Ref l = ref(a[0], c);
            r.kind = l.kind == Ref::Kind::list || l.kind == Ref::Kind::map ? Ref::Kind::count
                                                                           : Ref::Kind::none;
            r.name = l.kind == Ref::Kind::map ? "len " + l.name
                     : l.name == "alerts"     ? "alert_count"
                                              : l.name + "_count";
        } else if (e.s == "index" && a.size() == 2 && a[1].kind == Expr::Kind::str) {
            const Ref m = ref(a[0], c);
            const std::string key = unquoted(a[1].s);
            if (m.kind == Ref::Kind::map && label_name(key) && !singular(m.name).empty()) {
                r.kind = Ref::Kind::scalar;
                r.name = m.name + "." + key;
            }
        } else if ((e.s == "date" || e.s == "dateInZone") && a.size() >= 2 &&
                   a[0].kind == Expr::Kind::str) {
            r = ref(a[1], c);
            const bool zoned = e.s == "dateInZone" && a.size() == 3;
            r.zone = zoned ? unquoted(a[2].s) : "Local";
            r.layout = a[0].s;
            r.kind =
                r.kind == Ref::Kind::time && (a.size() == 2 || zoned) ? r.kind : Ref::Kind::none;
        } else if (e.s == "now.Format" && a.size() == 1 && a[0].kind == Expr::Kind::str) {
            r.kind = Ref::Kind::time; // Go chains a function's result: now.Format "LAYOUT"
            r.name = "now";
            r.zone = "Local";
            r.layout = a[0].s;
        } else if (e.s == "now" && a.empty()) {
            r.kind = Ref::Kind::time;
            r.name = "now";
            r.zone = "Local";
        }
        return r;
    }

    // A value printed.
    std::string print(const Expr &e, const Ctx &c, std::string &why)
    {
        if (e.kind == Expr::Kind::str && unquoted(e.s).find("{{") == npos) {
            return unquoted(e.s);
        }
        if (e.kind == Expr::Kind::num) {
            return e.s;
        }
        if (e.kind == Expr::Kind::call) {
            for (const GoFunction &f : go_functions()) {
                if (e.s == f.go) {
                    return function(f, e, c, why);
                }
            }
        }
        const Ref r = ref(e, c);
        switch (r.kind) {
        case Ref::Kind::scalar:
            why = r.group && c.in_alert ? "the group's status inside an alert: use has_firing" : "";
            return why.empty() ? "{{" + r.name + "}}" : "";
        case Ref::Kind::count:
            why = starts_with(r.name, "len ") ? "the number of labels: no such name" : "";
            return why.empty() ? "{{" + r.name + "}}" : "";
        case Ref::Kind::time:
            return time(r, why);
        case Ref::Kind::mentions:
            mentions_ = true;
            return "{{mentions}}";
        case Ref::Kind::index:
            why = "Go counts from 0, {{index}} from 1";
            return "";
        default:
            why = unknown(e);
            return "";
        }
    }

    static std::string unknown(const Expr &e)
    {
        if (e.kind == Expr::Kind::bad) {
            return "not a pipeline this converter reads";
        }
        if (e.kind == Expr::Kind::call) {
            return "`" + e.s + "` is no function the template language has";
        }
        if (!e.base.empty() && e.base != "$") {
            return "no variables: name the value where it is used";
        }
        return "`" + e.base + e.s + "` names nothing the template language has here";
    }

    std::string time(const Ref &r, std::string &why)
    {
        const std::string layout = r.layout.empty() ? kGoTimeString : r.layout;
        if (r.layout == "?") {
            why = "a time's Format takes one layout";
            return "";
        }
        if (!zone_.empty() && zone_ != r.zone) {
            why = "times in two time zones (" + zone_ + ", " + r.zone +
                  "): dingtalk_timezone sets one";
        }
        zone_ = r.zone;
        layout_ = layout_.empty() ? layout : layout_;
        return "{{" + r.name + " " + layout + "}}";
    }

    // toUpper .Labels.x -> {{#upper}}{{labels.x}}{{/upper}}, and the like.
    std::string function(const GoFunction &f, const Expr &e, const Ctx &c, std::string &why)
    {
        if (e.args.size() != f.args + 1) {
            why = "`" + e.s + "` takes " + std::to_string(f.args + 1) + " arguments";
            return "";
        }
        std::string args;
        for (std::size_t i = 0; i < e.args.size(); ++i) {
            const Expr &a = e.args[i];
            if (i != f.value_at && a.kind != Expr::Kind::str && a.kind != Expr::Kind::num) {
                why = "`" + e.s + "` with an argument that is not a string or a number";
                return "";
            }
            args += i != f.value_at ? " " + a.s : "";
        }
        const Expr &value = e.args[f.value_at];
        if (std::string(f.ours) == "join") {
            return join(args, ref(value, c), why);
        }
        const std::string inner = print(value, c, why);
        if (inner.empty() || std::string(f.ours).empty()) {
            return inner;
        }
        const std::size_t dot = inner.find('.');
        if (std::string(f.ours) == "urlencode" && dot != npos && starts_with(inner, "{{") &&
            !singular(inner.substr(2, dot - 2)).empty()) {
            return inner.substr(0, dot) + "_url" + inner.substr(dot); // {{labels_url.x}}
        }
        return std::string("{{#") + f.ours + args + "}}" + inner + "{{/" + f.ours + "}}";
    }

    static std::string join(const std::string &sep, const Ref &r, std::string &why)
    {
        if (r.kind == Ref::Kind::values && sep == " \" \"" && r.name == "group_labels") {
            return "{{group_label_values}}";
        }
        if (r.kind == Ref::Kind::values && sep == " \" \"" && r.name == "other_common_labels") {
            return "{{other_common_label_values}}";
        }
        if (r.kind != Ref::Kind::values || singular(r.name).empty()) {
            why = "join of something other than a map's values";
            return "";
        }
        const std::string list = singular(r.name) + "_list";
        return "{{#join" + sep + "}}{{#" + list + "}}{{value}}\n{{/" + list + "}}{{/join}}";
    }

    // if/with CONDITION: the sections that are the same condition; false (and why) when none.
    bool condition(const Expr &e, const Ctx &c, std::vector<Sec> &out, std::string &why)
    {
        if (e.kind == Expr::Kind::call && e.s == "and") {
            for (const Expr &a : e.args) {
                if (!condition(a, c, out, why)) {
                    return false;
                }
            }
            return !e.args.empty();
        }
        if (e.kind == Expr::Kind::call && e.s == "not" && e.args.size() == 1) {
            std::vector<Sec> inner;
            if (!condition(e.args[0], c, inner, why) || inner.size() != 1) {
                why = why.empty() ? "`not` of several conditions" : why;
                return false;
            }
            out.push_back({inner[0].name, !inner[0].inverted});
            return true;
        }
        if (e.kind == Expr::Kind::call && (e.s == "eq" || e.s == "ne")) {
            return compare(e, c, out, why);
        }
        if (e.kind == Expr::Kind::call &&
            (e.s == "gt" || e.s == "lt" || e.s == "ge" || e.s == "le")) {
            return count(e, c, out, why);
        }
        return truth(e, c, out, why);
    }

    // if VALUE: true when it is not empty.
    bool truth(const Expr &e, const Ctx &c, std::vector<Sec> &out, std::string &why)
    {
        const Ref r = ref(e, c);
        std::string name = r.kind == Ref::Kind::scalar || r.kind == Ref::Kind::count ? r.name : "";
        if (r.kind == Ref::Kind::list) {
            name = r.name == "alerts" ? "alert_count" : "has_" + r.name;
        } else if (r.kind == Ref::Kind::map && r.name == "other_common_labels") {
            name = "has_other_common_labels";
        }
        if (name.empty() || starts_with(name, "len ") || (r.group && c.in_alert)) {
            why = e.kind == Expr::Kind::call && e.s == "or"
                      ? "`or`: write a section for each, or the condition the other way"
                      : unknown(e);
            return false;
        }
        out.push_back({name, false});
        return true;
    }

    // eq/ne VALUE "text"
    bool compare(const Expr &e, const Ctx &c, std::vector<Sec> &out, std::string &why)
    {
        const bool ne = e.s == "ne";
        const bool first_is_text = !e.args.empty() && e.args[0].kind == Expr::Kind::str;
        if (e.args.size() != 2 || e.args[first_is_text ? 0 : 1].kind != Expr::Kind::str) {
            why = "`" + e.s + "` of two values but one a string: no section says it";
            return false;
        }
        const std::string text = unquoted(e.args[first_is_text ? 0 : 1].s);
        const Ref r = ref(e.args[first_is_text ? 1 : 0], c);
        std::string value;
        if (r.kind == Ref::Kind::scalar && r.name == "status" &&
            (text == "firing" || text == "resolved")) {
            const bool group = r.group && !c.in_alert;
            out.push_back({group ? "has_firing" : text, ne != (group && text == "resolved")});
            return true;
        }
        const std::size_t dot = r.name.find('.');
        if (r.kind == Ref::Kind::scalar && dot != npos && is_value(text, value)) {
            out.push_back(
                {singular(r.name.substr(0, dot)) + "_is" + r.name.substr(dot) + "." + value, ne});
            return !singular(r.name.substr(0, dot)).empty();
        }
        if (r.kind == Ref::Kind::scalar && r.name == "name" && c.dot == Dot::pair &&
            label_name(text)) {
            out.push_back({"name_is." + text, ne});
            return true;
        }
        why = "compares what no section compares (labels, annotations, .Status, a pair's .Name)";
        return false;
    }

    // gt/lt/ge/le COUNT N
    bool count(const Expr &e, const Ctx &c, std::vector<Sec> &out, std::string &why)
    {
        const Ref a = e.args.size() == 2 ? ref(e.args[0], c) : Ref{};
        const Ref b = e.args.size() == 2 ? ref(e.args[1], c) : Ref{};
        if (e.s == "gt" && a.name == "len common_labels" && b.name == "len group_labels") {
            out.push_back({"has_other_common_labels", false});
            return true;
        }
        const Expr *n = e.args.size() == 2 ? &e.args[1] : nullptr;
        const bool number = n != nullptr && n->kind == Expr::Kind::num &&
                            std::all_of(n->s.begin(), n->s.end(), ::isdigit) && n->s.size() < 7;
        const bool index = a.kind == Ref::Kind::index && a.name != "resolved";
        if (!number || (a.kind != Ref::Kind::count && !index) || starts_with(a.name, "len ")) {
            why = "compares what no count compares (len of the alerts, a range's index)";
            return false;
        }
        // Go's index counts from 0, ours from 1
        const std::string limit = std::to_string(std::stoul(n->s) + (index ? 1 : 0));
        const bool above = e.s == "gt" || e.s == "le";
        out.push_back({(index ? "index" : a.name) + (above ? "_gt." : "_lt.") + limit,
                       e.s == "ge" || e.s == "le"});
        return true;
    }

    static std::string open(const std::vector<Sec> &secs)
    {
        std::string s;
        for (const Sec &sec : secs) {
            s += std::string("{{") + (sec.inverted ? "^" : "#") + sec.name + "}}";
        }
        return s;
    }

    static std::string close(const std::vector<Sec> &secs)
    {
        std::string s;
        for (auto sec = secs.rbegin(); sec != secs.rend(); ++sec) {
            s += "{{/" + sec->name + "}}";
        }
        return s;
    }

    std::string otherwise(const Node &n, const std::vector<Sec> &secs, const Ctx &c,
                          std::string &why)
    {
        if (n.other.empty()) {
            return "";
        }
        if (secs.size() != 1) {
            why = "an else after a condition of several parts (and): write a section for each";
            return "";
        }
        const std::vector<Sec> inverse{{secs[0].name, !secs[0].inverted}};
        return open(inverse) + nodes(n.other, c) + close(inverse);
    }

    std::string conditional(const Node &n, const Ctx &c, std::string &why)
    {
        std::vector<Sec> secs;
        if (!condition(n.expr, c, secs, why)) {
            return "";
        }
        Ctx inner = c;
        if (n.kind == Node::Kind::with) {
            const Ref r = ref(n.expr, c);
            inner.dot = r.kind == Ref::Kind::scalar ? Dot::value
                        : r.kind == Ref::Kind::list ? Dot::list
                        : r.kind == Ref::Kind::map  ? Dot::other
                                                    : Dot::nil;
            inner.name = r.name;
        }
        const std::string body = nodes(n.body, inner);
        return open(secs) + body + close(secs) + otherwise(n, secs, c, why);
    }

    std::string range(const Node &n, const Ctx &c, std::string &why)
    {
        const Ref r = ref(n.expr, c);
        if (r.kind == Ref::Kind::mentions) { // range .AtMobiles: ours, with their @
            mentions_ = true;
            return "{{mentions}}";
        }
        Ctx inner = c;
        std::string list = r.name;
        if (r.kind == Ref::Kind::list) {
            inner.dot = Dot::alert;
            inner.name = r.name;
            inner.in_alert = true;
        } else if ((r.kind == Ref::Kind::map || r.kind == Ref::Kind::values) &&
                   !singular(r.name).empty()) {
            list = singular(r.name) + "_list";
            inner.dot = n.expr.s.find("SortedPairs") != npos && r.kind == Ref::Kind::map
                            ? Dot::pair
                            : Dot::value;
            inner.name = "value";
        } else {
            why = "ranges over what no list is (.Alerts, .Alerts.Firing, a map's SortedPairs)";
            return "";
        }
        if (!bind(n.vars, r, inner, why)) {
            return "";
        }
        const std::vector<Sec> secs{{list, false}};
        return open(secs) + nodes(n.body, inner) + close(secs) + otherwise(n, secs, c, why);
    }

    // range $i, $a := ...: $a the element, $i its index (or the map's key).
    static bool bind(const std::vector<std::string> &vars, const Ref &r, Ctx &inner,
                     std::string &why)
    {
        if (vars.size() > 2) {
            why = "ranges with more than two variables";
            return false;
        }
        Ref element = of_dot(inner.dot, inner.name);
        Ref key;
        key.kind = r.kind == Ref::Kind::list ? Ref::Kind::index : Ref::Kind::scalar;
        key.name = r.kind == Ref::Kind::list ? r.name : "name";
        if (vars.size() == 2) {
            inner.vars[vars[0]] = key;
        }
        if (!vars.empty()) {
            inner.vars[vars.back()] = element;
        }
        return true;
    }

    std::string call(const Node &n, const Ctx &c, std::string &why)
    {
        const auto d = defines_.find(n.name);
        if (d == defines_.end()) {
            why = "no template \"" + n.name + "\" in these files";
            return "";
        }
        Ctx inner;
        const Ref r = n.expr.kind == Expr::Kind::bad ? Ref{} : ref(n.expr, c);
        inner.dot = r.kind == Ref::Kind::root    ? Dot::root
                    : r.kind == Ref::Kind::list  ? Dot::list
                    : r.kind == Ref::Kind::alert ? Dot::alert
                    : r.kind == Ref::Kind::pair  ? Dot::pair
                                                 : Dot::nil;
        inner.name = r.name;
        inner.in_alert = c.in_alert;
        inner.dollar = inner.dot;
        inner.dollar_name = inner.name;
        if (inner.dot == Dot::nil) {
            why = "a template called with something other than the notification, an alert or a "
                  "list of alerts";
            return "";
        }
        if (depth_ == kMaxDepth) {
            why = "templates calling templates over 8 deep (does it call itself?)";
            return "";
        }
        if (inline_ && ++inlined_ > kMaxInlined) { // written out each time: bounded work
            why = "the title calls templates over 1000 times";
            return "";
        }
        ++depth_;
        const std::string s =
            inline_ ? nodes(d->second, inner) : block(n.name, d->second, inner, why);
        --depth_;
        return s;
    }

    // The block a template is, for the dot it is called with: {{>name}}.
    std::string block(const std::string &go, const std::vector<Node> &body, const Ctx &c,
                      std::string &why)
    {
        const std::string key =
            go + "\n" + std::to_string(static_cast<int>(c.dot)) + c.name + (c.in_alert ? "+" : "");
        const auto inserted = names_.emplace(key, "");
        const auto it = inserted.first;
        if (inserted.second) {
            std::string name;
            for (const char ch : go) {
                name += std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' ? ch : '_';
            }
            name = name.empty() ? "block" : name;
            while (!taken_.insert(name).second) {
                name += "." + (c.name.empty() ? std::string("x") : c.name);
            }
            it->second = name;
            std::string text = nodes(body, c);
            blocks_.emplace_back(name, keep_lines(text, blocks_));
        } else if (std::none_of(blocks_.begin(), blocks_.end(),
                                [&](const auto &b) { return b.first == it->second; })) {
            why = "a template that calls itself: a block cannot";
            return "";
        }
        return "{{>" + it->second + "}}";
    }

public:
    // The kind of the one tag a line holds (# ^ / ! >), else 0.
    static char lone_tag(const std::string &line)
    {
        const std::string t = trimmed(line);
        const bool one =
            starts_with(t, "{{") && ends_with(t, "}}") && t.find("{{", 2) == npos && t.size() > 4;
        return one && std::string("#^/!>").find(t[2]) != npos ? t[2] : 0;
    }

    // Go prints a line that holds only an action printing nothing ({{ if }}, {{ end }}) as its
    // line break; ours leaves nothing of a line that holds only a section tag (or a block's
    // use, but for its block's lines): such a line's break is written twice, so one stays. (A
    // block's use alone on the last line gets a comment after it: not alone, it adds no break.)
    static std::string keep_lines(const std::string &s,
                                  const std::vector<std::pair<std::string, std::string>> &blocks)
    {
        std::string out;
        for (std::size_t line = 0; line < s.size();) {
            const std::size_t eol = s.find('\n', line);
            const std::string l = s.substr(line, eol == npos ? npos : eol - line + 1);
            out += l;
            line = eol == npos ? s.size() : eol + 1;
            const char kind = lone_tag(l);
            if (kind != 0 && kind != '>' && eol != npos) {
                out += '\n';
            } else if (kind == '>') {
                const std::string name = trimmed(l).substr(3, trimmed(l).size() - 5);
                const auto b = std::find_if(blocks.begin(), blocks.end(),
                                            [&](const auto &p) { return p.first == name; });
                const std::string body = b == blocks.end() ? "" : b->second;
                // ours ends a block's text with a line break: then its last line may stand alone
                const bool whole_lines = body.empty() || body.back() == '\n' ||
                                         lone_tag(body.substr(body.rfind('\n') + 1)) != 0;
                out += eol != npos ? (whole_lines ? "\n" : "") : (whole_lines ? "" : "{{! }}");
            }
        }
        return out;
    }

private:
    const Defines &defines_;
    GoConversion &out_;
    std::vector<std::pair<std::string, std::string>> blocks_; // ours, in the order made
    std::map<std::string, std::string> names_;                // template and dot -> block
    std::set<std::string> taken_{"nginx_directives"};
    std::string zone_, layout_;
    bool inline_ = false, mentions_ = false;
    int depth_ = 0;
    std::size_t inlined_ = 0;
};

// @{{labels.x}} in the text: mention the people that label names (dingtalk_at_mobiles_from).
void mentions_from(const std::string &text, std::vector<std::string> &directives)
{
    std::set<std::string> said;
    for (const std::string map : {"labels", "annotations", "labels_raw", "annotations_raw"}) {
        for (std::size_t at = text.find("@{{" + map + "."); at != npos;
             at = text.find("@{{" + map + ".", at + 1)) {
            const std::size_t from = at + 4 + map.size();
            const std::string name = text.substr(from, text.find("}}", from) - from);
            const bool users = name.find("user") != npos || name.find("id") != npos;
            const std::string d =
                std::string(users ? "dingtalk_at_user_ids_from " : "dingtalk_at_mobiles_from ") +
                name + ";";
            if (label_name(name) && said.insert(d).second) {
                directives.push_back(d);
            }
        }
    }
}

// A title template as an nginx string: '...' with ' and \ escaped.
std::string quoted(const std::string &s)
{
    std::string q = "'";
    for (const char c : s) {
        q += c == '\'' || c == '\\' ? std::string("\\") + c : std::string(1, c);
    }
    return q + "'";
}

void directives(const Converter &cv, const std::string &title, GoConversion &out)
{
    if (!title.empty()) {
        out.directives.push_back("dingtalk_title_template " + quoted(title) + ";");
    }
    if (!cv.zone().empty()) {
        const bool local = cv.zone() == "Local";
        out.directives.push_back(
            "dingtalk_timezone " + (local ? std::string("Asia/Shanghai") : cv.zone()) + " " +
            cv.layout() + ";" +
            (local ? "  # the Go bridge's local time zone (its TZ): write yours" : ""));
    }
    if (cv.mentions()) {
        out.directives.push_back("# .AtMobiles is {{mentions}}: the mobiles of dingtalk_at_mobiles "
                                 "(the bridge's mention.mobiles)");
    }
    mentions_from(out.text, out.directives);
}

// The files' defines (a later one replacing an earlier) and the top level of the last with text.
bool parse_files(const std::vector<GoFile> &files, Defines &defines, std::vector<Node> &top,
                 std::vector<std::string> &problems)
{
    std::size_t total = 0;
    for (const GoFile &f : files) {
        total += f.text.size();
    }
    if (total > kMaxGoTemplateBytes) {
        problems.push_back("the templates are over 1 MiB together");
        return false;
    }
    for (const GoFile &f : files) {
        std::vector<Piece> pieces;
        std::string error;
        if (!Lexer(f).run(pieces, error)) {
            problems.push_back(error);
            return false;
        }
        std::vector<Node> nodes = TreeParser(pieces, defines, problems).run();
        const bool text = std::any_of(nodes.begin(), nodes.end(), [](const Node &n) {
            return n.kind != Node::Kind::text || !trimmed(n.text).empty();
        });
        top = text ? std::move(nodes) : std::move(top);
    }
    return true;
}

} // namespace

GoConversion convert_go_template(const std::vector<GoFile> &files)
{
    GoConversion out;
    Defines defines;
    std::vector<Node> top;
    if (!parse_files(files, defines, top, out.problems)) {
        return out;
    }
    const auto content = defines.find("ding.link.content");
    if (content == defines.end() && top.empty()) {
        out.problems.push_back("no \"ding.link.content\" template, and no text outside "
                               "the defines (the Go bridge's own template/default.tmpl "
                               "defines it: give that file first)");
        return out;
    }
    Converter cv(defines, out);
    const std::string text = Converter::keep_lines(
        cv.nodes(content == defines.end() ? top : content->second, Ctx{}), cv.blocks());
    std::string title;
    if (const auto t = defines.find("ding.link.title"); t != defines.end()) {
        cv.set_inline(true);
        title = trimmed(cv.nodes(t->second, Ctx{}));
        std::replace(title.begin(), title.end(), '\n', ' ');
    }
    out.text = text;
    directives(cv, title, out);
    std::string head = "{{! Converted from a Go template by dingtalk-render --from-go-template "
                       "(docs/go-templates.md). }}\n";
    if (!out.directives.empty()) {
        head += "{{! The nginx directives it needs, next to its dingtalk_template (this block is "
                "never printed): }}\n{{<nginx_directives}}\n";
        for (const std::string &d : out.directives) {
            head += d + "\n";
        }
        head += "{{/nginx_directives}}\n";
    }
    for (const auto &[name, body] : cv.blocks()) {
        head += "{{<" + name + "}}\n" + body + "{{/" + name + "}}\n";
    }
    out.text = head + text;
    return out;
}

} // namespace dingtalk
