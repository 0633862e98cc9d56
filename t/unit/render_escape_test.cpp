// Escaping: markdown and HTML specials, line breaks, UTF-8 cuts, links, and JSON sizes.
#include "render.hpp"
#include "template.hpp"

#include "json.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>
#include <string>

using namespace dingtalk;
using dingtalk_test::is_valid_utf8;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;
using dingtalk_test::render;

namespace
{

// Every line of a rendered text is one the renderer wrote itself: a value can never begin a line.
void expect_only_own_lines(const std::string &text)
{
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        const bool ok = line.empty() || line.rfind("### ", 0) == 0 || line.rfind("#### ", 0) == 0 ||
                        line == "---" || line.rfind("**", 0) == 0 ||
                        line.rfind("[查看图表](http", 0) == 0;
        EXPECT_TRUE(ok) << "line not written by the renderer: '" << line << "'";
    }
}

} // namespace

TEST(UnitTestHelpers, Utf8ValidatorRejectsBrokenSequences)
{
    EXPECT_TRUE(is_valid_utf8("plain 中文 \xF0\x9F\x94\xA5"));
    EXPECT_FALSE(is_valid_utf8("\xE4\xB8"));         // cut after two of three bytes
    EXPECT_FALSE(is_valid_utf8("\xF0\x9F\x94"));     // cut emoji
    EXPECT_FALSE(is_valid_utf8("a\x80"));            // lone continuation
    EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));         // overlong '/'
    EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));     // surrogate
    EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80")); // above U+10FFFF
}

TEST(EscapeMarkdown, SpecialsAreBackslashed)
{
    EXPECT_EQ(escape_markdown("a*b_c`d[e]f~g\\h", 1000), "a\\*b\\_c\\`d\\[e\\]f\\~g\\\\h");
    EXPECT_EQ(escape_markdown("**bold** _it_", 1000), "\\*\\*bold\\*\\* \\_it\\_");
    EXPECT_EQ(escape_markdown("[x](javascript:alert(1))", 1000), "\\[x\\](javascript:alert(1))");
}

TEST(EscapeMarkdown, HtmlSpecialsBecomeEntities)
{
    EXPECT_EQ(escape_markdown("<script>alert(1)</script>", 1000),
              "&lt;script&gt;alert(1)&lt;/script&gt;");
    EXPECT_EQ(escape_markdown("a && b", 1000), "a &amp;&amp; b");
    EXPECT_EQ(escape_markdown("&lt;", 1000), "&amp;lt;");
}

TEST(EscapeMarkdown, LineBreaksAndTabsBecomeOneSpace)
{
    EXPECT_EQ(escape_markdown("a\r\nb\tc\nd", 1000), "a b c d");
    EXPECT_EQ(escape_markdown("a\n\n\n\nb", 1000), "a b");
    EXPECT_EQ(escape_markdown("a\x01\x1f\x7f"
                              "b",
                              1000),
              "a b");
    EXPECT_EQ(escape_markdown("line1\n# heading\n- item", 1000), "line1 # heading - item");
    EXPECT_EQ(escape_markdown("", 1000), "");
}

// Invisible format characters could make a value show other text than it holds (a right-to-left
// override turns "txt.exe" around; a zero-width space splits a word a reader checks).
TEST(EscapeMarkdown, BidiAndZeroWidthCharactersBecomeSpaces)
{
    const char *const invisible[] = {
        "\u202A", "\u202B", "\u202C", "\u202D", "\u202E", // embeddings and overrides
        "\u2066", "\u2067", "\u2068", "\u2069",           // isolates
        "\u200B", "\u200C", "\u200D", "\u200E", "\u200F", // zero width, marks
        "\uFEFF", "\u2060", "\u061C",                     // BOM, word joiner, Arabic mark
    };
    for (const char *c : invisible) {
        const std::string value = std::string("pay") + c + "pal";
        EXPECT_EQ(escape_markdown(value, 1000), "pay pal") << value;
        EXPECT_EQ(plain_line(value, 1000), "pay pal") << value;
    }
    // visible characters nearby stay
    EXPECT_EQ(escape_markdown("\u2010\u2011\u2070\u00AD", 1000), "\u2010\u2011\u2070\u00AD");
}

TEST(EscapeMarkdown, CutsAtTheLimitWithAnEllipsis)
{
    EXPECT_EQ(escape_markdown("abc", 3), "abc");
    EXPECT_EQ(escape_markdown("abcd", 3), "abc…");
    EXPECT_EQ(escape_markdown(std::string(5000, 'x'), 100), std::string(100, 'x') + "…");
}

TEST(EscapeMarkdown, NeverCutsInsideAUtf8Character)
{
    const std::string mixed = "a中😀b\\é支付服务异常🔥\n<";
    for (std::size_t max = 0; max < 3 * mixed.size(); ++max) {
        const std::string out = escape_markdown(mixed + mixed + mixed, max);
        EXPECT_TRUE(is_valid_utf8(out)) << "max " << max << ": " << out;
        EXPECT_LE(out.size(), max + 8) << "max " << max;
    }
    std::string han;
    for (int i = 0; i < 1000; ++i) {
        han += "告";
    }
    const std::string cut = escape_markdown(han, 100);
    EXPECT_TRUE(is_valid_utf8(cut));
    EXPECT_EQ(cut, han.substr(0, 102) + "…");
}

TEST(EscapeRender, ValuesCannotStartMarkdownLines)
{
    const std::string evil =
        "x\n\n# Injected heading\r\n- item\n\n> quote\n\n[click](http://evil)\n"
        "@13800000000\n---\n**告警级别**: fake";
    Alert a = make_alert(Status::firing,
                         {{"alertname", evil},
                          {"severity", evil},
                          {"pod", evil},
                          {"namespace", evil},
                          {"instance", evil},
                          {evil, evil}},
                         {{"message", evil}});
    a.generator_url = "http://prometheus.example/graph?g0.expr=up\n# x";
    Notification n = make_notification({a});
    n.group_labels = {{"alertname", evil}};
    const Message m = render(n);
    expect_only_own_lines(m.text);
    EXPECT_EQ(m.title.find('\n'), std::string::npos) << m.title;
    EXPECT_EQ(m.text.find("[click](http://evil)"), std::string::npos);
    EXPECT_EQ(dingtalk_test::occurrences(m.text, "\n**告警级别**: "), 1u);
    EXPECT_NE(m.text.find("\\*\\*告警级别\\*\\*: fake"), std::string::npos) << m.text;
}

TEST(EscapeRender, LongMultibyteValuesStayValidUtf8)
{
    std::string emoji, han;
    for (int i = 0; i < 2000; ++i) {
        emoji += "🔥";
        han += "支付服务";
    }
    for (std::size_t shift = 0; shift < 4; ++shift) {
        const std::string pad(shift, 'p');
        const Alert a = make_alert(Status::firing,
                                   {{"pod", pad + emoji},
                                    {"namespace", pad + han},
                                    {"zone", pad + han},
                                    {"severity", pad + emoji}},
                                   {{"message", pad + han + emoji}});
        Notification n = make_notification({a, a});
        n.group_labels = {{"alertname", pad + han}};
        const Message m = render(n);
        EXPECT_TRUE(is_valid_utf8(m.title)) << m.title;
        EXPECT_TRUE(is_valid_utf8(m.text));
        EXPECT_TRUE(is_valid_utf8(m.request_body));
        JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, nullptr));
        EXPECT_TRUE(root) << "jansson refuses invalid UTF-8, so the body would be broken";
        EXPECT_NE(m.text.find("…"), std::string::npos);
    }
}

TEST(SafeLinkUrl, OnlyHttpAndHttps)
{
    EXPECT_EQ(safe_link_url("http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1"),
              "http://prometheus.example:9090/graph?g0.expr=up&g0.tab=1");
    EXPECT_EQ(safe_link_url("HTTPS://Prometheus.example/graph"),
              "HTTPS://Prometheus.example/graph");
    for (const char *bad : {"javascript:alert(1)", "JavaScript:alert(document.cookie)",
                            "data:text/html,<script>alert(1)</script>", "ftp://example.com/x",
                            "file:///etc/passwd", "//evil.example/x", " http://example.com",
                            "vbscript:msgbox", "http:/example.com", "", "prometheus:9090"}) {
        EXPECT_EQ(safe_link_url(bad), "") << bad;
    }
}

TEST(SafeLinkUrl, PercentEncodesWhatWouldBreakTheLink)
{
    EXPECT_EQ(safe_link_url("http://x.example/a b(c)"), "http://x.example/a%20b%28c%29");
    EXPECT_EQ(safe_link_url("http://x.example/q?expr=rate(x[5m]) > 0"),
              "http://x.example/q?expr=rate%28x[5m]%29%20%3E%200");
    EXPECT_EQ(safe_link_url("http://x.example/\"<`\\"), "http://x.example/%22%3C%60%5C");
    EXPECT_EQ(safe_link_url("http://x.example/\n\t"), "http://x.example/%0A%09");
    EXPECT_EQ(safe_link_url("http://x.example/告警"), "http://x.example/%E5%91%8A%E8%AD%A6");
}

TEST(SafeLinkUrl, TooLongIsDropped)
{
    const std::string base = "http://x.example/";
    EXPECT_EQ(safe_link_url(base + std::string(2048 - base.size(), 'a')).size(), 2048u);
    EXPECT_EQ(safe_link_url(base + std::string(2049 - base.size(), 'a')), "");
    EXPECT_EQ(safe_link_url(base + std::string(1000, ' ')), "") << "too long once encoded";
}

TEST(EscapeRender, GeneratorUrlLinks)
{
    Alert good = make_alert(Status::firing, {{"alertname", "A"}});
    good.generator_url = "http://prometheus.example/graph?g0.expr=rate(x[5m]) > 0";
    Alert evil = make_alert(Status::firing, {{"alertname", "B"}});
    evil.generator_url = "javascript:alert(1)";
    const std::string text = render(make_notification({good, evil})).text;
    EXPECT_EQ(dingtalk_test::occurrences(text, "[查看图表]("), 1u) << text;
    EXPECT_NE(
        text.find("[查看图表](http://prometheus.example/graph?g0.expr=rate%28x[5m]%29%20%3E%200)"),
        std::string::npos)
        << text;
    EXPECT_EQ(text.find("javascript"), std::string::npos) << text;
}

TEST(JsonEscapedSize, MatchesJansson)
{
    const std::string samples[] = {
        "",
        "plain ascii",
        "quote \" and backslash \\ and slash /",
        "line\nbreak\r\ntab\tbell\x07 bs\b ff\f",
        std::string("nul-free controls \x01\x02\x1b\x1f end"),
        "del \x7f",
        "中文 😀 \xE2\x80\xA8 line separator",
        "**告警级别**: critical\n\n",
    };
    for (const std::string &s : samples) {
        JsonPtr j(json_stringn(s.data(), s.size()));
        ASSERT_TRUE(j) << s;
        // A bare string needs JSON_ENCODE_ANY; the literal is the escaped text in quotes.
        char *raw = json_dumps(j.get(), JSON_COMPACT | JSON_ENCODE_ANY);
        ASSERT_NE(raw, nullptr);
        const std::string literal(raw);
        std::free(raw);
        EXPECT_EQ(json_escaped_size(s), literal.size() - 2) << literal;
    }
}

// Every byte JSON escapes, at every offset within the eight-byte steps of the writer, next to
// another and alone: the request body says exactly the text, as jansson reads it back.
TEST(JsonEscapedSize, BodyCarriesTheTextAtEveryOffset)
{
    const std::string specials[] = {"\"", "\\", "\t", "\x01", "\x1f", "\"\\", "\\\\\\"};
    for (const std::string &special : specials) {
        for (std::size_t offset = 0; offset < 20; ++offset) {
            const std::string source =
                std::string(offset, 'p') + special + "tail" + special + std::string(9, 'q');
            std::string error;
            Settings s = dingtalk_test::settings();
            RenderOptions opt = dingtalk_test::options(s);
            s.text_template = Template::parse(source, Template::Kind::text, error);
            ASSERT_TRUE(s.text_template) << error;
            const Message m = dingtalk::render_message(
                make_notification({make_alert(Status::firing, {{"alertname", "A"}})}), opt);
            JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, nullptr));
            ASSERT_TRUE(root) << m.request_body;
            const json_t *text = json_object_get(json_object_get(root.get(), "markdown"), "text");
            ASSERT_EQ(m.text.find(source), 0u) << m.text;
            EXPECT_EQ(std::string(json_string_value(text), json_string_length(text)), m.text);
            EXPECT_EQ(json_escaped_size(m.text) + 2,
                      m.request_body.find(R"(}})") - m.request_body.find(R"("text":)") - 7)
                << m.request_body;
        }
    }
}
