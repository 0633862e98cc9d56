// The action location's POST without nginx: the form, then Alertmanager asked (a stand-in that
// answers a list of replies, one connection each), then the page.
#include "mock_sequence.hpp"
#include "silencer.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using namespace dingtalk;
using dingtalk_test::MockSequence;

namespace
{

std::string json(int status, const std::string &body)
{
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

ActionLink link()
{
    ActionLink l;
    l.matchers = {{"alertname", "Disk"}, {"instance", "db-1"}};
    l.seconds = 7200;
    return l;
}

// The pages' times are in the location's dingtalk_timezone.
const TimeZone &shanghai()
{
    static const TimeZone zone = [] {
        std::string error;
        return *TimeZone::find("Asia/Shanghai", error);
    }();
    return zone;
}

ActionForm form(std::string name = "张三", std::string comment = "swap tonight")
{
    ActionForm f;
    f.name = std::move(name);
    f.comment = std::move(comment);
    return f;
}

AlertmanagerApi api(const MockSequence &am)
{
    AlertmanagerApi a;
    a.url = am.url();
    a.timeout = std::chrono::milliseconds(1000);
    a.answer_timeout = std::chrono::milliseconds(1000);
    return a;
}

const std::string kMatchers =
    R"("matchers":[{"name":"alertname","value":"Disk","isRegex":false,"isEqual":true},)"
    R"({"name":"instance","value":"db-1","isRegex":false,"isEqual":true}])";

class Silencer : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }
};

} // namespace

TEST(ActionFormTest, ReadsTheFourFields)
{
    ActionForm f;
    std::string error;
    ASSERT_TRUE(parse_action_form("l=k1.AAA.BBB&t=1000.CC&name=%E5%BC%A0+%E4%B8%89&comment=a%0Ab"
                                  "&extra=ignored",
                                  f, error))
        << error;
    EXPECT_EQ(f.link, "k1.AAA.BBB");
    EXPECT_EQ(f.token, "1000.CC");
    EXPECT_EQ(f.name, "张 三");
    EXPECT_EQ(f.comment, "a b") << "a line break is a space";
}

TEST(ActionFormTest, RefusesWhatThePageCannotSend)
{
    const std::pair<std::string, std::string> cases[] = {
        {"l=a&l=b", "表单字段“l”损坏或重复"},
        {"l=%zz", "表单字段“l”损坏或重复"},
        {"name=%ff", "姓名不是 UTF-8"},
        {"comment=a%01b", "备注含有控制字符"},
        {"name=" + std::string(65, 'x'), "姓名过长"},
        {"comment=" + std::string(257, 'x'), "备注过长"},
        {"l=" + std::string(kMaxActionForm, 'x'), "表单超过 4096 字节"},
    };
    for (const auto &[body, why] : cases) {
        ActionForm f;
        std::string error;
        EXPECT_FALSE(parse_action_form(body, f, error)) << body;
        EXPECT_EQ(error, why);
    }
}

TEST_F(Silencer, CreatesASilenceWhenNoneIsThere)
{
    MockSequence am({json(200, "[]"), json(200, R"({"silenceID":"new-1"})")});
    const ActionOutcome out = silence_from_link(api(am), link(), form(), 1'800'000'000, shanghai());
    ASSERT_EQ(out.result, ActionResult::created) << out.error;
    EXPECT_EQ(out.silence_id, "new-1");
    EXPECT_EQ(out.page.heading, "已静默");
    EXPECT_EQ(out.page.message, "Alertmanager 已静默这条告警，2小时。");
    ASSERT_FALSE(out.page.details.empty());
    EXPECT_EQ(out.page.details[0].second, "2027-01-15 18:00:00 +08:00");
    ASSERT_EQ(am.requests().size(), 2u);
    EXPECT_EQ(am.requests()[0].rfind("GET /api/v2/silences?filter=", 0), 0u);
    const std::string &post = am.requests()[1];
    EXPECT_EQ(post.rfind("POST /api/v2/silences ", 0), 0u);
    EXPECT_NE(post.find(R"("createdBy":"DingTalk: 张三")"), std::string::npos) << post;
    EXPECT_NE(post.find(R"("comment":"从钉钉静默，2小时：swap tonight")"), std::string::npos)
        << post;
    EXPECT_NE(post.find(R"("endsAt":"2027-01-15T10:00:00Z")"), std::string::npos) << post;
}

TEST_F(Silencer, ALinkUsedTwiceFindsTheSilence)
{
    MockSequence am({json(200, R"([{"id":"old-1","status":{"state":"active"},)"
                               R"("createdBy":"DingTalk: 李四","comment":"c",)"
                               R"("endsAt":"2027-01-15T10:00:00.000Z",)" +
                                   kMatchers + "}]")});
    const ActionOutcome out = silence_from_link(api(am), link(), form(), 1'800'000'000, shanghai());
    ASSERT_EQ(out.result, ActionResult::already);
    EXPECT_EQ(out.silence_id, "old-1");
    EXPECT_EQ(out.page.heading, "已在静默中");
    EXPECT_EQ(out.page.details[0].second, "DingTalk: 李四");
    EXPECT_EQ(out.page.details[1].second, "2027-01-15 18:00:00 +08:00") << "in dingtalk_timezone";
    EXPECT_EQ(am.requests().size(), 1u) << "nothing created";
}

// "Until resolved": the silence it makes, or one such link made before, is kept (to expire when
// the alert resolves); a 2-hour silence found by an "until resolved" link is not.
TEST_F(Silencer, UntilResolvedSilencesAreMarkedToBeKept)
{
    ActionLink l = link();
    l.until_resolved = true;
    l.seconds = 7 * 86400;
    {
        MockSequence am({json(200, "[]"), json(200, R"({"silenceID":"new-1"})")});
        const ActionOutcome out = silence_from_link(api(am), l, form(), 1'800'000'000, shanghai());
        ASSERT_EQ(out.result, ActionResult::created) << out.error;
        EXPECT_TRUE(out.until_resolved);
        ASSERT_EQ(am.requests().size(), 2u);
        // the comment the module writes is the one it recognises below
        EXPECT_NE(
            am.requests()[1].find(R"("comment":"从钉钉静默，直到恢复（最长7天）：swap tonight")"),
            std::string::npos)
            << am.requests()[1];
    }
    for (const auto &[comment, kept] :
         {std::pair<std::string, bool>{"从钉钉静默，直到恢复（最长7天）：换盘", true},
          {"从钉钉静默，2小时", false}}) {
        MockSequence am({json(200, R"([{"id":"old-1","status":{"state":"active"},)"
                                   R"("createdBy":"DingTalk","comment":")" +
                                       comment + R"(","endsAt":"2027-01-15T10:00:00.000Z",)" +
                                       kMatchers + "}]")});
        const ActionOutcome out = silence_from_link(api(am), l, form(), 1'800'000'000, shanghai());
        ASSERT_EQ(out.result, ActionResult::already);
        EXPECT_EQ(out.until_resolved, kept) << comment;
    }
    MockSequence am({json(200, "[]"), json(200, R"({"silenceID":"new-2"})")});
    EXPECT_FALSE(
        silence_from_link(api(am), link(), form(), 1'800'000'000, shanghai()).until_resolved);
}

// An answer over the sender's 64 KiB cap is not "could not be reached": it was reached.
TEST_F(Silencer, AnAnswerTooLargeIsToldApart)
{
    MockSequence am({json(200, "[" + std::string(70 * 1024, ' ') + "]")});
    const ActionOutcome out = silence_from_link(api(am), link(), form(), 1'800'000'000, shanghai());
    EXPECT_EQ(out.result, ActionResult::failed);
    EXPECT_EQ(out.page.message.find("无法连接"), std::string::npos) << out.page.message;
    EXPECT_NE(out.page.message.find("超过了本服务器读取的上限"), std::string::npos);
    EXPECT_EQ(out.error, "Alertmanager's answer is larger than the 64 KiB this module reads");
}

TEST_F(Silencer, AlertmanagerDownChangesNothingAndSaysSo)
{
    MockSequence am({}); // refuses nothing, answers nothing: closed at once
    AlertmanagerApi a = api(am);
    a.url = "http://127.0.0.1:1"; // nothing listens there
    const ActionOutcome out = silence_from_link(a, link(), form(), 1'800'000'000, shanghai());
    EXPECT_EQ(out.result, ActionResult::failed);
    EXPECT_FALSE(out.page.ok);
    EXPECT_EQ(out.page.heading, "未静默");
    EXPECT_NE(out.page.message.find("无法连接 Alertmanager"), std::string::npos);
    EXPECT_EQ(out.error.rfind("Alertmanager could not be reached", 0), 0u) << out.error;
    // the address and the details go to the log, not to whoever holds a link
    EXPECT_TRUE(out.page.details.empty());
    EXPECT_EQ(out.page.message.find("127.0.0.1"), std::string::npos);
}

TEST_F(Silencer, ARefusedSilenceIsAFailurePage)
{
    MockSequence am({json(200, "[]"), json(400, R"("bad matchers")")});
    ActionLink l = link();
    l.until_resolved = true;
    l.seconds = 7 * 86400;
    const ActionOutcome out =
        silence_from_link(api(am), l, form("", ""), 1'800'000'000, shanghai());
    EXPECT_EQ(out.result, ActionResult::failed);
    EXPECT_EQ(out.error, R"(Alertmanager answered 400: "bad matchers")");
    ASSERT_EQ(am.requests().size(), 2u);
    EXPECT_NE(am.requests()[1].find(R"("createdBy":"DingTalk")"), std::string::npos);
    const std::string comment = R"x("comment":"从钉钉静默，直到恢复（最长7天）")x";
    EXPECT_NE(am.requests()[1].find(comment), std::string::npos) << am.requests()[1];
}

TEST(SilencerRequest, OnlyTheFormsContentType)
{
    EXPECT_TRUE(is_form_type("application/x-www-form-urlencoded"));
    EXPECT_TRUE(is_form_type("Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
    EXPECT_FALSE(is_form_type(""));
    EXPECT_FALSE(is_form_type("application/json"));
    EXPECT_FALSE(is_form_type("multipart/form-data; boundary=x"));
    EXPECT_FALSE(is_form_type("application/x-www-form-urlencodedx"));
}

// The page's own form passes (a browser's Origin is its host, or "null" under no-referrer);
// another site's does not, whichever header says so.
TEST(SilencerRequest, CrossSitePostsAreRefused)
{
    const char *host = "hook.example.com";
    EXPECT_EQ(cross_site("", "", host), nullptr); // curl, old browsers: the form token decides
    EXPECT_EQ(cross_site("https://hook.example.com", "same-origin", host), nullptr);
    EXPECT_EQ(cross_site("http://Hook.Example.com", "", host), nullptr); // TLS ended in front
    EXPECT_EQ(cross_site("null", "same-origin", host), nullptr);
    EXPECT_EQ(cross_site("", "none", host), nullptr);
    EXPECT_NE(cross_site("https://evil.example", "", host), nullptr);
    EXPECT_NE(cross_site("https://hook.example.com.evil.example", "", host), nullptr);
    EXPECT_NE(cross_site("https://hook.example.com:8443", "", host), nullptr);
    EXPECT_NE(cross_site("hook.example.com", "", host), nullptr);
    EXPECT_NE(cross_site("null", "cross-site", host), nullptr);
    EXPECT_NE(cross_site("https://hook.example.com", "same-site", host), nullptr);
    EXPECT_NE(cross_site("https://evil.example", "", ""), nullptr);
}

TEST(SilencerRequest, ResultsAreTheMetricsLabels)
{
    EXPECT_STREQ(to_string(ActionResult::created), "created");
    EXPECT_STREQ(to_string(ActionResult::already), "already");
    EXPECT_STREQ(to_string(ActionResult::failed), "failed");
    EXPECT_STREQ(to_string(ActionResult::refused), "refused");
}
