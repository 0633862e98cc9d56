// Folding (dingtalk_fold): a notification's section is its own message without the heading and
// the closing lines; a folded message holds as many sections as fit, says how many, mentions
// everyone they mention and carries the keyword once.
#include "fold.hpp"
#include "template.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;
using dingtalk_test::occurrences;

namespace
{

Notification one(const std::string &name, Status status = Status::firing)
{
    Notification n = make_notification(
        {make_alert(status, {{"alertname", name}, {"severity", "critical"}, {"pod", name + "-0"}},
                    {{"message", name + " is down"}})});
    n.group_labels = {{"alertname", name}};
    return n;
}

Section section(const Notification &n, const Settings &s, Mentions at = {})
{
    RenderOptions opt = dingtalk_test::options(s);
    opt.at = std::move(at);
    const auto ms = render_messages(n, opt);
    const auto sec = section_of(n, opt, ms.front(), ms.size());
    EXPECT_TRUE(sec.has_value());
    return sec.value_or(Section{});
}

} // namespace

TEST(Fold, ASectionIsTheMessageWithoutItsHeadingAndClosingLines)
{
    Settings s = dingtalk_test::settings();
    s.keyword = "prodalert";
    const Notification n = one("DiskFull");
    const Section sec = section(n, s, Mentions{{"13800000000"}, {}, false});
    EXPECT_EQ(sec.title, "[FIRING:1] DiskFull");
    EXPECT_NE(sec.text.rfind("### ", 0), 0u) << "the heading goes";
    EXPECT_EQ(sec.text.rfind("#### 告警中 (1)", 0), 0u) << sec.text.substr(0, 60);
    EXPECT_EQ(sec.text.find("prodalert"), std::string::npos) << "the keyword goes";
    EXPECT_EQ(sec.text.find("@13800000000"), std::string::npos) << "the mention line goes";
    EXPECT_TRUE(sec.firing);
    EXPECT_EQ(sec.at.mobiles, std::vector<std::string>{"13800000000"});
}

TEST(Fold, NoSectionForANotificationOfSeveralMessages)
{
    Settings s = dingtalk_test::settings();
    s.max_messages = 3;
    std::vector<Alert> alerts;
    for (int i = 0; i < 200; ++i) {
        alerts.push_back(make_alert(Status::firing,
                                    {{"alertname", "A"}, {"pod", std::to_string(i)}},
                                    {{"message", std::string(300, 'x')}}));
    }
    const Notification n = make_notification(alerts);
    const RenderOptions opt = dingtalk_test::options(s);
    const auto ms = render_messages(n, opt);
    ASSERT_GT(ms.size(), 1u);
    EXPECT_FALSE(section_of(n, opt, ms.front(), ms.size()));
    RenderOptions resumed = opt;
    resumed.messages_before = 1;
    const auto rest = render_messages(one("B"), resumed);
    EXPECT_FALSE(section_of(one("B"), resumed, rest.front(), rest.size()))
        << "a resume's message is not the notification's first: it goes alone";
}

TEST(Fold, OneMessageSaysHowManyAndMentionsThemAllWithTheKeywordOnce)
{
    Settings s = dingtalk_test::settings();
    s.keyword = "prodalert";
    const std::vector<Section> sections = {
        section(one("DiskFull"), s, Mentions{{"13800000000"}, {}, false}),
        section(one("NodeDown"), s, Mentions{{"13800000000"}, {"oncall"}, false}),
        section(one("Recovered", Status::resolved), s),
    };
    std::size_t taken = 0;
    const Message m = render_fold(sections, dingtalk_test::options(s), taken);
    EXPECT_EQ(taken, 3u);
    EXPECT_EQ(m.title.rfind("3 条通知: [FIRING:1] DiskFull; [FIRING:1] NodeDown; [RESOLVED:1] "
                            "Recovered",
                            0),
              0u)
        << m.title;
    EXPECT_EQ(occurrences(m.text, "#### \\[FIRING:1\\] "), 2u) << m.text;
    EXPECT_EQ(occurrences(m.text, "#### \\[RESOLVED:1\\] Recovered"), 1u);
    EXPECT_EQ(occurrences(m.text, "prodalert"), 1u);
    EXPECT_EQ(occurrences(m.text, "@13800000000"), 1u);
    EXPECT_EQ(occurrences(m.text, "@oncall"), 1u);
    EXPECT_NE(m.request_body.find(R"("atMobiles":["13800000000"])"), std::string::npos);
    EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
}

TEST(Fold, AsManyAsFitTheRestWait)
{
    Settings s = dingtalk_test::settings();
    std::vector<Section> sections;
    for (int i = 0; i < 40; ++i) {
        sections.push_back(section(one("Alert" + std::to_string(i)), s));
    }
    RenderOptions opt = dingtalk_test::options(s);
    opt.max_request_bytes = 6000;
    std::size_t taken = 0;
    const Message m = render_fold(sections, opt, taken);
    EXPECT_GT(taken, 1u);
    EXPECT_LT(taken, 40u);
    EXPECT_LE(m.request_body.size(), 6000u);
    EXPECT_EQ(occurrences(m.text, "#### \\["), taken) << "each in order, the first ones";
    EXPECT_NE(m.text.find("Alert0"), std::string::npos);
    EXPECT_EQ(m.text.find("Alert" + std::to_string(taken) + "-"), std::string::npos);
    const std::vector<Section> one_more(sections.begin(), sections.begin() + taken + 1);
    std::size_t again = 0;
    render_fold(one_more, opt, again);
    EXPECT_EQ(again, taken) << "the most that fit: one more does not";

    opt.max_request_bytes = 100;
    EXPECT_EQ((render_fold(sections, opt, taken), taken), 0u) << "not even one: none";
}

TEST(Fold, ATemplatesMessageIsASectionWithItsOwnText)
{
    Settings s = dingtalk_test::settings();
    std::string error;
    s.text_template =
        Template::parse("#### {{status}}\n\n{{#alerts}}- {{alertname}} on {{pod}}\n{{/alerts}}",
                        Template::Kind::text, error);
    ASSERT_TRUE(s.text_template) << error;
    const Section sec = section(one("DiskFull"), s);
    EXPECT_EQ(sec.text, "#### firing\n\n- DiskFull on DiskFull-0");
    EXPECT_EQ(sec.title, "[FIRING:1] DiskFull");
}
