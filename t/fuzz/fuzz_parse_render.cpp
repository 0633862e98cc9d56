// libFuzzer target: any body -> parse_notification -> render_message and render_messages,
// checking the promises the nginx glue relies on. A broken promise is __builtin_trap(), which
// libFuzzer reports as a crash.
//
//   a parse that fails has an error, in valid UTF-8 (it goes into the reply's JSON "reason");
//   a parse that succeeds renders (built-in layout, one message) a request body within
//   kMaxRequestBytes that is valid JSON, whose markdown.text is valid UTF-8, equal to
//   Message::text, free of ASCII control characters other than the line feeds the module
//   writes, free of raw < and >, and whose lines start with '#' only for the module's own
//   headings; every alert is either shown or counted as omitted, and at least one is shown.
//
// Then render_messages with settings the input chooses (below): the built-in layout or a
// template of the gallery (templates/*.mustache), t/fixtures/every-label.mustache (every label
// and annotation of every alert) or t/fixtures/go-features.mustache (issue #24's names), a title
// template or not, dingtalk_max_messages 1 to 10, mentions taken from the alerts, hidden labels, a
// keyword, a smaller size limit, and a resume (alerts posted before, messages taken before). Each
// message: a request within the limit, valid JSON with the same title and text, valid UTF-8, no
// control characters but the text's line feeds, the mentions only in the first, the keyword in
// every one, the part label " (i/N)" counted on from the messages taken; "N more" (omitted alerts)
// only in the last; firing alerts shown before resolved ones; and over all messages, every kept
// alert not posted covered (Message::alerts) exactly once, none posted covered at all.
//
// Then, when the notification went as one message, its section (section_of) folded with
// copies of itself (render_fold, as a storm's notifications waiting for the robot's slot):
// at most kMaxFolded taken, none when not even one fits; the folded request within the limit,
// valid JSON (as above), each section's text in it once per section taken, the keyword in it,
// the mentions only when a section has them.
//
// The settings are the bytes after the input's last NUL (a JSON body has no raw NUL, so the
// body is what comes before it), else a hash of the body: every input of the corpus reaches
// some template, and a mutation that appends "\0" and a few bytes picks one.
//
// Cost is an oracle as well: run.sh gives libFuzzer a time limit per input and limits on RSS
// and on any single allocation, with inputs up to 1 MiB (nginx's default body size), so a
// shape of body whose parse + render is slow or fat is reported like a crash.
// Build and run: t/fuzz/run.sh [seconds]
#include "alert.hpp"
#include "fold.hpp"
#include "mention.hpp"
#include "render.hpp"
#include "template.hpp"
#include "timezone.hpp"

#include <jansson.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace
{

void check(bool ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

// The zone is looked up once, as nginx does at configuration time.
const dingtalk::TimeZone &shanghai()
{
    static const dingtalk::TimeZone zone = [] {
        std::string error;
        std::optional<dingtalk::TimeZone> z = dingtalk::TimeZone::find("Asia/Shanghai", error);
        check(z.has_value()); // tzdata must be installed
        return *z;
    }();
    return zone;
}

// Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::string_view s)
{
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        std::uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) {
            return false;
        }
        for (std::size_t k = 1; k <= n; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

bool has_ascii_control(std::string_view s, bool allow_newline)
{
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if ((c < 0x20 && !(allow_newline && c == '\n')) || c == 0x7F) {
            return true;
        }
    }
    return false;
}

// Only the module writes headings: "### <title>" first, then the section headings.
bool headings_are_the_modules(std::string_view text)
{
    std::size_t start = 0;
    for (bool first = true; start <= text.size(); first = false) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string_view line = text.substr(start, end - start);
        if (!line.empty() && line[0] == '#') {
            const bool title = first && line.substr(0, 4) == "### ";
            const bool section =
                line.substr(0, 5) == "#### " &&
                (line.substr(5, 11) == "告警中 (" || line.substr(5, 11) == "已恢复 (");
            if (!title && !section) {
                return false;
            }
        }
        start = end + 1;
    }
    return true;
}

bool ends_with(std::string_view s, std::string_view end)
{
    return s.size() >= end.size() && s.substr(s.size() - end.size()) == end;
}

// The text templates: the gallery, then one that lists every label and annotation.
constexpr std::array<const char *, 7> kTemplateFiles = {
    "templates/compact.mustache",     "templates/default.mustache",
    "templates/english.mustache",     "templates/go-bridge.mustache",
    "templates/oncall.mustache",      "t/fixtures/every-label.mustache",
    "t/fixtures/go-features.mustache"};

// Title templates: the one docs/migrating.md gives for the Go bridge's users, one that names
// every alert shown, one that says what is not shown.
constexpr std::array<const char *, 3> kTitleTemplates = {
    "[{{status_upper}}{{#has_firing}}:{{firing_count}}{{/has_firing}}] {{group_label_values}}"
    "{{#has_other_common_labels}} ({{other_common_label_values}}){{/has_other_common_labels}}",
    "{{status_upper}}{{#alerts}} {{alertname}}{{/alerts}}", "{{shown}}/{{alert_count}} {{more}}"};

std::vector<std::shared_ptr<const dingtalk::Template>> text_templates, title_templates;

std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    check(static_cast<bool>(in)); // run.sh runs the target in build/fuzz/, two levels down
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The repository: DINGTALK_FUZZ_REPO, else two levels above the target (build/fuzz/).
std::string repository()
{
    if (const char *repo = std::getenv("DINGTALK_FUZZ_REPO")) {
        return repo;
    }
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    check(n > 0);
    std::string dir(exe, static_cast<std::size_t>(n));
    for (int up = 0; up < 3; ++up) {
        dir.erase(dir.rfind('/'));
    }
    return dir;
}

// What an input chooses, one byte each (missing bytes are 0).
struct Choice {
    std::array<std::uint8_t, 8> b{};

    explicit Choice(std::string_view bytes)
    {
        std::copy_n(bytes.begin(), std::min(bytes.size(), b.size()), b.begin());
    }
};

// FNV-1a: the settings of an input without its own.
std::array<std::uint8_t, 8> hash_of(std::string_view s)
{
    std::uint64_t h = 14695981039346656037ULL;
    for (const char c : s) {
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    std::array<std::uint8_t, 8> out{};
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(h >> (8 * i));
    }
    return out;
}

// One message's request: valid JSON, with the message's title and text, valid UTF-8, no
// control characters but the text's line feeds; whether it has an "at".
bool check_request(const dingtalk::Message &m, std::size_t max_bytes)
{
    check(m.request_body.size() <= max_bytes);
    json_error_t error;
    json_t *root = json_loads(m.request_body.c_str(), JSON_REJECT_DUPLICATES, &error);
    check(root != nullptr);
    // dingtalk_message_type actioncard: a card has title and text as markdown has, buttons
    // (each a title and a URL, six at most) and never "at"
    const bool card = json_object_get(root, "actionCard") != nullptr;
    const json_t *markdown = json_object_get(root, card ? "actionCard" : "markdown");
    if (card) {
        check(std::string_view(json_string_value(json_object_get(root, "msgtype"))) ==
              "actionCard");
        check(json_object_get(root, "at") == nullptr && json_object_size(root) == 2);
        const json_t *btns = json_object_get(markdown, "btns");
        check(json_is_array(btns) && json_array_size(btns) >= 1 && json_array_size(btns) <= 6);
        for (std::size_t i = 0; i < json_array_size(btns); ++i) {
            const json_t *b = json_array_get(btns, i);
            check(json_string_length(json_object_get(b, "title")) > 0);
            check(json_string_length(json_object_get(b, "actionURL")) > 0);
        }
    }
    const json_t *title = json_object_get(markdown, "title");
    const json_t *text = json_object_get(markdown, "text");
    check(json_is_string(json_object_get(root, "msgtype")));
    check(json_is_string(title) && json_is_string(text));
    const std::string_view t(json_string_value(text), json_string_length(text));
    const std::string_view tt(json_string_value(title), json_string_length(title));
    check(valid_utf8(t) && valid_utf8(tt));
    check(t == m.text && tt == m.title);
    check(!tt.empty());
    check(!has_ascii_control(t, true) && !has_ascii_control(tt, false));
    const bool at = json_object_get(root, "at") != nullptr;
    json_decref(root);
    return at;
}

std::size_t occurrences(std::string_view text, std::string_view part)
{
    std::size_t count = 0;
    for (std::size_t at = text.find(part); at != std::string_view::npos;
         at = text.find(part, at + part.size())) {
        ++count;
    }
    return count;
}

// The notification's one message m as a section, folded with copies of itself (1 to 80 of
// them, past kMaxFolded), firing and resolved as the section is.
void check_fold(const dingtalk::Notification &n, const dingtalk::RenderOptions &opt,
                const dingtalk::Message &m, std::uint8_t choice)
{
    const std::optional<dingtalk::Section> s = dingtalk::section_of(n, opt, m, 1);
    if (!s) {
        return; // cut into pages, resumed, or its text cut to fit: it goes alone
    }
    check(!s->title.empty() && !has_ascii_control(s->title, false));
    const std::vector<dingtalk::Section> sections(1 + choice % 80, *s);
    std::size_t taken = 0;
    const dingtalk::Message f = dingtalk::render_fold(sections, opt, taken);
    check(taken <= std::min(sections.size(), dingtalk::kMaxFolded));
    if (taken == 0) {
        return;
    }
    const bool at = check_request(f, opt.max_request_bytes);
    check(at == !s->at.empty());
    check(opt.settings->keyword.empty() || f.text.find(opt.settings->keyword) != std::string::npos);
    check(f.title.rfind(std::to_string(taken) + " ", 0) == 0);
    check(s->text.empty() || occurrences(f.text, s->text) >= taken);
}

// render_messages with the settings the input chose, and every promise of its messages.
void check_messages(const dingtalk::Notification &n, const Choice &c)
{
    dingtalk::Settings s;
    s.timezone = std::make_shared<const dingtalk::TimeZone>(shanghai());
    const std::size_t which = c.b[0] % (text_templates.size() + 1); // 0: the built-in layout
    if (which > 0) {
        s.text_template = text_templates[which - 1];
    }
    s.max_messages = 1 + c.b[1] % dingtalk::kMaxMessages;
    const std::uint8_t flags = c.b[2];
    if (flags & 1) {
        s.title_template = title_templates[c.b[3] % title_templates.size()];
    }
    if (flags & 2) {
        s.mentions_from.mobiles_from = "mobiles";
        s.mentions_from.user_ids_from = "owner";
    }
    if (flags & 4) {
        s.hidden_labels = std::make_shared<const dingtalk::LabelNames>(
            dingtalk::LabelNames{"severity", "instance", "pod"});
    }
    if (flags & 8) {
        s.keyword = "prodalert";
    }
    s.silence_link = (flags & 16) == 0;
    if ((c.b[0] / (text_templates.size() + 1)) & 1) { // actionCard, with action links
        static const auto keys = [] {
            auto k = std::make_shared<dingtalk::ActionKeys>();
            std::string error;
            check(k->add_file("k1 0123456789abcdef0123456789abcdef\n", error));
            return k;
        }();
        s.action_card = true;
        s.action_keys = keys;
        s.action_url = "https://hook.example.com/dingtalk/action";
    }

    dingtalk::RenderOptions opt;
    opt.settings = &s;
    opt.now =
        dingtalk::TimePoint(std::chrono::seconds(1795450000) + std::chrono::seconds(c.b[4]) * 3600);
    // a smaller limit makes pages of few alerts: paging explored with small bodies
    opt.max_request_bytes =
        (flags & 32) ? 600 + std::size_t(c.b[5]) * 64 : dingtalk::kMaxRequestBytes;
    if (flags & 64) {
        opt.at.mobiles = {"13800000000"};
        opt.at.all = (c.b[6] & 1) != 0;
    }
    dingtalk::add_mentions_from_alerts(s.mentions_from, n, opt.at);
    if (flags & 128) { // a resume: some alerts posted by the messages taken before
        opt.messages_before = 1 + c.b[6] % 3;
        opt.posted.resize(n.alerts.size());
        for (std::size_t i = 0; i < n.alerts.size(); ++i) {
            opt.posted[i] = ((c.b[7] >> (i % 8)) & 1) != 0;
        }
    }

    const std::vector<dingtalk::Message> ms = dingtalk::render_messages(n, opt);
    const std::size_t max = std::min(s.max_messages, dingtalk::kMaxMessages);
    check(!ms.empty() && ms.size() <= max - std::min(opt.messages_before, max - 1));
    std::vector<int> covered(n.alerts.size(), 0);
    bool resolved_shown = false;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        const dingtalk::Message &m = ms[i];
        const bool at = check_request(m, opt.max_request_bytes);
        const bool card = m.request_body.rfind(R"({"msgtype":"actionCard")", 0) == 0;
        check(at == (i == 0 && !opt.at.empty() && !card)); // only the first mentions anyone
        if (card) {                                        // one firing alert, no mentions
            check(i > 0 || opt.at.empty());
            std::size_t firing = 0;
            for (std::size_t k = 0; k < m.shown; ++k) {
                firing += n.alerts[m.alerts[k]].status == dingtalk::Status::firing ? 1 : 0;
            }
            check(firing == 1);
        }
        check(s.keyword.empty() || m.text.find(s.keyword) != std::string::npos);
        if (ms.size() > 1 || opt.messages_before > 0) {
            const std::size_t of = opt.messages_before + ms.size();
            check(ends_with(m.title, " (" + std::to_string(opt.messages_before + i + 1) + "/" +
                                         std::to_string(of) + ")"));
        }
        check(i + 1 == ms.size() || m.omitted == 0); // "N more" only in the last
        check(m.shown <= m.alerts.size());
        check(i + 1 == ms.size() || m.alerts.size() == m.shown);
        for (std::size_t k = 0; k < m.alerts.size(); ++k) {
            const std::size_t a = m.alerts[k];
            check(a < n.alerts.size());
            check(a >= opt.posted.size() || !opt.posted[a]); // posted before: never again
            covered[a] += 1;
            if (k < m.shown) { // firing first, over all messages
                const bool firing = n.alerts[a].status == dingtalk::Status::firing;
                check(!(firing && resolved_shown));
                resolved_shown = resolved_shown || !firing;
            }
        }
    }
    for (std::size_t a = 0; a < n.alerts.size(); ++a) {
        const bool posted = a < opt.posted.size() && opt.posted[a];
        check(covered[a] == (posted ? 0 : 1)); // every alert left: exactly once
    }
    if (ms.size() == 1) {
        check_fold(n, opt, ms[0], c.b[7]);
        std::size_t left = 0;
        for (std::size_t a = 0; a < n.alerts.size(); ++a) {
            left += a >= opt.posted.size() || !opt.posted[a];
        }
        check(ms[0].shown + ms[0].omitted == left + n.not_kept());
    }
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    json_object_seed(1); // the same hash order on every run: reproducible findings
    shanghai();
    const std::string repo = repository();
    std::string error;
    for (const char *file : kTemplateFiles) {
        text_templates.push_back(dingtalk::Template::parse(read_file(repo + "/" + file),
                                                           dingtalk::Template::Kind::text, error));
        check(text_templates.back() != nullptr);
    }
    for (const char *source : kTitleTemplates) {
        title_templates.push_back(
            dingtalk::Template::parse(source, dingtalk::Template::Kind::title, error));
        check(title_templates.back() != nullptr);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    std::string_view body(reinterpret_cast<const char *>(data), size);
    std::array<std::uint8_t, 8> bytes{};
    const std::size_t nul = body.rfind('\0');
    if (nul != std::string_view::npos) {
        const std::string_view chosen = body.substr(nul + 1);
        std::copy_n(chosen.begin(), std::min(chosen.size(), bytes.size()), bytes.begin());
        body = body.substr(0, nul);
    } else {
        bytes = hash_of(body);
    }
    const dingtalk::ParseResult parsed = dingtalk::parse_notification(body);
    if (!parsed.notification) {
        check(!parsed.error.empty());
        check(valid_utf8(parsed.error));
        return 0;
    }
    const dingtalk::Notification &n = *parsed.notification;
    check(!n.alerts.empty());
    check(n.truncated_alerts >= 0);
    check(n.alerts.size() <= dingtalk::ParseLimits().max_alerts);

    static dingtalk::Settings settings = [] {
        dingtalk::Settings s;
        s.timezone = std::make_shared<const dingtalk::TimeZone>(shanghai());
        return s;
    }();
    dingtalk::RenderOptions opt;
    opt.settings = &settings;
    const dingtalk::Message m = dingtalk::render_message(n, opt);
    check(m.shown >= 1 && m.shown + m.omitted == n.total());
    check(!check_request(m, dingtalk::kMaxRequestBytes));
    check(!m.text.empty());
    check(m.text.find('<') == std::string::npos && m.text.find('>') == std::string::npos);
    check(headings_are_the_modules(m.text));

    check_messages(
        n, Choice(std::string_view(reinterpret_cast<const char *>(bytes.data()), bytes.size())));
    return 0;
}
