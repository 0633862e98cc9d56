// What a Go template's author needs, in mustache: per-severity style, values in the form a
// place needs (text, link target, raw), functions, times and durations, counts that are false
// at 0, standalone lines that vanish, and no way around the checks.
#include "render.hpp"
#include "template.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;

namespace
{

std::string render(const std::string &src, const Notification &n, const Styles *styles = nullptr,
                   Template::Kind kind = Template::Kind::text)
{
    std::string error;
    const auto t = Template::parse(src, kind, error);
    EXPECT_TRUE(t) << error;
    if (!t) {
        return "";
    }
    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    if (styles != nullptr) {
        s.styles = std::make_shared<const Styles>(*styles);
    }
    opt.now = *parse_rfc3339("2026-11-23T18:07:05Z"); // 2 h 3 min after make_alert's start
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

Notification one(Status status, Labels labels, Labels annotations = {})
{
    return make_notification({make_alert(status, std::move(labels), std::move(annotations))});
}

} // namespace

TEST(TemplateIntent, StandaloneTagLinesVanishWithTheirLine)
{
    const Notification firing = one(Status::firing, {{"alertname", "A"}});
    // the issue: a false section left an empty line that split a markdown list
    EXPECT_EQ(render("- a\n{{#has_resolved}}\n- b\n{{/has_resolved}}\n- c\n", firing), "- a\n- c");
    EXPECT_EQ(render("- a\n  {{#has_firing}}  \n- b\n{{/has_firing}}\n- c\n", firing),
              "- a\n- b\n- c");
    EXPECT_EQ(render("x\n{{! a comment }}\ny\n", firing), "x\ny");
    // an empty line after a closing tag is the author's: it stays
    EXPECT_EQ(render("{{#has_firing}}\n# h\n{{/has_firing}}\n\nbody\n", firing), "# h\n\nbody");
    EXPECT_EQ(render("{{#has_resolved}}\n# h\n{{/has_resolved}}\n\nbody\n", firing), "body");
    // a tag with text on its line is not standalone
    EXPECT_EQ(render("a {{#has_firing}}b{{/has_firing}}\nc\n", firing), "a b\nc");
}

TEST(TemplateIntent, DelimiterChangesAndPartialsAreRefused)
{
    // the issue: after {{=<% %>=}} nothing was checked, and a partial rendered a client's value
    EXPECT_EQ(refused("ok\n{{=<% %>=}}\n<%> detail%>\n"), "line 2: changing the delimiters is "
                                                          "not supported");
    EXPECT_EQ(refused("{{#alerts}}\n{{> detail}}\n{{/alerts}}\n"),
              "line 2: no block \"detail\" in this template (partials are not supported: define "
              "it in the same file with {{<detail}}...{{/detail}})");
    EXPECT_NE(refused("{{labels.x}} {{nosuch}}").find("unknown name \"nosuch\""),
              std::string::npos);
}

TEST(TemplateIntent, StyleBySeverityCaseInsensitive)
{
    const std::string src = "{{emoji}}|{{#alerts}}{{emoji}}{{color}}{{#severity_is.critical}}!"
                            "{{/severity_is.critical}} {{/alerts}}";
    Notification n = make_notification({make_alert(Status::firing, {{"severity", "warning"}}),
                                        make_alert(Status::firing, {{"severity", "CRITICAL"}}),
                                        make_alert(Status::firing, {{"severity", "page-me"}}),
                                        make_alert(Status::resolved, {{"severity", "critical"}})});
    EXPECT_EQ(render(src, n),
              "🔴|🟠#FF8C00 🔴#D93026! ⚪#808080 ✅#2EA44F!"); // end trimmed

    Styles mine = Styles::defaults();
    ASSERT_EQ(mine.set("Page-Me", "🚨", "#ff00ff"), "");
    ASSERT_EQ(mine.set("critical", "🔥", ""), "");
    EXPECT_EQ(render("{{emoji}}|{{#alerts}}{{emoji}}{{color}} {{/alerts}}", n, &mine),
              "🔥|🟠#FF8C00 🔥#D93026 🚨#ff00ff ✅#2EA44F");
    EXPECT_NE(mine.set("x", "*", ""), "") << "markdown specials are no emoji";
    EXPECT_NE(mine.set("x", "🚨", "red\" onclick"), "") << "a colour cannot end its attribute";
    // the group's style: resolved only
    EXPECT_EQ(render("{{emoji}}", one(Status::resolved, {{"severity", "critical"}})), "✅");
}

TEST(TemplateIntent, EachValueInTheFormItsPlaceNeeds)
{
    const Notification n =
        one(Status::firing, {{"instance", "db_master_01:9100"}},
            {{"runbook_url", "https://runbooks.example/node_fs#free_space?from=am&x=1"},
             {"evil", "javascript:alert(1)"}});
    EXPECT_EQ(render("{{#alerts}}{{annotations.runbook_url}}{{/alerts}}", n),
              "https://runbooks.example/node\\_fs#free\\_space?from=am&amp;x=1")
        << "text: escaped for markdown";
    EXPECT_EQ(render("{{#alerts}}{{annotations_link.runbook_url}}|{{annotations_link.evil}}|"
                     "{{/alerts}}",
                     n),
              "https://runbooks.example/node_fs#free_space?from=am&x=1||")
        << "link: the URL as it is, http(s) only";
    EXPECT_EQ(render("{{#alerts}}var-instance={{labels_url.instance}}{{/alerts}}", n),
              "var-instance=db_master_01%3A9100");
    EXPECT_EQ(render("{{#alerts}}{{labels_raw.instance}}{{/alerts}}", n), "db_master_01:9100");
}

TEST(TemplateIntent, Functions)
{
    const Notification n = one(
        Status::firing,
        {{"instance", "db_master_01:9100"}, {"ip6", "[fe80::1]:9100"}, {"alertname", "DiskFull"}});
    EXPECT_EQ(render("{{#alerts}}{{#strip_port}}{{labels_raw.instance}}{{/strip_port}}|"
                     "{{#strip_port}}{{labels_raw.ip6}}{{/strip_port}}|"
                     "{{#urlencode}}{{#strip_port}}{{labels_raw.instance}}{{/strip_port}}"
                     "{{/urlencode}}|{{#upper}}{{alertname}}{{/upper}}|"
                     "{{#lower}}{{alertname}}{{/lower}}{{/alerts}}",
                     n),
              "db_master_01|[fe80::1]|db_master_01|DISKFULL|diskfull");
}

TEST(TemplateIntent, TimesAndDurations)
{
    // make_alert: starts 2026-11-23T16:04:05Z; a resolved one ends 30 minutes later
    const std::string src = "{{#alerts}}{{starts_at_date}} {{starts_at_time}} {{starts_at_rfc3339}}"
                            " {{ends_at_time}} {{duration}} {{duration_short}}{{/alerts}}";
    EXPECT_EQ(render(src, one(Status::resolved, {})),
              "2026-11-24 00:04:05 2026-11-24T00:04:05+08:00 00:34:05 30分钟 30m");
    EXPECT_EQ(render(src, one(Status::firing, {})),
              "2026-11-24 00:04:05 2026-11-24T00:04:05+08:00 - 2小时3分钟 2h 3m")
        << "a firing alert's age, counted to now";
    EXPECT_EQ(duration_words(std::chrono::seconds(45)), "45秒");
    EXPECT_EQ(duration_short(std::chrono::seconds(3 * 86400 + 4 * 3600 + 5)), "3d 4h");
    EXPECT_EQ(duration_words(std::chrono::seconds(-5)), "0秒") << "never negative";
}

TEST(TemplateIntent, CountsAreFalseAtZero)
{
    const Notification firing = one(Status::firing, {});
    // the issue: {{#firing_count}} was true at 0, which gave "🔥RESOLVED"
    EXPECT_EQ(render("{{#firing_count}}🔥{{/firing_count}}{{#resolved_count}}✅{{/resolved_count}}"
                     "{{firing_count}}/{{resolved_count}}",
                     firing),
              "🔥1/0");
}

TEST(TemplateIntent, NamesNoAlertHasAreFound)
{
    std::string error;
    const auto t = Template::parse("{{#alerts}}{{labels.instnace}} {{labels_url.instance}} "
                                   "{{common_labels.team}}{{/alerts}}",
                                   Template::Kind::text, error);
    ASSERT_TRUE(t) << error;
    const Notification n = one(Status::firing, {{"instance", "a"}});
    EXPECT_EQ(t->unset_names(n),
              (std::vector<std::string>{"common_labels.team", "labels.instnace"}));
}

TEST(TemplateIntent, AListCanLeaveNamesOutAndTheTitleCanNameTheRest)
{
    Notification n =
        one(Status::firing,
            {{"alertname", "A"}, {"severity", "critical"}, {"job", "node"}, {"summary", "s"}});
    EXPECT_EQ(render("{{#alerts}}{{#label_list}}{{^name_is.severity}}{{^name_is.summary}}{{name}};"
                     "{{/name_is.summary}}{{/name_is.severity}}{{/label_list}}{{/alerts}}",
                     n),
              "alertname;job;")
        << "the Go bridge's details leave severity and summary out";
    n.group_labels = {{"alertname", "A"}};
    n.common_labels = {{"alertname", "A"}, {"job", "node"}, {"severity", "critical"}};
    const std::string title = "{{group_label_values}}{{#has_other_common_labels}} "
                              "({{other_common_label_values}}){{/has_other_common_labels}}";
    EXPECT_EQ(render(title, n, nullptr, Template::Kind::title), "A (node critical)");
    n.common_labels = n.group_labels;
    EXPECT_EQ(render(title, n, nullptr, Template::Kind::title), "A");
}
