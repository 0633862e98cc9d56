// dingtalk-render --from-go-template: a Go bridge template converted into ours renders what the
// Go template printed, each construct the converter cannot say is named with its line, and the
// converted template always loads.
#include "go_convert.hpp"
#include "go_hint.hpp"
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

GoConversion convert(const std::string &go)
{
    return convert_go_template({{"t.tmpl", go}});
}

// The message: a ding.link.content of `body`, converted without a problem.
std::string converted(const std::string &body)
{
    const GoConversion c = convert("{{ define \"ding.link.content\" }}" + body + "{{ end }}");
    EXPECT_TRUE(c.problems.empty()) << body << ": " << c.problems.front();
    return c.text;
}

Notification group()
{
    Notification n = make_notification(
        {make_alert(Status::firing,
                    {{"alertname", "DiskFull"}, {"severity", "critical"}, {"instance", "db:9100"}},
                    {{"summary", "disk full"}}),
         make_alert(Status::firing, {{"alertname", "Load"}, {"severity", "warning"}}),
         make_alert(Status::resolved, {{"alertname", "Down"}, {"severity", "critical"}})});
    n.group_labels = {{"team", "db"}};
    n.common_labels = {{"team", "db"}};
    return n;
}

// What the converted template sends for group(), as DingTalk shows it.
std::string rendered(const std::string &ours, const Notification &n = group())
{
    std::string error;
    const auto t = Template::parse(ours, Template::Kind::text, error);
    EXPECT_TRUE(t) << ours << ": " << error;
    if (!t) {
        return "";
    }
    Settings s = dingtalk_test::settings();
    s.text_template = t;
    RenderOptions opt = dingtalk_test::options(s);
    opt.now = *parse_rfc3339("2026-11-23T18:07:05Z");
    return render_message(n, opt).text;
}

std::string go_rendered(const std::string &body)
{
    return rendered(converted(body));
}

} // namespace

TEST(GoConvert, RangesFieldsAndIndex)
{
    EXPECT_EQ(go_rendered("{{ range .Alerts }}{{ .Labels.alertname }} {{ end }}"),
              "DiskFull Load Down");
    EXPECT_EQ(go_rendered("{{ range .Alerts.Firing }}{{ index .Labels \"severity\" }},{{ end }}"
                          "{{ range .Alerts.Resolved }}{{ .Labels.alertname }}{{ end }}"),
              "critical,warning,Down");
    EXPECT_EQ(go_rendered("{{ range $i, $a := .Alerts }}{{ if lt $i 1 }}{{ $a.Labels.alertname }}"
                          "{{ end }}{{ end }}"),
              "DiskFull");
    EXPECT_EQ(go_rendered("{{ .CommonLabels.team }} {{ index .GroupLabels \"team\" }} "
                          "{{ .Status }} {{ .Receiver }}"),
              "db db firing dingtalk");
}

TEST(GoConvert, SortedPairsAndJoin)
{
    EXPECT_EQ(go_rendered("{{ range .Alerts.Resolved }}{{ range .Labels.SortedPairs }}"
                          "{{ .Name }}={{ .Value }};{{ end }}{{ end }}"),
              "alertname=Down;severity=critical;");
    EXPECT_EQ(go_rendered("[{{ .GroupLabels.SortedPairs.Values | join \" \" }}]"), "[db]");
    EXPECT_EQ(go_rendered("{{ range .Alerts.Resolved }}{{ range .Labels.SortedPairs }}"
                          "{{ if ne .Name \"severity\" }}{{ .Name }}{{ end }}{{ end }}{{ end }}"),
              "alertname");
}

TEST(GoConvert, ConditionsAndElse)
{
    EXPECT_EQ(go_rendered("{{ range .Alerts }}{{ if eq .Status \"firing\" }}F{{ else }}R"
                          "{{ end }}{{ end }}"),
              "FFR");
    EXPECT_EQ(go_rendered("{{ if eq .Status \"resolved\" }}all fine{{ else }}burning{{ end }}"),
              "burning");
    EXPECT_EQ(go_rendered("{{ range .Alerts }}{{ if eq .Labels.severity \"critical\" }}!{{ end }}"
                          "{{ if ne .Labels.severity \"critical\" }}?{{ end }}{{ end }}"),
              "!?!");
    EXPECT_EQ(go_rendered("{{ range .Alerts }}{{ if .Annotations.summary }}"
                          "{{ .Annotations.summary }}{{ end }}{{ end }}"),
              "disk full");
    EXPECT_EQ(go_rendered("{{ if gt (len .Alerts.Firing) 1 }}many{{ end }}"
                          "{{ if ge (len .Alerts.Resolved) 2 }}two{{ end }}"
                          "{{ if le (len .Alerts) 3 }} three{{ end }}"),
              "many three");
    EXPECT_EQ(go_rendered("{{ if and (eq .CommonLabels.team \"db\") (gt (len .Alerts) 2) }}"
                          "db{{ end }}{{ if not (eq .CommonLabels.team \"db\") }}x{{ end }}"),
              "db");
    EXPECT_EQ(go_rendered("{{ if eq .CommonLabels.team \"x\" }}x{{ else if eq .CommonLabels.team "
                          "\"db\" }}db{{ else }}none{{ end }}"),
              "db");
}

TEST(GoConvert, CountsAndFunctions)
{
    EXPECT_EQ(
        go_rendered("{{ len .Alerts }} {{ .Alerts.Firing | len }} {{ len .Alerts.Resolved }}"),
        "3 2 1");
    EXPECT_EQ(go_rendered("{{ .Status | toUpper }} {{ title \"disk full\" }}"), "FIRING Disk Full");
    EXPECT_EQ(go_rendered("{{ range .Alerts.Firing }}{{ trunc 4 .Labels.alertname }}"
                          "{{ .Labels.instance | reReplaceAll \":[0-9]+\" \"\" }}"
                          "{{ regexReplaceAll \"^L\" .Labels.alertname \"l\" }}"
                          "{{ default \"-\" .Labels.nosuch }}{{ replace \"a\" \"A\" "
                          ".Labels.severity | toLower }}|{{ end }}"),
              "DiskdbDiskFull-critical|Loadload-warning|");
    EXPECT_EQ(go_rendered("{{ range .Alerts.Firing }}{{ .Labels.instance | urlquery }} "
                          "{{ .Labels.alertname | markdown | html }}{{ end }}"),
              "db%3A9100 DiskFull Load");
}

TEST(GoConvert, TimesAndTheirZone)
{
    const GoConversion c = convert("{{ define \"ding.link.content\" }}{{ range .Alerts }}"
                                   "{{ .StartsAt.Format \"2006-01-02 15:04\" }}{{ end }}{{ end }}");
    EXPECT_NE(c.text.find("{{#alerts}}{{starts_at \"2006-01-02 15:04\"}}{{/alerts}}"),
              std::string::npos)
        << c.text;
    ASSERT_EQ(c.directives.size(), 1u);
    EXPECT_EQ(c.directives[0], "dingtalk_timezone as_sent \"2006-01-02 15:04\";");
    const GoConversion local = convert(
        "{{ define \"ding.link.content\" }}{{ range .Alerts }}{{ .EndsAt.Local.Format \"15:04\" }}"
        "{{ .StartsAt | date \"15:04\" }}{{ end }}{{ end }}");
    EXPECT_TRUE(local.problems.empty());
    EXPECT_NE(local.text.find("{{ends_at \"15:04\"}}{{starts_at \"15:04\"}}"), std::string::npos);
    EXPECT_NE(convert("{{ define \"ding.link.content\" }}{{ now.Format \"15:04\" }}{{ end }}")
                  .text.find("{{now \"15:04\"}}"),
              std::string::npos);
    EXPECT_EQ(local.directives[0].rfind("dingtalk_timezone Asia/Shanghai \"15:04\";", 0), 0u);
    const GoConversion both = convert(
        "{{ define \"ding.link.content\" }}{{ range .Alerts }}{{ .EndsAt.Local.Format \"15:04\" }}"
        "\n{{ .StartsAt.Format \"15:04\" }}{{ end }}{{ end }}");
    ASSERT_EQ(both.problems.size(), 1u);
    EXPECT_EQ(both.problems[0], "t.tmpl line 2: `.StartsAt.Format \"15:04\"`: times in two time "
                                "zones (Local, as_sent): dingtalk_timezone sets one");
}

TEST(GoConvert, DefinesBecomeBlocksAndTheTitleADirective)
{
    const std::string go = R"({{ define "__list" }}{{ range . }}- {{ .Labels.alertname }}
{{ end }}{{ end }}
{{ define "__subject" }}[{{ .Status | toUpper }}] {{ .CommonLabels.team }}'s{{ end }}
{{ define "ding.link.title" }}{{ template "__subject" . }}{{ end }}
{{ define "ding.link.content" }}### {{ template "ding.link.title" . }}
{{ template "__list" .Alerts.Firing }}{{ template "__list" .Alerts.Resolved }}{{ end }}
)";
    const GoConversion c = convert(go);
    EXPECT_TRUE(c.problems.empty()) << c.problems.front();
    EXPECT_NE(c.text.find("{{<__list}}\n{{#firing}}- {{labels.alertname}}\n{{/firing}}"
                          "{{/__list}}\n"),
              std::string::npos)
        << c.text;
    EXPECT_NE(c.text.find("{{<__list.resolved}}\n{{#resolved}}"), std::string::npos);
    ASSERT_FALSE(c.directives.empty());
    EXPECT_EQ(
        c.directives[0],
        "dingtalk_title_template '[{{#upper}}{{status}}{{/upper}}] {{common_labels.team}}\\'s';");
    EXPECT_EQ(rendered(c.text), "### [FIRING] db's\n- DiskFull\n- Load\n- Down");
}

TEST(GoConvert, CommentsAndTrimMarkers)
{
    EXPECT_EQ(go_rendered("{{/* a comment */}}a  {{- /* trimmed */ -}}  b\n{{- \" c\" }}"), "ab c");
    EXPECT_EQ(go_rendered("{{ range .Alerts.Firing -}}\n  {{ .Labels.alertname }}\n{{- end }}"),
              "DiskFullLoad");
}

TEST(GoConvert, LinesThatHoldOnlyAnActionKeepTheirLineBreak)
{
    // Go prints "x\n" and the empty lines of the ifs; ours keeps them (runs of blank lines
    // collapse into one when the message is rendered, as always)
    EXPECT_EQ(go_rendered("x\n{{ if .Alerts }}\n- y\n{{ end }}\nz"), "x\n\n- y\n\nz");
}

TEST(GoConvert, MentionsFromALabel)
{
    const GoConversion c =
        convert("{{ define \"ding.link.content\" }}{{ range .Alerts }}"
                "@{{ .Labels.mobile }} @{{ .Annotations.user_id }}{{ end }}{{ end }}");
    ASSERT_EQ(c.directives.size(), 2u);
    EXPECT_EQ(c.directives[0], "dingtalk_at_mobiles_from mobile;");
    EXPECT_EQ(c.directives[1], "dingtalk_at_user_ids_from user_id;");
}

TEST(GoConvert, WhatCannotBeSaidIsNamedWithItsLine)
{
    const GoConversion c =
        convert("{{ define \"ding.link.content\" }}ok\n\n{{ $x := .Labels.a }}\n"
                "{{ range $i, $a := .Alerts }}{{ $i }}{{ end }}\n"
                "{{ if or .CommonLabels.a .CommonLabels.b }}x{{ end }}\n"
                "{{ printf \"%d\" 3 }}{{ .Nope }}\n{{ template \"missing\" . }}{{ end }}");
    const std::vector<std::string> want = {
        "t.tmpl line 3: `$x := .Labels.a`: no variables: name the value where it is used",
        "t.tmpl line 4: `$i`: Go counts from 0, {{index}} from 1",
        "t.tmpl line 5: `if or .CommonLabels.a .CommonLabels.b`: `or`: write a section for each, "
        "or the condition the other way",
        "t.tmpl line 6: `printf \"%d\" 3`: `printf` is no function the template language has",
        "t.tmpl line 6: `.Nope`: `.Nope` names nothing the template language has here",
        "t.tmpl line 7: `template \"missing\" .`: no template \"missing\" in these files"};
    EXPECT_EQ(c.problems, want);
    EXPECT_EQ(rendered(c.text), "ok"); // what it could: it loads as it is
}

TEST(GoConvert, FilesThatAreNoTemplateOrTooBig)
{
    EXPECT_EQ(convert("a\n{{ if .Alerts }").problems,
              std::vector<std::string>{"t.tmpl line 2: an action (\"{{\") is not closed"});
    EXPECT_EQ(
        convert("{{ define \"x\" }}x{{ end }}").problems.at(0).rfind("no \"ding.link.content\"", 0),
        0u);
    EXPECT_EQ(convert(std::string(kMaxGoTemplateBytes + 1, 'x')).problems,
              std::vector<std::string>{"the templates are over 1 MiB together"});
    // deep nesting and a title that calls templates without end: bounded, and said
    const auto repeat = [](const std::string &s, int n) {
        std::string r;
        for (int i = 0; i < n; ++i) {
            r += s;
        }
        return r;
    };
    EXPECT_EQ(convert("{{ define \"ding.link.content\" }}" + repeat("{{ if .Alerts }}", 40000))
                  .problems.at(0),
              "t.tmpl line 1: `if .Alerts`: actions nested over 64 deep");
    const GoConversion wide =
        convert("{{ define \"ding.link.content\" }}x{{ end }}{{ define \"c\" }}{{ end }}"
                "{{ define \"b\" }}" +
                repeat("{{ template \"c\" . }}", 50) + "{{ end }}{{ define \"a\" }}" +
                repeat("{{ template \"b\" . }}", 50) + "{{ end }}{{ define \"ding.link.title\" }}" +
                repeat("{{ template \"a\" . }}", 50) + "{{ end }}");
    ASSERT_FALSE(wide.problems.empty());
    EXPECT_EQ(wide.problems[0], "t.tmpl line 1: `template \"c\" .`: the title calls templates over "
                                "1000 times");
    // a later file's define replaces an earlier one, as the Go bridge loads them
    const GoConversion c = convert_go_template(
        {{"a.tmpl", "{{ define \"ding.link.content\" }}{{ template \"x\" . }}{{ end }}"
                    "{{ define \"x\" }}a{{ end }}"},
         {"b.tmpl", "{{ define \"x\" }}b{{ end }}"}});
    EXPECT_EQ(rendered(c.text), "b");
}

TEST(GoConvert, TheHintsKnowWhatTheConverterConverts)
{
    // one table of fields and one of functions for both: nginx -t says what the converter writes
    EXPECT_EQ(go_field(".Labels.severity"), "labels.severity");
    EXPECT_EQ(go_field(".Alerts.Firing"), "firing");
    EXPECT_NE(go_hint(".Labels.severity").find("{{labels.severity}}"), std::string::npos);
    for (const GoFunction &f : go_functions()) {
        const std::string go = f.go;
        std::string call = go;
        for (std::size_t i = 0; i <= f.args; ++i) {
            call += i != f.value_at ? " \"a\""
                    : go == "join"  ? " .Labels.SortedPairs.Values" // a list
                                    : " .Labels.x";
        }
        const std::string want = go == "urlquery"              ? "{{labels_url.x}}"
                                 : std::string(f.ours).empty() ? "{{labels.x}}"
                                                               : "{{#" + std::string(f.ours);
        EXPECT_NE(go_hint(call).find(want), std::string::npos) << call << ": " << go_hint(call);
        EXPECT_NE(converted("{{ range .Alerts }}{{ " + call + " }}{{ end }}").find(want),
                  std::string::npos)
            << call;
    }
}
