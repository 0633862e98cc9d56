// render_messages (dingtalk_max_messages): a notification too big for one message goes out as
// several, each under the size limit, no alert split, firing first, "N more" only at the end.
#include "render.hpp"

#include "json.hpp"
#include "template.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;
using dingtalk_test::occurrences;

namespace
{

Notification group(std::size_t firing, std::size_t resolved)
{
    std::vector<Alert> alerts;
    for (std::size_t i = 0; i < firing + resolved; ++i) {
        const std::string pod = "api-" + std::to_string(10000 + i);
        // resolved ones first in the body: they must come last in the messages
        alerts.push_back(make_alert(i < resolved ? Status::resolved : Status::firing,
                                    {{"alertname", "KubePodCrashLooping"},
                                     {"severity", "critical"},
                                     {"namespace", "kube-ops"},
                                     {"pod", pod}},
                                    {{"message", "Pod kube-ops/" + pod + " is restarting."}}));
    }
    Notification n = make_notification(std::move(alerts));
    n.group_labels = {{"alertname", "KubePodCrashLooping"}};
    return n;
}

// The settings and options of one test: u.s.x = ..., then u.messages(n, max_messages).
struct Pages {
    Settings s = dingtalk_test::settings();
    RenderOptions opt;

    explicit Pages(std::size_t max_bytes = kMaxRequestBytes)
    {
        opt.settings = &s;
        opt.max_request_bytes = max_bytes;
    }
    Pages(const Pages &) = delete;

    std::vector<Message> messages(const Notification &n, std::size_t max_messages)
    {
        s.max_messages = max_messages;
        return render_messages(n, opt);
    }
};

JsonPtr parsed(const Message &m)
{
    json_error_t err;
    JsonPtr root(json_loadb(m.request_body.data(), m.request_body.size(), 0, &err));
    EXPECT_TRUE(root) << err.text;
    return root;
}

// The pods the messages show, in order.
std::vector<std::string> pods_in(const std::vector<Message> &ms)
{
    std::vector<std::string> pods;
    for (const Message &m : ms) {
        const std::string line = "**故障pod**: ";
        for (std::size_t p = m.text.find(line); p != std::string::npos;
             p = m.text.find(line, p + 1)) {
            pods.push_back(m.text.substr(p + line.size(), 9));
        }
    }
    return pods;
}

} // namespace

TEST(RenderMessages, OneMessageWhenItFits)
{
    const Notification n = group(3, 1);
    Pages u;
    const auto ms = u.messages(n, 5);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].request_body, render_message(n, u.opt).request_body);
    EXPECT_EQ(ms[0].title.find("(1/"), std::string::npos);
}

TEST(RenderMessages, OneMeansTodaysCut)
{
    const Notification n = group(500, 0);
    Pages u;
    const auto ms = u.messages(n, 1);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].request_body, render_message(n, u.opt).request_body);
    EXPECT_GT(ms[0].omitted, 0u);
}

TEST(RenderMessages, SeveralPagesEachUnderTheLimitAllShown)
{
    const Notification n = group(40, 20);
    const auto ms = Pages(6000).messages(n, 10);
    ASSERT_GE(ms.size(), 2u);
    std::size_t shown = 0;
    for (std::size_t i = 0; i < ms.size(); ++i) {
        const std::string part =
            " (" + std::to_string(i + 1) + "/" + std::to_string(ms.size()) + ")";
        EXPECT_LE(ms[i].request_body.size(), 6000u);
        EXPECT_EQ(ms[i].title, "[FIRING:40, RESOLVED:20] KubePodCrashLooping" + part);
        EXPECT_EQ(ms[i].text.rfind(
                      "### \\[FIRING:40, RESOLVED:20\\] KubePodCrashLooping" + part + "\n", 0),
                  0u)
            << ms[i].text.substr(0, 80);
        EXPECT_EQ(occurrences(ms[i].text, "另有"), 0u) << "everything fits: nothing more";
        EXPECT_EQ(ms[i].omitted, 0u);
        EXPECT_EQ(occurrences(ms[i].text, "**告警级别**: "), ms[i].shown);
        shown += ms[i].shown;
        parsed(ms[i]);
    }
    EXPECT_EQ(shown, n.alerts.size());
    // firing first, in body order; then the resolved ones; each alert once
    const auto pods = pods_in(ms);
    ASSERT_EQ(pods.size(), 60u);
    EXPECT_EQ(pods.front(), "api-10020");
    EXPECT_EQ(pods[39], "api-10059");
    EXPECT_EQ(pods[40], "api-10000");
    EXPECT_EQ(pods.back(), "api-10019");
}

TEST(RenderMessages, TheLastSaysWhatEvenTheyCouldNotShow)
{
    const Notification n = group(500, 0);
    const auto ms = Pages().messages(n, 3);
    ASSERT_EQ(ms.size(), 3u);
    std::size_t shown = 0;
    for (const Message &m : ms) {
        EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
        EXPECT_GE(m.shown, 1u);
        shown += m.shown;
    }
    EXPECT_EQ(ms[0].omitted + ms[1].omitted, 0u);
    EXPECT_EQ(ms[2].omitted, 500u - shown);
    EXPECT_EQ(occurrences(ms[0].text + ms[1].text, "另有"), 0u);
    EXPECT_NE(ms[2].text.find("**另有 " + std::to_string(500 - shown) + " 条告警未显示**"),
              std::string::npos);
    // pages are full: each holds about what one message held before
    EXPECT_GT(shown, 2 * render_message(n, Pages().opt).shown);
    EXPECT_EQ(pods_in(ms).size(), shown);
}

TEST(RenderMessages, AlertmanagersTruncationIsSaidOnceAtTheEnd)
{
    Notification n = group(30, 0);
    n.truncated_alerts = 7;
    const auto ms = Pages(5000).messages(n, 10);
    ASSERT_GE(ms.size(), 2u);
    for (std::size_t i = 0; i + 1 < ms.size(); ++i) {
        EXPECT_EQ(occurrences(ms[i].text, "另有"), 0u);
    }
    EXPECT_NE(ms.back().text.find("**另有 7 条告警未显示**"), std::string::npos);
}

TEST(RenderMessages, OnlyTheFirstMentions)
{
    const Notification n = group(60, 0);
    Pages u(6000);
    u.opt.at.mobiles = {"13800000000"};
    const auto ms = u.messages(n, 10);
    ASSERT_GE(ms.size(), 2u);
    EXPECT_NE(ms[0].text.find("@13800000000"), std::string::npos);
    const JsonPtr first = parsed(ms[0]);
    EXPECT_EQ(json_array_size(json_object_get(json_object_get(first.get(), "at"), "atMobiles")),
              1u);
    for (std::size_t i = 1; i < ms.size(); ++i) {
        EXPECT_EQ(ms[i].text.find("@13800000000"), std::string::npos);
        EXPECT_EQ(ms[i].request_body.find("13800000000"), std::string::npos);
    }
}

TEST(RenderMessages, EveryOneCarriesTheKeyword)
{
    const Notification n = group(60, 0);
    Pages u(6000);
    u.s.keyword = "prodalert";
    const auto ms = u.messages(n, 10);
    ASSERT_GE(ms.size(), 2u);
    for (const Message &m : ms) {
        EXPECT_NE(m.text.find("prodalert"), std::string::npos);
        EXPECT_LE(m.request_body.size(), 6000u);
    }
}

TEST(RenderMessages, TemplatesSeeThePartInTheirTitleOnce)
{
    const Notification n = group(200, 0);
    Pages u(4000);
    std::string error;
    u.s.text_template = Template::parse("## {{title}}\n{{#alerts}}- {{labels.pod}} "
                                        "{{annotations.message}}\n{{/alerts}}{{more}}",
                                        Template::Kind::text, error);
    u.s.title_template = Template::parse("{{title}} via template", Template::Kind::title, error);
    ASSERT_TRUE(u.s.text_template && u.s.title_template) << error;
    const auto ms = u.messages(n, 2);
    ASSERT_EQ(ms.size(), 2u);
    EXPECT_EQ(ms[0].title, "[FIRING:200] KubePodCrashLooping via template (1/2)");
    EXPECT_EQ(ms[0].text.rfind("## \\[FIRING:200\\] KubePodCrashLooping (1/2)\n", 0), 0u)
        << ms[0].text.substr(0, 80);
    EXPECT_EQ(ms[1].text.rfind("## \\[FIRING:200\\] KubePodCrashLooping (2/2)\n", 0), 0u);
    EXPECT_EQ(occurrences(ms[0].text, "另有"), 0u);
    EXPECT_NE(ms[1].text.find("另有"), std::string::npos) << "200 lines do not fit in two";
    EXPECT_LE(ms[0].request_body.size(), 4000u);
    EXPECT_LE(ms[1].request_body.size(), 4000u);
}

TEST(RenderMessages, AnAlertTooBigForAPageStillGoesOutCut)
{
    // one huge alert among small ones: a page holds it cut, as one message would
    Notification n = group(10, 0);
    n.alerts[0].annotations["message"] = std::string(50000, 'x');
    const auto ms = Pages(8000).messages(n, 10);
    std::size_t shown = 0;
    for (const Message &m : ms) {
        EXPECT_LE(m.request_body.size(), 8000u);
        shown += m.shown;
    }
    EXPECT_EQ(shown, 10u);
}

TEST(RenderMessages, EveryPageFitsWhenSomeAlertsAreNotShown)
{
    // Alertmanager's truncation (or dingtalk_max_alerts) puts "N more" on the last page: a
    // page planned without it must never become the last one with it. Limits a byte apart
    // meet every way the last alerts can fall.
    Notification n = group(12, 0);
    n.truncated_alerts = 123456;
    for (std::size_t max = 3000; max <= 6000; max += 7) {
        const auto ms = Pages(max).messages(n, 10);
        for (const Message &m : ms) {
            ASSERT_LE(m.request_body.size(), max) << ms.size() << " messages";
        }
        EXPECT_NE(ms.back().text.find("另有"), std::string::npos);
    }
}

// A retry of a notification whose first messages were taken: only the alerts not posted, in
// pages that go on from the messages taken, and what each covers, so that it is remembered.
TEST(RenderMessages, AResumeShowsOnlyWhatWasNotPostedAndNumbersOn)
{
    const Notification n = group(40, 20);
    Pages first(6000);
    first.opt.at.mobiles = {"13800000000"};
    const auto all = first.messages(n, 10);
    ASSERT_GE(all.size(), 3u);
    std::vector<std::size_t> covered;
    for (const Message &m : all) {
        EXPECT_EQ(m.alerts.size(), m.shown) << "everything fits: each covers what it shows";
        covered.insert(covered.end(), m.alerts.begin(), m.alerts.end());
    }
    std::sort(covered.begin(), covered.end());
    ASSERT_EQ(covered.size(), n.alerts.size());
    for (std::size_t i = 0; i < covered.size(); ++i) {
        ASSERT_EQ(covered[i], i) << "every alert in exactly one message";
    }

    Pages retry(6000);
    retry.opt.posted.assign(n.alerts.size(), false);
    for (const std::size_t i : all[0].alerts) {
        retry.opt.posted[i] = true;
    }
    retry.opt.messages_before = 1;
    const auto rest = retry.messages(n, 10);
    ASSERT_EQ(rest.size(), all.size() - 1);
    std::size_t shown = 0;
    for (std::size_t i = 0; i < rest.size(); ++i) {
        const std::string part =
            " (" + std::to_string(i + 2) + "/" + std::to_string(all.size()) + ")";
        EXPECT_EQ(rest[i].title, "[FIRING:40, RESOLVED:20] KubePodCrashLooping" + part);
        for (const std::size_t a : rest[i].alerts) {
            EXPECT_FALSE(retry.opt.posted[a]) << "an alert posted before is never shown again";
        }
        shown += rest[i].shown;
    }
    EXPECT_EQ(shown, n.alerts.size() - all[0].shown);
    const auto pods = pods_in(rest);
    EXPECT_EQ(pods.size(), shown);
}

TEST(RenderMessages, AResumeThatFitsInOneIsNumberedAfterTheTaken)
{
    const Notification n = group(3, 0);
    Pages retry;
    retry.opt.posted = {true, false, false};
    retry.opt.messages_before = 2;
    const auto ms = retry.messages(n, 10);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].title, "[FIRING:3] KubePodCrashLooping (3/3)");
    EXPECT_EQ(ms[0].shown, 2u);
    EXPECT_EQ(ms[0].alerts, (std::vector<std::size_t>{1, 2}));
}

TEST(RenderMessages, TheLastCoversWhatItCountsInNMore)
{
    const Notification n = group(500, 0);
    const auto ms = Pages().messages(n, 3);
    ASSERT_EQ(ms.size(), 3u);
    std::size_t covered = 0;
    for (const Message &m : ms) {
        covered += m.alerts.size();
    }
    EXPECT_EQ(covered, n.alerts.size()) << "the last message counts the rest: none is left to send";
    EXPECT_GT(ms.back().alerts.size(), ms.back().shown);
}

TEST(RenderMessages, TheMessagesTakenBeforeCountAgainstTheMost)
{
    const Notification n = group(500, 0);
    Pages retry;
    retry.opt.posted.assign(n.alerts.size(), false);
    retry.opt.messages_before = 2;
    const auto ms = retry.messages(n, 3);
    ASSERT_EQ(ms.size(), 1u) << "2 of 3 messages were taken";
    EXPECT_EQ(ms[0].title, "[FIRING:500] KubePodCrashLooping (3/3)");
    EXPECT_EQ(ms[0].alerts.size(), n.alerts.size());
}

// The built-in layout is templates/default.mustache (gallery_test.cpp), and the two are fitted
// differently: the built-in by bisecting over whole renders, a template by a probe that stops
// where the page is full. Their pages must be the same at every limit.
TEST(RenderMessages, DefaultMustachePagesAsTheBuiltInLayout)
{
    std::string error;
    const auto tmpl = Template::parse(dingtalk_test::read_file("../../templates/default.mustache"),
                                      Template::Kind::text, error);
    ASSERT_TRUE(tmpl) << error;
    Notification n = group(25, 10);
    for (std::size_t max = 2500; max <= 9000; max += 131) {
        for (const std::size_t pages : {2, 3, 10}) {
            SCOPED_TRACE(std::to_string(max) + " bytes, " + std::to_string(pages) + " messages");
            n.truncated_alerts = max % 2 ? 7 : 0;
            Pages built_in(max), templated(max);
            templated.s.text_template = tmpl;
            for (Pages *u : {&built_in, &templated}) {
                u->opt.at.mobiles = {"13800000000"};
                u->s.keyword = max % 3 ? "" : "prodalert";
                if (pages == 3) { // a resume: the first eight posted, one message taken
                    u->opt.posted.assign(n.alerts.size(), false);
                    std::fill(u->opt.posted.begin(), u->opt.posted.begin() + 8, true);
                    u->opt.messages_before = 1;
                }
            }
            const auto a = built_in.messages(n, pages), b = templated.messages(n, pages);
            ASSERT_EQ(a.size(), b.size());
            for (std::size_t i = 0; i < a.size(); ++i) {
                EXPECT_EQ(a[i].alerts, b[i].alerts);
                EXPECT_EQ(a[i].shown, b[i].shown);
                EXPECT_EQ(a[i].request_body, b[i].request_body);
            }
        }
    }
}

// A template whose text is shorter with every alert shown (it says how many are not): the most
// that fit is all of them, in one message, where a bisection over the runs of alerts could stop
// short of it. Each run is still fitted under the limit, whole.
TEST(RenderMessages, ATemplateShorterWithEveryAlertShownSendsAllThatFit)
{
    std::string error;
    Pages u(300);
    u.s.text_template = Template::parse("### {{title}}\n\n{{more}}", Template::Kind::text, error);
    ASSERT_TRUE(u.s.text_template) << error;
    const Notification n = group(40, 0);
    const auto ms = u.messages(n, 1);
    ASSERT_EQ(ms.size(), 1u);
    EXPECT_EQ(ms[0].shown, 40u);
    EXPECT_EQ(ms[0].omitted, 0u);
    EXPECT_EQ(ms[0].alerts.size(), 40u);
    EXPECT_LE(ms[0].request_body.size(), 300u);
}
