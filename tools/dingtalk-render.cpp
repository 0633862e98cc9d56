// dingtalk-render: the module's renderer on the command line. Reads an Alertmanager webhook
// payload and prints the DingTalk request the module would send for it, byte for byte (same
// core, same templates, same size limit); --send posts it. The answer to the Go bridge's
// template playground, without a browser.

#include "alert.hpp"
#include "fold.hpp"
#include "delivery.hpp"
#include "go_convert.hpp"
#include "render.hpp"
#include "sender.hpp"
#include "sign.hpp"
#include "template.hpp"
#include "timezone.hpp"

#include <jansson.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace
{

const char *const kUsage = R"(usage: dingtalk-render [options] [PAYLOAD.json]
       dingtalk-render [options] --fold PAYLOAD.json PAYLOAD.json...
       dingtalk-render --from-go-template FILE.tmpl [--from-go-template FILE.tmpl]...

Prints the DingTalk request ngx_http_dingtalk_module would send for an Alertmanager webhook
payload (read from PAYLOAD.json, or stdin); with --fold, the messages it would send for these
notifications when they wait for the same robot's next slots (dingtalk_fold).

  --zone ZONE             time zone for the times shown (default Asia/Shanghai)
  --time-layout LAYOUT    Go time layout of the times shown (as dingtalk_timezone's second
                          argument: '2006-01-02 15:04:05 MST')
  --template FILE         mustache template for the text (as dingtalk_template)
  --title-template TEXT   mustache template for the title (as dingtalk_title_template)
  --at-mobiles 'A,B [severity=S1,S2]'
                          mention these mobiles (as dingtalk_at_mobiles); may repeat
  --at-user-ids 'A,B [severity=S1,S2]'
                          mention these user ids (as dingtalk_at_user_ids); may repeat
  --at-all ['on|off [severity=S1,S2]']
                          mention everyone (as dingtalk_at_all; alone: on)
  --at-mobiles-from NAME  mention the mobiles the firing alerts name in annotation (else label)
                          NAME (as dingtalk_at_mobiles_from)
  --at-user-ids-from NAME the same for user ids (as dingtalk_at_user_ids_from)
  --keyword WORD          every message contains WORD (as dingtalk_keyword)
  --hide-labels 'NAME NAME' | off
                          labels no line shows (as dingtalk_hide_labels; default: prometheus
                          prometheus_replica uid endpoint service)
  --silence-link on|off   a firing alert links to a new silence (as dingtalk_silence_link; on)
  --severity-style 'SEVERITY EMOJI [COLOR]'
                          a style for templates (as dingtalk_severity_style; a word may be
                          quoted as there: 'critical 🔴 "#FF0000"'); may repeat
  --max-alerts N          alerts kept, the rest only counted (as dingtalk_max_alerts; 100)
  --max-messages N        up to N messages when one cannot hold every alert (as
                          dingtalk_max_messages; 1 to 10, default 1): one JSON request a line
                          (--text: the texts, each after a "--- message I of N ---" line)
  --max-body-size BYTES   refuse a larger payload (as dingtalk_max_body_size; 1048576)
  --now RFC3339           the time firing alerts' durations are counted to (default: now)
  --strict                a label or annotation the template names that no alert has is an
                          error (without it: a warning)
  --fold                  several payloads, folded as the module folds notifications waiting
                          for a robot: one message of as many as fit, then the next
  --from-go-template FILE prints a prometheus-webhook-dingtalk (Go) template in this module's
                          template language, with the nginx directives it needs in a block
                          at its top; on stderr, each construct left out, with its line. May
                          repeat: files in the Go bridge's order (a later define wins)
  --text                  print only the markdown text, as DingTalk shows it
  --pretty                indent the JSON
  --send URL              POST it to URL, the robot's webhook URL
                          (https://oapi.dingtalk.com/robot/send?access_token=...)
  --secret SECRET         sign the request (with --send)
  --ca FILE               trust these CAs instead of the system's (with --send)
  --insecure              do not verify the certificate (with --send)
  --proxy URL             send through this proxy: http://, https:// or socks5h://HOST:PORT,
                          user:password@ allowed (with --send; http_proxy and the like in
                          the environment are ignored, as by the module)
  -h, --help              this text

Exit status: 0 done (with --send: DingTalk answered errcode 0), 1 the payload is not an
Alertmanager notification or the template is bad, 2 usage, 3 the send failed, 4 (with
--from-go-template) converted but for the constructs named on stderr.
)";

std::string read_all(std::istream &in)
{
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool read_file(const std::string &path, std::string &out)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        return false;
    }
    out = read_all(in);
    return true;
}

std::vector<std::string> split(const std::string &list)
{
    std::vector<std::string> out;
    std::stringstream ss(list);
    for (std::string item; std::getline(ss, item, ',');) {
        if (!item.empty()) {
            out.push_back(item);
        }
    }
    return out;
}

// What is wrong and one line of usage; --help prints the whole text.
int usage_error(const std::string &what)
{
    const std::string usage(kUsage, std::strchr(kUsage, '\n'));
    std::cerr << "dingtalk-render: " << what << "\n" << usage << " (--help: every option)\n";
    return 2;
}

std::string pretty(const std::string &json)
{
    json_error_t err;
    json_t *j = json_loads(json.c_str(), 0, &err);
    if (j == nullptr) {
        return json;
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    std::string out = s ? s : json;
    std::free(s);
    json_decref(j);
    return out;
}

struct Options {
    std::string zone_name = "Asia/Shanghai", time_layout, template_path, title_template,
                payload_path;
    std::vector<std::string> go_templates;  // --from-go-template
    std::vector<std::string> more_payloads; // --fold: the payloads after the first
    bool fold = false;
    std::string send_url, secret, ca_path;
    std::shared_ptr<const dingtalk::Proxy> proxy; // --proxy; null: direct, whatever the env says
    bool text_only = false, indent = false, insecure = false, strict = false, help = false;
    std::vector<dingtalk::MentionRule> rules;
    dingtalk::MentionSources mentions_from;
    std::string keyword;
    std::shared_ptr<dingtalk::LabelNames> hidden; // null: the default set
    bool silence_link = true;
    dingtalk::ParseLimits limits;
    std::size_t max_messages = 1;
    dingtalk::Styles styles = dingtalk::Styles::defaults();
    dingtalk::TimePoint now{};
};

// --at-mobiles 'A,B [severity=S1,S2]' (and --at-user-ids, --at-all on|off [severity=...]): one
// rule, in the directive's syntax (commas between values are fine too).
std::string mention_rule(Options &o, const std::string &arg, const std::string &v)
{
    const auto kind = arg == "--at-mobiles"    ? dingtalk::MentionKind::mobiles
                      : arg == "--at-user-ids" ? dingtalk::MentionKind::user_ids
                                               : dingtalk::MentionKind::all;
    dingtalk::MentionRule rule;
    std::istringstream words(v);
    std::string why;
    for (std::string word; why.empty() && words >> word;) {
        const bool severities = word.rfind("severity=", 0) == 0;
        for (const auto &item : severities ? std::vector<std::string>{word} : split(word)) {
            why = why.empty() ? dingtalk::add_mention_argument(rule, kind, item) : why;
        }
    }
    why = why.empty() ? dingtalk::check_mention_rule(rule, kind) : why;
    o.rules.push_back(std::move(rule));
    return why.empty() ? "" : arg + ": " + why;
}

// Whether what follows --at-all is its value ("on", "off severity=critical", ...), not a payload.
bool at_all_value(const std::string &next)
{
    const std::string first = next.substr(0, next.find(' '));
    return first == "on" || first == "off" || first.rfind("severity=", 0) == 0;
}

// --hide-labels 'NAME NAME' | off, as dingtalk_hide_labels.
std::string hide_labels(Options &o, const std::string &v)
{
    o.hidden = std::make_shared<dingtalk::LabelNames>();
    std::istringstream words(v);
    std::string why;
    for (std::string word; why.empty() && words >> word && v != "off";) {
        why = dingtalk::add_label_name(*o.hidden, word);
    }
    return why.empty() ? "" : "--hide-labels: " + why;
}

// --severity-style 'SEVERITY EMOJI [COLOR]', the directive's words: each may be quoted, "..." or
// '...', and loses its quotes as nginx strips them.
std::string severity_style(Options &o, const std::string &v)
{
    std::istringstream in(v);
    std::vector<std::string> words;
    for (std::string word; in >> word;) {
        const char q = word.front();
        if ((q == '"' || q == '\'') && word.size() >= 2 && word.back() == q) {
            word = word.substr(1, word.size() - 2);
        }
        words.push_back(word);
    }
    if (words.size() < 2 || words.size() > 3) {
        return "--severity-style takes 'SEVERITY EMOJI [COLOR]'";
    }
    words.resize(3);
    const std::string why = o.styles.set(words[0], words[1], words[2]);
    return why.empty() ? "" : "--severity-style: " + why;
}

// The options that change how the message reads; "-" when arg is none of them.
std::string message_option(Options &o, const std::string &arg, const std::string &v)
{
    if (arg == "--at-mobiles" || arg == "--at-user-ids" || arg == "--at-all") {
        return mention_rule(o, arg, v);
    } else if (arg == "--keyword") {
        const std::string why = dingtalk::check_keyword(v);
        o.keyword = v;
        return why.empty() ? "" : "--keyword: " + why;
    } else if (arg == "--at-mobiles-from" || arg == "--at-user-ids-from") {
        (arg == "--at-mobiles-from" ? o.mentions_from.mobiles_from
                                    : o.mentions_from.user_ids_from) = v;
        const std::string why = dingtalk::check_label_name(v);
        return why.empty() ? "" : arg + ": " + why;
    } else if (arg == "--hide-labels") {
        return hide_labels(o, v);
    } else if (arg == "--silence-link") {
        o.silence_link = v == "on";
        return v == "on" || v == "off" ? "" : "--silence-link takes on or off";
    } else if (arg == "--severity-style") {
        return severity_style(o, v);
    }
    return "-";
}

// One option with its value; "" when it is fine, else what is wrong.
std::string option(Options &o, const std::string &arg, const std::string &v)
{
    if (const std::string why = message_option(o, arg, v); why != "-") {
        return why;
    }
    if (arg == "--zone") {
        o.zone_name = v;
    } else if (arg == "--time-layout") {
        o.time_layout = v;
    } else if (arg == "--template") {
        o.template_path = v;
    } else if (arg == "--title-template") {
        o.title_template = v;
    } else if (arg == "--from-go-template") {
        o.go_templates.push_back(v);
    } else if (arg == "--max-alerts" || arg == "--max-body-size" || arg == "--max-messages") {
        char *end = nullptr;
        const unsigned long n = std::strtoul(v.c_str(), &end, 10);
        if (n == 0 || *end != '\0' || (arg == "--max-alerts" && n > 10000) ||
            (arg == "--max-messages" && n > dingtalk::kMaxMessages)) {
            return arg + " needs a number (--max-alerts: 1 to 10000, --max-messages: 1 to 10)";
        }
        (arg == "--max-alerts"     ? o.limits.max_alerts
         : arg == "--max-messages" ? o.max_messages
                                   : o.limits.max_body_bytes) = n;
    } else if (arg == "--now") {
        const auto t = dingtalk::parse_rfc3339(v);
        if (!t) {
            return "--now needs an RFC 3339 time";
        }
        o.now = *t;
    } else if (arg == "--send") {
        o.send_url = v;
    } else if (arg == "--secret") {
        o.secret = v;
    } else if (arg == "--ca") {
        o.ca_path = v;
    } else if (arg == "--proxy") {
        std::string error;
        auto proxy = dingtalk::parse_proxy(v, error);
        if (!proxy) {
            return "--proxy " + error;
        }
        o.proxy = std::make_shared<const dingtalk::Proxy>(std::move(*proxy));
    } else {
        return "unknown option " + arg;
    }
    return "";
}

// The command line into o; "" when fine, else what is wrong.
std::string parse_args(int argc, char **argv, Options &o)
{
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            o.help = true;
            return "";
        } else if (arg == "--at-all" && !(i + 1 < argc && at_all_value(argv[i + 1]))) {
            option(o, arg, "on"); // the flag alone: everyone, always
        } else if (arg == "--text" || arg == "--pretty" || arg == "--insecure" ||
                   arg == "--strict" || arg == "--fold") {
            bool &flag = arg == "--text"     ? o.text_only
                         : arg == "--pretty" ? o.indent
                         : arg == "--strict" ? o.strict
                         : arg == "--fold"   ? o.fold
                                             : o.insecure;
            flag = true;
        } else if (arg.size() > 2 && arg[0] == '-' && arg[1] == '-') {
            if (i + 1 >= argc) {
                const std::string why = option(o, arg, ""); // is it an option at all?
                return why.rfind("unknown option", 0) == 0 ? why : arg + " needs a value";
            }
            const std::string why = option(o, arg, argv[++i]);
            if (!why.empty()) {
                return why;
            }
        } else if (!arg.empty() && arg[0] == '-' && arg != "-") {
            return "unknown option " + arg;
        } else if (o.payload_path.empty()) {
            o.payload_path = arg;
        } else {
            o.more_payloads.push_back(arg);
        }
    }
    if (!o.more_payloads.empty() && !o.fold) {
        return "one payload at a time (several with --fold)";
    }
    return "";
}

// The templates of o into s; false (and said why) when one does not parse.
bool load_templates(const Options &o, dingtalk::Settings &s)
{
    std::string error;
    if (!o.template_path.empty()) {
        std::string source;
        if (!read_file(o.template_path, source)) {
            std::cerr << "dingtalk-render: cannot read " << o.template_path << "\n";
            return false;
        }
        s.text_template =
            dingtalk::Template::parse(std::move(source), dingtalk::Template::Kind::text, error);
        if (!s.text_template) {
            std::cerr << "dingtalk-render: " << o.template_path << " " << error << "\n";
            return false;
        }
    }
    if (!o.title_template.empty()) {
        s.title_template =
            dingtalk::Template::parse(o.title_template, dingtalk::Template::Kind::title, error);
        if (!s.title_template) {
            std::cerr << "dingtalk-render: --title-template " << error << "\n";
            return false;
        }
    }
    return true;
}

// Names the templates ask for that this payload has nowhere: an error with --strict.
bool check_unset(const Options &o, const dingtalk::Settings &s, const dingtalk::Notification &n)
{
    std::set<std::string> said; // a name in the text and in the title: one warning
    for (const auto *t : {s.text_template.get(), s.title_template.get()}) {
        for (const std::string &name : t ? t->unset_names(n) : std::vector<std::string>()) {
            if (!said.insert(name).second) {
                continue;
            }
            std::cerr << "dingtalk-render: " << (o.strict ? "error" : "warning") << ": {{" << name
                      << "}} is set in no alert of this payload (a typo renders as nothing)\n";
        }
    }
    return !(!said.empty() && o.strict);
}

// POSTs one request to the robot's URL; 0 when DingTalk took it, 3 when not, 2 for bad options.
int send_one(const Options &o, const dingtalk::Message &m)
{
    dingtalk::HttpRequest req;
    req.url = o.send_url + dingtalk::signed_query(o.secret);
    req.body = m.request_body;
    req.ssl_verify = !o.insecure;
    if (!o.ca_path.empty()) {
        std::string pem;
        if (!read_file(o.ca_path, pem)) {
            std::cerr << "dingtalk-render: cannot read " << o.ca_path << "\n";
            return 2;
        }
        req.ca_pem = std::make_shared<const std::string>(std::move(pem));
    }
    req.proxy = o.proxy ? o.proxy->url : "";
    const dingtalk::HttpReply reply = dingtalk::http_post(req);
    dingtalk::Report rep = dingtalk::interpret(reply, o.proxy.get());

    // The URL holds the token: keep it (and the secret) out of anything printed.
    dingtalk::Target t;
    const auto at = o.send_url.find("access_token=");
    if (at != std::string::npos) {
        t.token = o.send_url.substr(at + 13, o.send_url.find('&', at) - (at + 13));
    }
    t.secret = o.secret;
    auto s = std::make_shared<dingtalk::Settings>();
    s->proxy = o.proxy;
    t.settings = std::move(s);
    std::cerr << "dingtalk-render: " << dingtalk::redact(rep.reason, t);
    if (rep.errcode) {
        std::cerr << " (errcode " << *rep.errcode << ", errmsg \""
                  << dingtalk::redact(rep.errmsg, t) << "\")";
    }
    std::cerr << "\n";
    return rep.outcome == dingtalk::Outcome::delivered ? 0 : 3;
}

// POSTs the messages in order, up to the first DingTalk does not take.
int send(const Options &o, const std::vector<dingtalk::Message> &ms)
{
    if (!o.secret.empty() && !dingtalk::valid_secret(o.secret)) {
        std::cerr << "dingtalk-render: --secret is not \"SEC\" followed by 64 hex digits\n";
        return 2;
    }
    dingtalk::global_init();
    int status = 0;
    for (auto m = ms.begin(); m != ms.end() && status == 0; ++m) {
        status = send_one(o, *m);
    }
    dingtalk::global_cleanup();
    return status;
}

// The requests (or texts) on stdout; on stderr, how many alerts did not fit.
void print(const Options &o, const std::vector<dingtalk::Message> &ms)
{
    std::size_t shown = 0;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        const dingtalk::Message &m = ms[i];
        if (o.text_only && ms.size() > 1) {
            std::cout << (i > 0 ? "\n" : "") << "--- message " << i + 1 << " of " << ms.size()
                      << " ---\n";
        }
        std::cout << (o.text_only ? m.text
                      : o.indent  ? pretty(m.request_body)
                                  : m.request_body)
                  << "\n";
        shown += m.shown;
    }
    const dingtalk::Message &last = ms.back();
    if (last.omitted > 0) {
        std::cerr << "dingtalk-render: " << shown << " of " << shown + last.omitted
                  << " alerts fit DingTalk's limit (" << last.request_body.size() << " bytes"
                  << (ms.size() > 1 ? " in the last of " + std::to_string(ms.size()) + " messages"
                                    : std::string())
                  << ")\n";
    }
}

// The settings the module would have with the directives these options stand for.
// --zone and --time-layout, as dingtalk_timezone's two arguments.
std::optional<dingtalk::TimeZone> zone_of(const Options &o, std::string &error)
{
    auto zone = dingtalk::TimeZone::find(o.zone_name, error);
    if (zone && !o.time_layout.empty()) {
        auto layout = dingtalk::GoLayout::parse(o.time_layout, error);
        if (!layout) {
            return std::nullopt;
        }
        zone->set_layout(std::move(layout));
    }
    return zone;
}

dingtalk::Settings settings_of(const Options &o, const dingtalk::TimeZone &zone)
{
    dingtalk::Settings s;
    s.timezone = std::make_shared<const dingtalk::TimeZone>(zone);
    s.styles = std::make_shared<const dingtalk::Styles>(o.styles);
    s.keyword = o.keyword;
    s.hidden_labels = o.hidden;
    s.silence_link = o.silence_link;
    s.max_messages = o.max_messages;
    s.limits = o.limits;
    return s;
}

// One notification's messages, as the module renders them; false (and said why) for a bad one.
bool messages_of(const Options &o, const dingtalk::Settings &s, const std::string &body,
                 std::vector<dingtalk::Message> &ms, std::optional<dingtalk::Section> *section)
{
    const dingtalk::ParseResult parsed = dingtalk::parse_notification(body, s.limits);
    if (!parsed.notification) {
        std::cerr << "dingtalk-render: not an Alertmanager notification: " << parsed.error << "\n";
        return false;
    }
    if (!check_unset(o, s, *parsed.notification)) {
        return false;
    }
    dingtalk::RenderOptions opt;
    opt.settings = &s;
    opt.now = o.now;
    opt.at = dingtalk::resolve_mentions(o.rules, *parsed.notification);
    dingtalk::add_mentions_from_alerts(o.mentions_from, *parsed.notification, opt.at);
    try {
        ms = dingtalk::render_messages(*parsed.notification, opt);
    } catch (const std::exception &e) {
        std::cerr << "dingtalk-render: " << e.what() << "\n";
        return false;
    }
    if (section != nullptr) {
        *section = dingtalk::section_of(*parsed.notification, opt, ms.front(), ms.size());
    }
    return true;
}

int render(const Options &o, const std::string &body, const dingtalk::TimeZone &zone)
{
    dingtalk::Settings s = settings_of(o, zone);
    std::vector<dingtalk::Message> ms;
    if (!load_templates(o, s) || !messages_of(o, s, body, ms, nullptr)) {
        return 1;
    }
    print(o, ms);
    return o.send_url.empty() ? 0 : send(o, ms);
}

// --fold: the messages the module sends for notifications that wait for one robot's slots:
// firing ones first, as many as fit a message, then the next; a notification of several
// messages goes alone, and so does one a message holds by itself (its own message).
int render_fold(const Options &o, const std::vector<std::string> &bodies,
                const dingtalk::TimeZone &zone)
{
    dingtalk::Settings s = settings_of(o, zone);
    if (!load_templates(o, s)) {
        return 1;
    }
    std::vector<std::pair<dingtalk::Section, dingtalk::Message>> firing, resolved;
    std::vector<dingtalk::Message> out;
    for (const std::string &body : bodies) {
        std::vector<dingtalk::Message> ms;
        std::optional<dingtalk::Section> section;
        if (!messages_of(o, s, body, ms, &section)) {
            return 1;
        }
        if (!section) {
            out.insert(out.end(), ms.begin(), ms.end());
        } else {
            (section->firing ? firing : resolved).emplace_back(*section, ms.front());
        }
    }
    firing.insert(firing.end(), resolved.begin(), resolved.end());
    dingtalk::RenderOptions opt;
    opt.settings = &s;
    for (std::size_t first = 0; first < firing.size();) {
        std::vector<dingtalk::Section> sections;
        for (std::size_t i = first; i < firing.size(); ++i) {
            sections.push_back(firing[i].first);
        }
        std::size_t taken = 0;
        dingtalk::Message m = dingtalk::render_fold(sections, opt, taken);
        out.push_back(taken > 1 ? std::move(m) : firing[first].second);
        first += std::max<std::size_t>(taken, 1);
    }
    print(o, out);
    return o.send_url.empty() ? 0 : send(o, out);
}

// --from-go-template: the Go templates converted; 4 when constructs were left out.
int from_go(const Options &o)
{
    std::vector<dingtalk::GoFile> files;
    for (const std::string &path : o.go_templates) {
        std::ifstream in(path, std::ios::binary);
        std::string text(dingtalk::kMaxGoTemplateBytes + 1, '\0');
        in.read(&text[0], static_cast<std::streamsize>(text.size()));
        if (!in && !in.eof()) {
            std::cerr << "dingtalk-render: cannot read " << path << "\n";
            return 1;
        }
        text.resize(static_cast<std::size_t>(in.gcount()));
        if (text.size() > dingtalk::kMaxGoTemplateBytes) {
            std::cerr << "dingtalk-render: " << path << " is over 1 MiB: not a template\n";
            return 1;
        }
        files.push_back({path, std::move(text)});
    }
    dingtalk::GoConversion c;
    try {
        c = dingtalk::convert_go_template(files);
    } catch (const std::exception &e) {
        std::cerr << "dingtalk-render: the conversion failed: " << e.what() << "\n";
        return 1;
    }
    for (const std::string &p : c.problems) {
        std::cerr << "dingtalk-render: " << p << "\n";
    }
    if (c.text.empty()) {
        return 1;
    }
    std::string error;
    if (!dingtalk::Template::parse(c.text, dingtalk::Template::Kind::text, error)) {
        std::cerr << "dingtalk-render: the converted template does not load (" << error
                  << "): a bug of the converter\n";
        return 1;
    }
    std::cout << c.text;
    return c.problems.empty() ? 0 : 4;
}

} // namespace

int main(int argc, char **argv)
{
    Options o;
    const std::string why = parse_args(argc, argv, o);
    if (o.help) {
        std::cout << kUsage;
        return 0;
    }
    if (!why.empty()) {
        return usage_error(why);
    }
    if (!o.go_templates.empty()) {
        return from_go(o);
    }
    std::string error;
    const auto zone = zone_of(o, error);
    if (!zone) {
        std::cerr << "dingtalk-render: " << error << "\n";
        return 2;
    }
    if (o.fold) {
        std::vector<std::string> bodies(1 + o.more_payloads.size());
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            const std::string &path = i == 0 ? o.payload_path : o.more_payloads[i - 1];
            if (!read_file(path, bodies[i])) {
                std::cerr << "dingtalk-render: cannot read " << path << "\n";
                return 1;
            }
        }
        return render_fold(o, bodies, *zone);
    }
    std::string body;
    if (o.payload_path.empty() || o.payload_path == "-") {
        body = read_all(std::cin);
    } else if (!read_file(o.payload_path, body)) {
        std::cerr << "dingtalk-render: cannot read " << o.payload_path << ": "
                  << std::strerror(errno) << "\n";
        return 1;
    }
    return render(o, body, *zone);
}
