// render_message under DingTalk's size limit: big groups, huge values, Alertmanager's own
// truncation, and mentions.
#include "render.hpp"

#include "json.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;
using dingtalk_test::is_valid_utf8;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;
using dingtalk_test::occurrences;
using dingtalk_test::render;

namespace
{

Alert crashloop(std::size_t i, Status status = Status::firing)
{
    const std::string pod = "api-7d9f8b6c5d-" + std::to_string(10000 + i);
    return make_alert(
        status,
        {{"alertname", "KubePodCrashLooping"},
         {"severity", "critical"},
         {"namespace", "kube-ops"},
         {"pod", pod},
         {"instance", "10.244." + std::to_string(i % 250) + ".17:8080"},
         {"job", "kube-state-metrics"}},
        {{"message", "Pod kube-ops/" + pod + " is restarting 1.05 times / 10 minutes."}});
}

Notification big_group(std::size_t firing, std::size_t resolved)
{
    std::vector<Alert> alerts;
    for (std::size_t i = 0; i < resolved; ++i) {
        alerts.push_back(crashloop(i, Status::resolved)); // resolved first: must come last
    }
    for (std::size_t i = 0; i < firing; ++i) {
        alerts.push_back(crashloop(resolved + i));
    }
    Notification n = make_notification(std::move(alerts));
    n.group_labels = {{"alertname", "KubePodCrashLooping"}};
    return n;
}

std::string last_line(const std::string &text)
{
    return text.substr(text.rfind('\n') + 1);
}

// The checks every over-full message must pass.
void expect_fits(const Notification &n, const Message &m, std::size_t max = kMaxRequestBytes)
{
    EXPECT_LE(m.request_body.size(), max);
    EXPECT_GE(m.shown, 1u);
    EXPECT_LT(m.shown, n.alerts.size());
    EXPECT_EQ(m.omitted, n.alerts.size() - m.shown);
    EXPECT_EQ(occurrences(m.text, "**告警级别**: "), m.shown);
    EXPECT_TRUE(is_valid_utf8(m.request_body));
    json_error_t err;
    JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, &err));
    EXPECT_TRUE(root) << err.text;
}

} // namespace

TEST(RenderLimits, FiveHundredAlertsFitWithAnOmittedLine)
{
    const Notification n = big_group(500, 0);
    const Message m = render(n);
    expect_fits(n, m);
    // Not wasteful either: most of the allowed size is used.
    EXPECT_GT(m.request_body.size(), kMaxRequestBytes * 3 / 4);
    EXPECT_EQ(last_line(m.text),
              "**另有 " + std::to_string(m.omitted) +
                  " 条告警未显示**（超出钉钉消息长度限制），[在 Alertmanager 中查看全部]"
                  "(http://alertmanager.example:9093/#/alerts)");
    EXPECT_NE(m.text.find("\n#### 告警中 (500)\n"), std::string::npos);
}

TEST(RenderLimits, FiringAlertsAreKeptBeforeResolvedOnes)
{
    const Notification n = big_group(300, 200);
    const Message m = render(n);
    expect_fits(n, m);
    EXPECT_EQ(occurrences(m.text, "**告警状态**: firing"), m.shown);
    EXPECT_EQ(m.text.find("已恢复"), std::string::npos);
    EXPECT_EQ(m.text.find("**告警状态**: resolved"), std::string::npos);
}

TEST(RenderLimits, HugeDescriptionsAreCutButNeverOverflow)
{
    // Each value is capped (the detail at 2048 bytes), so plain text this long is cut, not
    // dropped: whether all five fit is the renderer's call, the limit is not.
    std::vector<Alert> alerts;
    for (std::size_t i = 0; i < 5; ++i) {
        Alert a = crashloop(i);
        a.annotations = {{"description", std::string(1 << 20, 'x')}};
        alerts.push_back(a);
    }
    const Notification n = make_notification(alerts);
    const Message m = render(n);
    EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
    EXPECT_EQ(m.shown + m.omitted, 5u);
    EXPECT_EQ(occurrences(m.text, "x…\n"), m.shown) << "each description ends in an ellipsis";
    EXPECT_EQ(m.text.find(std::string(4096, 'x')), std::string::npos);
}

TEST(RenderLimits, HugeDescriptionsThatDoubleWhenEscaped)
{
    // Backslashes and quotes: markdown escaping and JSON escaping both grow them. ("<" grows
    // only in markdown, to "&lt;" within the per-value caps: five such alerts do fit.)
    for (const std::string unit : {"\\", "\"", "\\\"*_"}) {
        SCOPED_TRACE(unit);
        std::vector<Alert> alerts;
        for (std::size_t i = 0; i < 5; ++i) {
            Alert a = crashloop(i);
            std::string big;
            while (big.size() < (1u << 20)) {
                big += unit;
            }
            a.annotations = {{"description", big}};
            a.labels["pod"] = big;
            a.labels["instance"] = big;
            alerts.push_back(a);
        }
        const Notification n = make_notification(alerts);
        const Message m = render(n);
        EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
        EXPECT_GE(m.shown, 1u);
        EXPECT_LT(m.shown, 5u) << "five alerts this size cannot all fit";
        EXPECT_EQ(m.shown + m.omitted, 5u);
        EXPECT_NE(m.text.find("条告警未显示"), std::string::npos);
    }
}

TEST(RenderLimits, EveryFieldHugeStillFitsOneAlert)
{
    const std::string big(100000, '\\');
    Alert a;
    a.status = Status::resolved;
    for (const char *k : {"alertname", "severity", "pod", "namespace", "instance", "job", "a"}) {
        a.labels[k] = big;
    }
    a.annotations = {{"message", big}};
    a.generator_url = "http://prometheus.example/" + std::string(2000, '"');
    Notification n = make_notification({a, a, a});
    n.group_labels = {{"alertname", big}};
    n.truncated_alerts = 1000000;
    const Message m = render(n);
    EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
    EXPECT_GE(m.shown, 1u);
    EXPECT_LE(m.title.size(), 200u);
}

TEST(RenderLimits, AlertmanagerTruncationIsCounted)
{
    Notification n = big_group(2, 0);
    n.truncated_alerts = 7;
    const Message m = render(n);
    EXPECT_EQ(m.shown, 2u);
    EXPECT_EQ(m.omitted, 0u) << "truncatedAlerts is not part of omitted";
    EXPECT_EQ(last_line(m.text),
              "**另有 7 条告警未显示**（被 Alertmanager max_alerts 截断），"
              "[在 Alertmanager 中查看全部](http://alertmanager.example:9093/#/alerts)");
}

TEST(RenderLimits, BothKindsOfOmissionAreCountedTogether)
{
    Notification n = big_group(500, 0);
    n.truncated_alerts = 40;
    n.external_url = "https://alertmanager.example/am/";
    const Message m = render(n);
    expect_fits(n, m);
    const std::string total = std::to_string(m.omitted + 40);
    EXPECT_EQ(last_line(m.text), "**另有 " + total + " 条告警未显示**（" +
                                     std::to_string(m.omitted) +
                                     " 条超出钉钉消息长度限制，40 "
                                     "条被 Alertmanager max_alerts 截断），[在 Alertmanager "
                                     "中查看全部](https://alertmanager.example/am/#/alerts)");
}

TEST(RenderLimits, HugeTruncatedAlertsDoesNotOverflow)
{
    // The parser takes any non-negative 64-bit count; the sum with omitted alerts must not wrap.
    const ParseResult parsed = parse_notification(
        R"({"truncatedAlerts":9223372036854775807,"alerts":[{"status":"firing"}]})");
    ASSERT_TRUE(parsed.notification.has_value()) << parsed.error;
    Notification n = big_group(500, 0);
    n.truncated_alerts = parsed.notification->truncated_alerts;
    const Message m = render(n);
    expect_fits(n, m);
    EXPECT_EQ(m.text.find("另有 -"), std::string::npos) << last_line(m.text);
}

TEST(RenderLimits, NoLinkWithoutAnHttpExternalUrl)
{
    for (const char *url : {"", "javascript:alert(1)", "alertmanager:9093"}) {
        Notification n = big_group(1, 0);
        n.truncated_alerts = 3;
        n.external_url = url;
        const Message m = render(n);
        EXPECT_EQ(last_line(m.text), "**另有 3 条告警未显示**（被 Alertmanager max_alerts 截断）")
            << url;
    }
}

TEST(RenderLimits, NoOmittedLineWhenEverythingIsShown)
{
    const Message m = render(big_group(3, 2));
    EXPECT_EQ(m.omitted, 0u);
    EXPECT_EQ(m.text.find("另有"), std::string::npos);
}

TEST(RenderLimits, SmallerLimitIsHonoured)
{
    const Notification n = big_group(50, 50);
    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    opt.max_request_bytes = 4000;
    const Message m = render_message(n, opt);
    expect_fits(n, m, 4000);
}

TEST(RenderMentions, AtObjectAndMentionLine)
{
    Mentions at;
    at.mobiles = {"13800000000", "13900000000"};
    const Message m = render(dingtalk_test::fixture("firing"), at);
    EXPECT_EQ(last_line(m.text), "@13800000000 @13900000000");

    json_error_t err;
    JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, &err));
    ASSERT_TRUE(root) << err.text;
    const json_t *a = json_object_get(root.get(), "at");
    ASSERT_TRUE(json_is_object(a)) << m.request_body;
    const json_t *mobiles = json_object_get(a, "atMobiles");
    ASSERT_TRUE(json_is_array(mobiles));
    ASSERT_EQ(json_array_size(mobiles), 2u);
    EXPECT_STREQ(json_string_value(json_array_get(mobiles, 0)), "13800000000");
    EXPECT_STREQ(json_string_value(json_array_get(mobiles, 1)), "13900000000");
    EXPECT_TRUE(json_is_array(json_object_get(a, "atUserIds")));
    EXPECT_TRUE(json_is_false(json_object_get(a, "isAtAll")));
}

TEST(RenderMentions, UserIdsAndEveryone)
{
    Mentions at;
    at.mobiles = {"13800000000"};
    at.user_ids = {"user123"};
    at.all = true;
    const Message m = render(dingtalk_test::fixture("mixed"), at);
    EXPECT_NE(m.text.find("@13800000000"), std::string::npos);
    EXPECT_EQ(last_line(m.text).find("@13800000000"), 0u) << last_line(m.text);
    EXPECT_NE(last_line(m.text).find("@user123"), std::string::npos);
    JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, nullptr));
    ASSERT_TRUE(root);
    const json_t *a = json_object_get(root.get(), "at");
    EXPECT_TRUE(json_is_true(json_object_get(a, "isAtAll")));
    EXPECT_STREQ(json_string_value(json_array_get(json_object_get(a, "atUserIds"), 0)), "user123");

    Mentions everyone;
    everyone.all = true;
    const Message e = render(dingtalk_test::fixture("firing"), everyone);
    EXPECT_EQ(last_line(e.text), "@所有人");
}

TEST(RenderMentions, MentionLineSurvivesTruncation)
{
    Mentions at;
    at.mobiles = {"13800000000"};
    const Notification n = big_group(500, 0);
    const Message m = render(n, at);
    expect_fits(n, m);
    EXPECT_EQ(last_line(m.text), "@13800000000");
    EXPECT_NE(m.text.find("条告警未显示"), std::string::npos);
}
