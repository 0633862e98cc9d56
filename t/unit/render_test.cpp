// render_message: the golden messages for the fixtures, and the rules behind them.
//
// A golden file is the title, a blank line, the markdown text and a final newline, rendered in
// Asia/Shanghai. They were written by hand-checking the output against the rules tested below;
// when the format changes on purpose, check the new output just as carefully before replacing one.
#include "render.hpp"

#include "json.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;
using dingtalk_test::fixture;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;
using dingtalk_test::occurrences;
using dingtalk_test::read_file;
using dingtalk_test::render;

namespace
{

void expect_golden(const char *name)
{
    SCOPED_TRACE(name);
    const Message m = render(fixture(name));
    const std::string actual = m.title + "\n\n" + m.text + "\n";
    const std::string golden = read_file(std::string("golden/") + name + ".md");
    ASSERT_FALSE(golden.empty());
    EXPECT_EQ(actual, golden) << "rendered:\n" << actual;
}

std::string line_starting(const std::string &text, const std::string &prefix)
{
    const std::size_t pos = text.find("\n" + prefix);
    if (pos == std::string::npos) {
        return "";
    }
    return text.substr(pos + 1, text.find('\n', pos + 1) - pos - 1);
}

} // namespace

TEST(RenderGolden, Firing)
{
    expect_golden("firing");
}
// A node and a filesystem alert as kube-prometheus sends them: no pod, the scrape's labels.
TEST(RenderGolden, Node)
{
    expect_golden("node");
}
TEST(RenderGolden, Resolved)
{
    expect_golden("resolved");
}
TEST(RenderGolden, Mixed)
{
    expect_golden("mixed");
}

TEST(Render, RequestBodyIsTheMarkdownMessage)
{
    for (const char *name : {"firing", "resolved", "mixed"}) {
        SCOPED_TRACE(name);
        const Notification n = fixture(name);
        const Message m = render(n);
        EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
        EXPECT_EQ(m.shown, n.alerts.size());
        EXPECT_EQ(m.omitted, 0u);

        json_error_t err;
        JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, &err));
        ASSERT_TRUE(root) << err.text;
        EXPECT_STREQ(json_string_value(json_object_get(root.get(), "msgtype")), "markdown");
        const json_t *md = json_object_get(root.get(), "markdown");
        ASSERT_TRUE(json_is_object(md));
        const json_t *title = json_object_get(md, "title");
        const json_t *text = json_object_get(md, "text");
        ASSERT_TRUE(json_is_string(title) && json_is_string(text));
        EXPECT_EQ(std::string(json_string_value(title), json_string_length(title)), m.title);
        EXPECT_EQ(std::string(json_string_value(text), json_string_length(text)), m.text);
        EXPECT_EQ(json_object_get(root.get(), "at"), nullptr) << "no mentions configured";
    }
}

TEST(Render, Titles)
{
    EXPECT_EQ(render(fixture("firing")).title, "[FIRING:3] KubePodCrashLooping");
    EXPECT_EQ(render(fixture("resolved")).title, "[RESOLVED:2] KubePodCrashLooping");
    EXPECT_EQ(render(fixture("mixed")).title, "[FIRING:2, RESOLVED:2] kube-ops");

    Notification n = make_notification({make_alert(Status::firing, {{"alertname", "A"}})});
    EXPECT_EQ(render(n).title, "[FIRING:1] Alertmanager");
    n.common_labels = {{"alertname", "HighLatency"}};
    EXPECT_EQ(render(n).title, "[FIRING:1] HighLatency");
    n.group_labels = {{"alertname", "HighLatency"}, {"cluster", "prod-sh"}};
    EXPECT_EQ(render(n).title, "[FIRING:1] HighLatency prod-sh");
    // The first line of the text shows the title as a heading.
    const Message m = render(fixture("firing"));
    EXPECT_EQ(m.text.substr(0, m.text.find('\n')), "### \\[FIRING:3\\] KubePodCrashLooping");
}

TEST(Render, SeedFieldsAppearOncePerAlertThatHasThem)
{
    for (const char *name : {"firing", "resolved", "mixed"}) {
        SCOPED_TRACE(name);
        const Notification n = fixture(name);
        const std::string text = render(n).text;
        for (const char *field : {"告警类型", "告警状态", "触发时间"}) {
            EXPECT_EQ(occurrences(text, std::string("\n**") + field + "**: "), n.alerts.size())
                << field;
        }
        std::size_t severity = 0, pod = 0, namespace_ = 0;
        for (const Alert &a : n.alerts) {
            severity += a.labels.count("severity");
            pod += a.labels.count("pod") + a.labels.count("pod_name") > 0 ? 1 : 0;
            namespace_ += a.labels.count("namespace");
        }
        EXPECT_EQ(occurrences(text, "\n**告警级别**: "), severity);
        EXPECT_EQ(occurrences(text, "\n**故障pod**: "), pod);
        EXPECT_EQ(occurrences(text, "\n**故障namespace**: "), namespace_);
        EXPECT_EQ(occurrences(text, "**结束时间**: "), n.count(Status::resolved));
        EXPECT_EQ(occurrences(text, "**告警状态**: firing"), n.count(Status::firing));
        EXPECT_EQ(occurrences(text, "**告警状态**: resolved"), n.count(Status::resolved));
        EXPECT_EQ(text.find("**: -\n"), std::string::npos) << "nothing shown as a dash";
        EXPECT_EQ(text.find("0001"), std::string::npos) << "Go's zero time must never show";
        EXPECT_EQ(text.find("null"), std::string::npos);
    }
}

TEST(Render, FiringSectionComesFirst)
{
    const std::string text = render(fixture("mixed")).text;
    const std::size_t firing = text.find("\n#### 告警中 (2)\n");
    const std::size_t resolved = text.find("\n#### 已恢复 (2)\n");
    ASSERT_NE(firing, std::string::npos) << text;
    ASSERT_NE(resolved, std::string::npos) << text;
    EXPECT_LT(firing, resolved);
    EXPECT_LT(text.rfind("**告警状态**: firing"), resolved);
    EXPECT_GT(text.find("**告警状态**: resolved"), resolved);
    EXPECT_EQ(occurrences(text, "\n---\n"), 2u) << "one rule between the two alerts of a section";

    const std::string only_firing = render(fixture("firing")).text;
    EXPECT_EQ(only_firing.find("已恢复"), std::string::npos);
    const std::string only_resolved = render(fixture("resolved")).text;
    EXPECT_EQ(only_resolved.find("告警中"), std::string::npos);
}

TEST(Render, EndTimeOnlyForResolvedAlerts)
{
    Alert firing = make_alert(Status::firing, {{"alertname", "A"}});
    firing.ends_at = parse_rfc3339("2026-11-23T17:00:00Z"); // Alertmanager's estimate: not shown
    Alert resolved = make_alert(Status::resolved, {{"alertname", "B"}});
    Alert unknown_end = make_alert(Status::resolved, {{"alertname", "C"}});
    unknown_end.ends_at.reset();
    // A final newline, so that every line ends in one for the searches below.
    const std::string text = render(make_notification({firing, resolved, unknown_end})).text + "\n";
    EXPECT_EQ(occurrences(text, "**结束时间**: "), 2u) << text;
    EXPECT_EQ(text.find("2026-11-24 01:00:00"), std::string::npos) << text;
    EXPECT_EQ(occurrences(text, "**结束时间**: 2026-11-24 00:34:05 +08:00\n"), 1u) << text;
    EXPECT_EQ(occurrences(text, "**结束时间**: -\n"), 1u) << text;
    EXPECT_EQ(occurrences(text, "**触发时间**: 2026-11-24 00:04:05 +08:00\n"), 3u) << text;
}

TEST(Render, MissingFieldsAreLeftOut)
{
    Alert bare;
    bare.status = Status::firing;
    const std::string text = render(make_notification({bare})).text + "\n";
    for (const char *field : {"告警级别", "告警类型", "故障", "告警详情", "其他标签"}) {
        EXPECT_EQ(text.find(std::string("\n**") + field), std::string::npos) << field << text;
    }
    EXPECT_NE(text.find("\n**告警状态**: firing\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\n**触发时间**: -\n"), std::string::npos) << "a time is always shown";
    EXPECT_EQ(text.find("查看图表"), std::string::npos) << "no generatorURL, no link";

    // An empty value counts as missing.
    Alert empty = make_alert(Status::firing, {{"severity", ""}, {"pod", ""}, {"pod_name", "p-1"}});
    const std::string t2 = render(make_notification({empty})).text + "\n";
    EXPECT_EQ(t2.find("告警级别"), std::string::npos) << t2;
    EXPECT_NE(t2.find("\n**故障pod**: p-1\n"), std::string::npos) << t2;
}

TEST(Render, PodFallsBackToPodName)
{
    const Alert both = make_alert(Status::firing, {{"pod", "new-0"}, {"pod_name", "old-0"}});
    const Alert old = make_alert(Status::firing, {{"pod_name", "old-1"}});
    const std::string text = render(make_notification({both, old})).text + "\n";
    EXPECT_NE(text.find("\n**故障pod**: new-0\n"), std::string::npos) << text;
    EXPECT_NE(text.find("\n**故障pod**: old-1\n"), std::string::npos) << text;
    EXPECT_EQ(text.find("pod\\_name=old-0"), std::string::npos) << text;
    EXPECT_EQ(text.find("**故障pod**: old-0"), std::string::npos) << text;
}

// The line after the alert's type names what is wrong: the most specific label it has.
TEST(Render, TheIdentifyingLabelIsShownOnce)
{
    struct Case {
        Labels labels;
        const char *line;
        const char *not_in_others;
    };
    const Case cases[] = {
        {{{"pod", "api-0"}, {"node", "n1"}, {"instance", "10.0.0.1:9100"}},
         "**故障pod**: api-0",
         "pod="},
        {{{"node", "worker-3"}, {"instance", "10.0.0.3:9100"}}, "**故障节点**: worker-3", "node="},
        {{{"instance", "10.0.0.1:9100"}, {"job", "node"}},
         "**故障实例**: 10.0.0.1:9100",
         "instance="},
        // kube-state-metrics' alerts carry its own address as instance: the workload comes first
        {{{"deployment", "api"}, {"instance", "10.244.0.12:8080"}, {"job", "kube-state-metrics"}},
         "**故障deployment**: api",
         "deployment="},
        {{{"job_name", "backup-1"}, {"job", "kube-state-metrics"}},
         "**故障job**: backup-1",
         "job\\_name="},
        {{{"job", "node-exporter"}}, "**故障job**: node-exporter", "job="},
    };
    for (const Case &c : cases) {
        Labels labels = c.labels;
        labels["alertname"] = "A";
        const std::string text =
            render(make_notification({make_alert(Status::firing, labels)})).text;
        EXPECT_EQ(occurrences(text, "\n**故障"), 1u) << text;
        EXPECT_NE(text.find(std::string("\n") + c.line + "\n"), std::string::npos) << text;
        EXPECT_EQ(line_starting(text, "**其他标签**").find(c.not_in_others), std::string::npos)
            << text;
    }
}

TEST(Render, HiddenLabelsAreInNoLine)
{
    Labels labels = {{"alertname", "KubeNodeNotReady"},
                     {"node", "worker-3"},
                     {"prometheus", "monitoring/k8s"},
                     {"uid", "6f1c"},
                     {"service", "ksm"},
                     {"endpoint", "http"},
                     {"job", "kube-state-metrics"}};
    const Notification n = make_notification({make_alert(Status::firing, labels)});
    const std::string text = render(n).text;
    EXPECT_EQ(line_starting(text, "**其他标签**"), "**其他标签**: job=kube-state-metrics") << text;

    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    s.hidden_labels = std::make_shared<LabelNames>(LabelNames{"job", "node"});
    const std::string custom = render_message(n, opt).text;
    EXPECT_EQ(custom.find("故障节点"), std::string::npos) << "a hidden label names nothing";
    EXPECT_EQ(line_starting(custom, "**其他标签**"),
              "**其他标签**: endpoint=http, prometheus=monitoring/k8s, service=ksm, uid=6f1c")
        << custom;
    s.hidden_labels = std::make_shared<LabelNames>(); // dingtalk_hide_labels off
    EXPECT_NE(render_message(n, opt).text.find("prometheus=monitoring/k8s"), std::string::npos);
}

TEST(Render, FiringAlertsLinkToANewSilence)
{
    const std::string text = render(fixture("mixed")).text;
    EXPECT_EQ(
        occurrences(text, "[静默](http://alertmanager.example:9093/#/silences/new?filter=%7B"), 2u)
        << "the firing alerts only" << text;
    // every label of the alert is a matcher, quoted and URL-encoded
    EXPECT_NE(text.find(") · [静默](http://alertmanager.example:9093/#/silences/new?filter="
                        "%7Balertname%3D%22TargetDown%22%2Cinstance%3D%2210.0.3.15%3A9100%22%2C"
                        "job%3D%22node-exporter%22%2Cnamespace%3D%22kube-ops%22%2C"
                        "severity%3D%22critical%22%7D)\n"),
              std::string::npos)
        << text;

    // hidden labels are no matchers; an alert with many labels gets a short link that still
    // says what it is, so that links do not crowd alerts out of the message
    Labels many = {{"alertname", "DiskFull"}, {"node", "worker-3"}, {"uid", "6f1c"}};
    for (int i = 0; i < 40; ++i) {
        many["label_" + std::to_string(i)] = "value-" + std::to_string(i);
    }
    const std::string long_one =
        render(make_notification({make_alert(Status::firing, many)})).text + "\n";
    const std::size_t at = long_one.find("[静默](");
    ASSERT_NE(at, std::string::npos) << long_one;
    const std::string link = long_one.substr(at, long_one.find(")\n", at) - at);
    EXPECT_LE(link.size(), kMaxSilenceLink) << link;
    EXPECT_NE(link.find("alertname%3D%22DiskFull%22%2Cnode%3D%22worker-3%22"), std::string::npos)
        << link;
    EXPECT_EQ(link.find("uid"), std::string::npos) << link;
    EXPECT_EQ(link.find("label_"), std::string::npos) << link;
    // so does one whose full link would pass the longest link DingTalk is given (kMaxUrl)
    const std::string huge = silence_link_of(
        fixture("mixed"),
        make_alert(Status::firing, {{"alertname", "DiskFull"}, {"big", std::string(2100, 'v')}}),
        default_hidden_labels());
    EXPECT_NE(huge.find("filter=%7Balertname%3D%22DiskFull%22%7D"), std::string::npos) << huge;

    // a value's quotes and backslashes are escaped in its matcher, then URL-encoded like the rest
    const std::string quoted =
        render(make_notification({make_alert(Status::firing,
                                             {{"alertname", "Q"}, {"path", "C:\\tmp \"x\" 中"}})}))
            .text;
    EXPECT_NE(quoted.find("filter=%7Balertname%3D%22Q%22%2Cpath%3D%22C%3A%5C%5Ctmp%20%5C%22x%5C%22"
                          "%20%E4%B8%AD%22%7D)"),
              std::string::npos)
        << quoted;

    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    s.silence_link = false;
    EXPECT_EQ(render_message(fixture("mixed"), opt).text.find("静默"), std::string::npos);
    for (const char *url : {"", "ftp://am.example", "javascript:alert(1)"}) {
        Notification n = fixture("mixed");
        n.external_url = url;
        EXPECT_EQ(render(n).text.find("静默"), std::string::npos) << url;
    }
}

TEST(Render, DetailFallsBackMessageDescriptionSummary)
{
    struct Case {
        Labels annotations;
        const char *shown;
    };
    const Case cases[] = {
        {{{"message", "M"}, {"description", "D"}, {"summary", "S"}}, "M"},
        {{{"description", "D"}, {"summary", "S"}}, "D"},
        {{{"summary", "S"}}, "S"},
        {{{"message", ""}, {"description", "D"}}, "D"},
    };
    for (const Case &c : cases) {
        const Alert a = make_alert(Status::firing, {{"alertname", "A"}}, c.annotations);
        const std::string text = render(make_notification({a})).text + "\n";
        EXPECT_NE(text.find(std::string("\n**告警详情**: ") + c.shown + "\n"), std::string::npos)
            << "want " << c.shown << " in\n"
            << text;
    }
}

TEST(Render, OtherLabelsOnOneLine)
{
    const std::string text = render(fixture("mixed")).text;
    EXPECT_EQ(line_starting(text, "**其他标签**: job=node"), "**其他标签**: job=node-exporter");
    for (const std::string &line : {line_starting(text, "**其他标签**: container=legacy"),
                                    line_starting(text, "**其他标签**: job=node")}) {
        ASSERT_FALSE(line.empty()) << text;
        for (const char *hidden : {"alertname=", "severity=", "pod=", "pod_name=", "namespace="}) {
            EXPECT_EQ(line.find(hidden), std::string::npos) << line;
        }
    }
}
