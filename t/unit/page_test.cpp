// The action pages: hostile label values stay text, the pages load nothing from anywhere and
// run nothing, and the form carries the link and its token.
#include "page.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

using namespace dingtalk;

namespace
{

const std::string kHostile[] = {
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "' autofocus onfocus='alert(1)",
    "</textarea><form action=https://evil.example/>",
    "<style>body{background:url(https://evil.example/x)}</style>",
    "a\x01\x1b[31mb",
};

ConfirmPage hostile_confirm()
{
    ConfirmPage p;
    for (const std::string &h : kHostile) {
        p.labels.emplace_back(h, h);
    }
    p.duration = kHostile[0];
    p.ends = kHostile[1];
    p.link_token = kHostile[2];
    p.form_token = kHostile[3];
    return p;
}

// The page's tags alone, each attribute value emptied: what a browser would act on. Sound
// because the renderer double-quotes every value and escapes '"' and '<' in it.
std::string markup(const std::string &page)
{
    std::string tags;
    bool in_tag = false;
    for (const char c : page) {
        in_tag = in_tag ? c != '>' : c == '<';
        if (in_tag || c == '>') {
            tags.push_back(c);
        }
    }
    return std::regex_replace(tags, std::regex("=\"[^\"]*\""), "=\"\"");
}

// Nothing in the page but the markup the renderer writes itself.
void expect_inert(const std::string &page)
{
    // the one action the page has: its own path, without the query that holds the link
    std::string plain = page;
    const std::string form = "<form method=\"post\" action=\"?\">";
    if (plain.find(form) != std::string::npos) {
        plain.replace(plain.find(form), form.size(), "<form method=\"post\">");
    }
    const std::string tags = markup(plain);
    for (const char *bad : {"<script", "<img", "<iframe", "<link", "<base",
                            "src=", "href=", "action=", "autofocus", "formaction"}) {
        EXPECT_EQ(tags.find(bad), std::string::npos) << bad << " in " << tags;
    }
    EXPECT_FALSE(std::regex_search(tags, std::regex("\\son[a-z]+\\s*=", std::regex::icase)))
        << "an event handler attribute in " << tags;
    EXPECT_EQ(page.find('\x01'), std::string::npos);
    EXPECT_EQ(page.find('\x1b'), std::string::npos);
    EXPECT_EQ(page.substr(0, page.find("</style>")).find("url("), std::string::npos);
    EXPECT_EQ(page.find("<style>"), page.rfind("<style>"));
    EXPECT_EQ(tags.find("<form"), tags.rfind("<form"));
}

} // namespace

TEST(HtmlEscape, EveryMarkupCharacter)
{
    EXPECT_EQ(html_escape("<a href=\"x\">'&'</a>"),
              "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
    EXPECT_EQ(html_escape("tab\tnew\nline\x7f\x02"), "tab\tnew\nline\x7f");
    EXPECT_EQ(html_escape("张三 ✓"), "张三 ✓");
}

TEST(ConfirmPageTest, HostileLabelsStayText)
{
    const std::string page = confirm_page(hostile_confirm());
    expect_inert(page);
    EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
    EXPECT_NE(page.find("value=\"&#39; autofocus onfocus=&#39;alert(1)\""), std::string::npos);
    EXPECT_EQ(page.find("<form"), page.rfind("<form"));
}

TEST(ConfirmPageTest, TheFormPostsTheLinkAndItsTokenToItself)
{
    ConfirmPage p;
    p.labels = {{"alertname", "DiskFull"}, {"instance", "db-1:9100"}};
    p.duration = duration_text(7200);
    p.ends = "2027-01-15 10:00 UTC";
    p.link_token = "k1.AAAA.BBBB";
    p.form_token = "1000.CCCC";
    const std::string page = confirm_page(p);
    expect_inert(page);
    EXPECT_EQ(page.rfind("<!DOCTYPE html>\n", 0), 0u);
    EXPECT_NE(page.find("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"),
              std::string::npos);
    EXPECT_NE(page.find("<form method=\"post\" action=\"?\">"), std::string::npos)
        << "the same path, without the query that holds the link";
    EXPECT_NE(page.find("<input type=\"hidden\" name=\"l\" value=\"k1.AAAA.BBBB\">"),
              std::string::npos);
    EXPECT_NE(page.find("<input type=\"hidden\" name=\"t\" value=\"1000.CCCC\">"),
              std::string::npos);
    EXPECT_NE(page.find("name=\"name\" maxlength=\"21\""), std::string::npos);
    EXPECT_NE(page.find("name=\"comment\" rows=\"3\" maxlength=\"85\""), std::string::npos);
    EXPECT_NE(page.find("<th>instance</th><td>db-1:9100</td>"), std::string::npos);
    EXPECT_NE(page.find("<button type=\"submit\">静默2小时</button>"), std::string::npos);
    EXPECT_NE(page.find("<html lang=\"zh-CN\">"), std::string::npos);
    EXPECT_NE(page.find("<title>静默这条告警？</title>"), std::string::npos);
    EXPECT_NE(page.find("<label for=\"name\">您的姓名</label>"), std::string::npos);
}

TEST(ResultPageTest, HostileDetailsStayText)
{
    ResultPage p;
    p.heading = kHostile[0];
    p.message = kHostile[4];
    for (const std::string &h : kHostile) {
        p.details.emplace_back(h, h);
    }
    const std::string page = result_page(p);
    expect_inert(page);
    EXPECT_EQ(page.find("<form"), std::string::npos);
    EXPECT_NE(page.find("<h1 class=\"refused\">&lt;script&gt;"), std::string::npos);
}

TEST(ResultPageTest, SaysWhatWasDone)
{
    ResultPage p;
    p.ok = true;
    p.heading = "已在静默中";
    p.message = "这条告警已经在静默中：没有做任何更改。";
    p.details = {{"创建者", "DingTalk: 李四"}, {"截止", "2027-01-15T10:00:00Z"}};
    const std::string page = result_page(p);
    EXPECT_NE(page.find("<h1 class=\"ok\">已在静默中</h1>"), std::string::npos);
    EXPECT_NE(page.find("<th>创建者</th><td>DingTalk: 李四</td>"), std::string::npos);
}

TEST(DurationText, Readable)
{
    EXPECT_EQ(duration_text(7200), "2小时");
    EXPECT_EQ(duration_text(86400), "1天");
    EXPECT_EQ(duration_text(5400), "1小时30分钟");
    EXPECT_EQ(duration_text(86400 + 6 * 3600), "1天6小时");
    EXPECT_EQ(duration_text(45), "45秒");
    EXPECT_EQ(duration_text(0), "0秒");
    EXPECT_EQ(silence_duration_text(7 * 86400, true), "直到恢复（最长7天）");
    EXPECT_EQ(silence_duration_text(1800, false), "30分钟");
}

TEST(PageHeaders, TheSecurityPolicyAllowsNoScriptNorFraming)
{
    const std::string csp(kPageSecurityPolicy);
    EXPECT_EQ(csp.rfind("default-src 'none';", 0), 0u);
    EXPECT_NE(csp.find("form-action 'self'"), std::string::npos);
    EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
    EXPECT_EQ(csp.find("script-src"), std::string::npos);
}
