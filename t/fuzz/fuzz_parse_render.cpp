// libFuzzer target: any body -> parse_notification -> render_message, checking the promises the
// nginx glue relies on. A broken promise is __builtin_trap(), which libFuzzer reports as a crash.
//
//   a parse that fails has an error, in valid UTF-8 (it goes into the reply's JSON "reason");
//   a parse that succeeds renders a request body within kMaxRequestBytes that is valid JSON,
//   whose markdown.text is valid UTF-8, equal to Message::text, free of ASCII control
//   characters other than the line feeds the module writes, free of raw < and >, and whose
//   lines start with '#' only for the module's own headings; every alert is either shown or
//   counted as omitted, and at least one is shown. The same body is then rendered with the
//   default template (DINGTALK_FUZZ_TEMPLATE), which must fit too.
//
// Cost is an oracle as well: run.sh gives libFuzzer a time limit per input and limits on RSS
// and on any single allocation, with inputs up to 1 MiB (nginx's default body size), so a
// shape of body whose parse + render is slow or fat is reported like a crash.
// Build and run: t/fuzz/run.sh [seconds]
#include "alert.hpp"
#include "render.hpp"
#include "template.hpp"
#include "timezone.hpp"

#include <jansson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

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

std::shared_ptr<const dingtalk::Template> default_template;

} // namespace

extern "C" int LLVMFuzzerInitialize(int *, char ***)
{
    json_object_seed(1); // the same hash order on every run: reproducible findings
    shanghai();
    if (const char *path = std::getenv("DINGTALK_FUZZ_TEMPLATE")) {
        std::ifstream in(path, std::ios::binary);
        std::string source((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        std::string error;
        default_template = dingtalk::Template::parse(source, dingtalk::Template::Kind::text, error);
        check(default_template != nullptr);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    const std::string_view body(reinterpret_cast<const char *>(data), size);
    const dingtalk::ParseResult parsed = dingtalk::parse_notification(body);
    if (!parsed.notification) {
        check(!parsed.error.empty());
        check(valid_utf8(parsed.error));
        return 0;
    }
    const dingtalk::Notification &n = *parsed.notification;
    check(!n.alerts.empty());
    check(n.truncated_alerts >= 0);

    static dingtalk::Settings settings = [] {
        dingtalk::Settings s;
        s.timezone = std::make_shared<const dingtalk::TimeZone>(shanghai());
        return s;
    }();
    dingtalk::RenderOptions opt;
    opt.settings = &settings;
    const dingtalk::Message m = dingtalk::render_message(n, opt);
    check(m.request_body.size() <= dingtalk::kMaxRequestBytes);
    check(m.shown >= 1 && m.shown + m.omitted == n.total());
    check(n.alerts.size() <= dingtalk::ParseLimits().max_alerts);
    if (default_template) {
        static dingtalk::Settings templated = [] {
            dingtalk::Settings s = settings;
            s.text_template = default_template;
            return s;
        }();
        opt.settings = &templated;
        const dingtalk::Message t = dingtalk::render_message(n, opt);
        check(t.request_body.size() <= dingtalk::kMaxRequestBytes);
        check(t.shown + t.omitted == n.total());
    }

    json_error_t error;
    json_t *root = json_loads(m.request_body.c_str(), JSON_REJECT_DUPLICATES, &error);
    check(root != nullptr);
    const json_t *markdown = json_object_get(root, "markdown");
    const json_t *title = json_object_get(markdown, "title");
    const json_t *text = json_object_get(markdown, "text");
    check(json_is_string(json_object_get(root, "msgtype")));
    check(json_is_string(title) && json_is_string(text));
    const std::string_view t(json_string_value(text), json_string_length(text));
    const std::string_view tt(json_string_value(title), json_string_length(title));
    check(valid_utf8(t) && valid_utf8(tt));
    check(t == m.text && tt == m.title);
    check(!t.empty() && !tt.empty());
    check(!has_ascii_control(t, true) && !has_ascii_control(tt, false));
    check(t.find('<') == std::string_view::npos && t.find('>') == std::string_view::npos);
    check(headings_are_the_modules(t));
    json_decref(root);
    return 0;
}
