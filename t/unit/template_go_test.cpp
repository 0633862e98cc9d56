// What Go bridge templates do, in our template language (issue #24): any label's or
// annotation's value as a condition, counts compared with a number, Go time layouts, blocks
// written once and used several times, and the functions Go templates use most; each checked
// when the template is parsed.
#include "render.hpp"
#include "template.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;

namespace
{

std::string render(const std::string &src, const Notification &n,
                   Template::Kind kind = Template::Kind::text)
{
    std::string error;
    const auto t = Template::parse(src, kind, error);
    EXPECT_TRUE(t) << src << ": " << error;
    if (!t) {
        return "";
    }
    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    opt.now = *parse_rfc3339("2026-11-23T18:07:05Z");
    (kind == Template::Kind::text ? s.text_template : s.title_template) = t;
    const Message m = render_message(n, opt);
    return kind == Template::Kind::text ? m.text : m.title;
}

std::string refused(const std::string &src)
{
    std::string error;
    EXPECT_FALSE(Template::parse(src, Template::Kind::text, error)) << src;
    return error;
}

Notification group()
{
    Notification n = make_notification(
        {make_alert(Status::firing,
                    {{"alertname", "A"},
                     {"env", "prod.eu-west/1"},
                     {"team", "数据库"},
                     {"instance", "db_01:9100"}},
                    {{"summary", "disk 95% full"}}),
         make_alert(Status::firing, {{"alertname", "B"}, {"env", "staging"}}),
         make_alert(Status::resolved, {{"alertname", "C"}, {"env", "prod.eu-west/1"}})});
    n.group_labels = {{"env", "prod.eu-west/1"}};
    n.common_labels = {{"env", "prod.eu-west/1"}};
    return n;
}

} // namespace

TEST(TemplateGo, AnyLabelsValueIsACondition)
{
    const Notification n = group();
    // dots, dashes, slashes and non-ASCII written as they are
    EXPECT_EQ(render("{{#alerts}}{{#label_is.env.prod.eu-west/1}}{{alertname}} "
                     "{{/label_is.env.prod.eu-west/1}}{{/alerts}}",
                     n),
              "A C");
    EXPECT_EQ(render("{{#alerts}}{{^label_is.env.prod.eu-west/1}}{{alertname}}"
                     "{{/label_is.env.prod.eu-west/1}}{{/alerts}}",
                     n),
              "B");
    EXPECT_EQ(render("{{#alerts}}{{#label_is.team.数据库}}{{alertname}}{{/label_is.team.数据库}}"
                     "{{/alerts}}",
                     n),
              "A");
    // a missing label is the empty value, as Go's eq sees it
    EXPECT_EQ(
        render("{{#alerts}}{{#label_is.team.}}{{alertname}}{{/label_is.team.}}{{/alerts}}", n),
        "BC");
    EXPECT_EQ(render("{{#alerts}}{{#annotation_is.summary.disk 95%25 full}}{{alertname}}"
                     "{{/annotation_is.summary.disk 95%25 full}}{{/alerts}}",
                     n),
              "A");
    // the group's; an alert's name outside an alert is false
    EXPECT_EQ(render("{{#group_label_is.env.prod.eu-west/1}}g{{/group_label_is.env.prod.eu-west/1}}"
                     "{{#common_label_is.env.staging}}c{{/common_label_is.env.staging}}"
                     "{{^label_is.env.staging}}!{{/label_is.env.staging}}",
                     n),
              "g!");
}

TEST(TemplateGo, CountsComparedWithANumber)
{
    const Notification n = group();
    EXPECT_EQ(render("{{#firing_count_gt.1}}many{{/firing_count_gt.1}}"
                     "{{#resolved_count_gt.1}}!{{/resolved_count_gt.1}}"
                     "{{#alert_count_lt.4}} <4{{/alert_count_lt.4}}",
                     n),
              "many <4");
    // the first two alerts, then "and N more"
    EXPECT_EQ(render("{{#alerts}}{{^index_gt.2}}{{alertname}} {{/index_gt.2}}{{/alerts}}"
                     "{{#alert_count_gt.2}}and more{{/alert_count_gt.2}}",
                     n),
              "A B and more");
    EXPECT_EQ(
        render(
            "{{#shown_gt.2}}{{shown}} shown{{/shown_gt.2}}{{^omitted_gt.0}}, all{{/omitted_gt.0}}",
            n),
        "3 shown, all");
}

TEST(TemplateGo, GoTimeLayouts)
{
    const Notification n = group();
    EXPECT_EQ(render("{{#alerts}}{{starts_at \"Jan 2 15:04 MST\"}}|{{ends_at \"15:04\"}};"
                     "{{/alerts}} {{now \"2006-01-02T15:04:05Z07:00\"}} {{now}}",
                     n),
              "Nov 24 00:04 CST|-;Nov 24 00:04 CST|-;Nov 24 00:04 CST|00:34; "
              "2026-11-24T02:07:05+08:00 2026-11-24 02:07:05 +08:00");
    EXPECT_EQ(render("{{now `2006年1月2日`}}", n, Template::Kind::title), "2026年11月24日");
}

TEST(TemplateGo, BlocksWrittenOnceUsedTwice)
{
    const Notification n = group();
    const std::string src = "{{<line}}\n"
                            "- {{alertname}} ({{>env}})\n"
                            "{{/line}}\n"
                            "{{<env}}{{labels.env}}{{/env}}\n"
                            "firing:\n"
                            "{{#firing}}\n"
                            "{{>line}}\n"
                            "{{/firing}}\n"
                            "resolved:\n"
                            "{{#resolved}}\n"
                            "{{>line}}\n"
                            "{{/resolved}}\n";
    EXPECT_EQ(render(src, n), "firing:\n- A (prod.eu-west/1)\n- B (staging)\nresolved:\n"
                              "- C (prod.eu-west/1)");
}

TEST(TemplateGo, Functions)
{
    const Notification n = group();
    const std::string a = "{{#alerts}}{{#first}}";
    const std::string z = "{{/first}}{{/alerts}}";
    EXPECT_EQ(render(a + "{{#title_case}}hello wide-world_x{{/title_case}}" + z, n),
              "Hello Wide-World_x");
    // never half a character, nor half an escape (db\\_01)
    EXPECT_EQ(render(a +
                         "{{#trunc 4}}{{labels.team}}{{/trunc}}|{{#trunc 3}}{{labels.instance}}"
                         "{{/trunc}}" +
                         z,
                     n),
              "数|db");
    EXPECT_EQ(render(a + "{{#replace \".\" \"·\"}}{{labels.env}}{{/replace}}" + z, n),
              "prod·eu-west/1");
    EXPECT_EQ(render(a + "{{#default \"none\"}}{{labels.owner}}{{/default}}" + z, n), "none");
    EXPECT_EQ(render("{{#join \", \"}}\n{{#alerts}}\n{{alertname}}\n{{/alerts}}\n{{/join}}", n),
              "A, B, C");
    EXPECT_EQ(render(a +
                         "{{#regex_replace `^(?P<host>[^:]+):\\d+$` \"${host}\"}}"
                         "{{labels_raw.instance}}{{/regex_replace}}" +
                         z,
                     n),
              "db_01");
    // Go's way with empty matches: "a" and the empty string after it
    EXPECT_EQ(render(a + "{{#regex_replace \"a*\" \"-\"}}baac{{/regex_replace}}" + z, n), "-b-c-");
}

TEST(TemplateGo, RegexReplaceIsLinearOnAMegabyte)
{
    // (a+)+$ backtracks exponentially in a backtracking engine; RE2 does not backtrack
    Notification n = group();
    n.alerts[0].annotations["summary"] = std::string(1 << 20, 'a') + "!";
    const auto start = std::chrono::steady_clock::now();
    const std::string out = render("{{#alerts}}{{#first}}{{#regex_replace \"(a+)+$\" \"x\"}}"
                                   "{{annotations_raw.summary}}{{/regex_replace}}{{/first}}"
                                   "{{/alerts}}",
                                   n);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
    EXPECT_FALSE(out.empty());
}

TEST(TemplateGo, WrongUsesFailWithTheirLine)
{
    EXPECT_EQ(refused("\n{{label_is.env.prod}}"),
              "line 2: label_is is a condition: {{#label_is...}}...{{/label_is...}} (or {{^...}})");
    EXPECT_NE(refused("{{#label_is.env}}x{{/label_is.env}}").find("label_is.NAME.VALUE"),
              std::string::npos);
    EXPECT_NE(refused("{{#label_is.e.50%}}x{{/label_is.e.50%}}").find("%25"), std::string::npos);
    EXPECT_NE(refused("{{#firing_count_gt.many}}{{/firing_count_gt.many}}").find("a number"),
              std::string::npos);
    EXPECT_NE(refused("{{#alerts}}\n{{starts_at \"YYYY-MM-DD\"}}{{/alerts}}")
                  .find("line 2: \"YYYY-MM-DD\" is not a Go time layout"),
              std::string::npos);
    EXPECT_NE(refused("{{trunc 3}}").find("Go template syntax \"trunc 3\": write {{#trunc 3}}"),
              std::string::npos);
    EXPECT_NE(refused("{{^trunc 3}}{{/trunc}}").find("trunc is a function"), std::string::npos);
    EXPECT_NE(refused("{{#trunc x}}a{{/trunc}}").find("trunc is written"), std::string::npos);
    EXPECT_NE(refused("{{#regex_replace \"(a\" \"\"}}a{{/regex_replace}}").find("missing )"),
              std::string::npos);
    EXPECT_NE(refused("{{#regex_replace \"(a)\" \"$2\"}}a{{/regex_replace}}")
                  .find("\"$2\" names no group"),
              std::string::npos);
    EXPECT_NE(refused("{{#trunc 3}}a{{/replace}}").find("{{/replace}} where {{/trunc}}"),
              std::string::npos);
    EXPECT_NE(refused("\n\n{{>footer}}").find("line 3: no block \"footer\""), std::string::npos);
    EXPECT_NE(refused("{{<a}}{{>a}}{{/a}}{{>a}}").find("uses blocks over 8 deep"),
              std::string::npos);
    EXPECT_NE(refused("{{<a}}\n\n{{nosuch}}{{/a}}").find("line 3: unknown name"),
              std::string::npos);
}

TEST(TemplateGo, GoSyntaxSaysWhatToWriteInstead)
{
    const std::pair<const char *, const char *> cases[] = {
        {"{{ .Labels.alertname }}", "write {{labels.alertname}}"},
        {"{{- index .Annotations \"summary\" -}}", "write {{annotations.summary}}"},
        {"{{ if eq .Status \"firing\" }}", "write {{#firing}}...{{/firing}} in an alert"},
        {"{{ if eq .Labels.env \"prod\" }}", "write {{#label_is.env.prod}}"},
        {"{{ if gt (len .Alerts.Firing) 3 }}", "write {{#firing_count_gt.3}}"},
        {"{{ if ge (len .Alerts) 3 }}", "write {{^alert_count_lt.3}}"},
        {"{{ else }}", "{{/name}}{{^name}}"},
        {"{{ end }}", "{{/name}}, the section's own name"},
        {"{{ range .Alerts.Resolved }}", "write {{#resolved}}...{{/resolved}}"},
        {"{{ range .Labels.SortedPairs }}", "write {{#label_list}}"},
        {"{{ define \"alert\" }}", "write {{<alert}}...{{/alert}} and {{>alert}}"},
        {"{{ template \"ding.link.title\" . }}", "write {{title}}"},
        {"{{ .StartsAt.Local.Format \"15:04\" }}", "write {{starts_at \"15:04\"}}"},
        {"{{ .Labels.severity | toUpper }}", "write {{#upper}}{{labels.severity}}{{/upper}}"},
        {"{{ reReplaceAll \":[0-9]+\" \"\" .Labels.instance }}",
         "write {{#regex_replace \":[0-9]+\" \"\"}}{{labels.instance}}{{/regex_replace}}"},
        {"{{ .Labels.instance | urlquery }}", "write {{labels_url.instance}}"},
        {"{{ $.CommonLabels.team }}", "write {{common_labels.team}}"},
        {"{{ trunc 20 .Annotations.summary }}", "write {{#trunc 20}}{{annotations.summary}}"},
        {"{{/* note */}}", "a comment is {{! ... }}"},
    };
    for (const auto &[go, hint] : cases) {
        const std::string error = refused(std::string("ok\n") + go + "\n");
        EXPECT_EQ(error.rfind("line 2: Go template syntax", 0), 0u) << go << ": " << error;
        EXPECT_NE(error.find(hint), std::string::npos) << go << ": " << error;
    }
    // not Go: the usual error
    EXPECT_NE(refused("{{nosuch}}").find("unknown name"), std::string::npos);
}

TEST(TemplateGo, MangledTemplatesAreRefusedOrRenderWithoutThrowing)
{
    // go-features.mustache with spans cut out or repeated (a seeded, repeatable walk): whatever
    // the checks let through (blocks, closing tags by a function's name, arguments) must be a
    // template kainjow renders, never one that fails or throws at render time.
    const std::string source = dingtalk_test::read_file("../fixtures/go-features.mustache");
    ASSERT_FALSE(source.empty());
    const Notification n = dingtalk_test::fixture("mixed");
    std::uint32_t seed = 24;
    const auto next = [&](std::size_t below) {
        seed = seed * 1664525u + 1013904223u;
        return static_cast<std::size_t>(seed >> 8) % below;
    };
    std::size_t parsed = 0;
    for (int i = 0; i < 600; ++i) {
        std::string s = source;
        const std::size_t at = next(s.size()), len = 1 + next(40);
        if (i % 2 == 0) {
            s.erase(at, len);
        } else {
            s.insert(at, s.substr(next(s.size()), len));
        }
        std::string error;
        const auto t = Template::parse(s, Template::Kind::text, error);
        if (!t) {
            EXPECT_EQ(error.rfind("line ", 0) == 0 || error.find("block") != std::string::npos,
                      true)
                << error;
            continue;
        }
        ++parsed;
        Settings settings = dingtalk_test::settings();
        RenderOptions opt = dingtalk_test::options(settings);
        settings.text_template = t;
        EXPECT_NO_THROW(render_message(n, opt)) << s;
    }
    EXPECT_GT(parsed, 10u); // some of them are templates still
}
