// Delivery::run end to end, without the internet: a bad body, a port nobody listens on, and a
// mock DingTalk on 127.0.0.1.
#include "delivery.hpp"

#include "json.hpp"
#include "mock_dingtalk.hpp"
#include "sign.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>

using namespace dingtalk;
using dingtalk_test::MockDingTalk;

namespace
{

const std::string kToken = "7a6b5c4d3e2f10017a6b5c4d3e2f10017a6b5c4d3e2f10017a6b5c4d3e2f1001";
const std::string kSecret = "SECfeedfacecafebeef0123456789abcdeffeedfacecafebeef0123456789abcdef";

bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

class DeliveryRun : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }

    static Target target(const std::string &api_url, bool with_secret = true)
    {
        Target t;
        Settings &s = dingtalk_test::edit(t);
        s.api_url = api_url;
        s.timeout = std::chrono::milliseconds(3000);
        t.token = kToken;
        t.secret = with_secret ? kSecret : "";
        return t;
    }

    static Report deliver(const Target &t, const std::string &body)
    {
        Delivery d(t, body);
        dingtalk_test::ready(d);
        d.run(dingtalk_test::in(t.settings->timeout));
        return d.report();
    }

    static void expect_no_secrets(const Report &r)
    {
        for (const std::string &text : {r.reason, r.summary(), r.reply_json(), r.errmsg}) {
            EXPECT_FALSE(contains(text, kToken)) << text;
            EXPECT_FALSE(contains(text, kSecret)) << text;
        }
    }
};

} // namespace

TEST_F(DeliveryRun, BadBodyIsA400AndNothingIsSent)
{
    const Report r = deliver(target("http://127.0.0.1:1/robot/send"), R"({"alerts":[]})");
    EXPECT_EQ(r.outcome, Outcome::bad_request);
    EXPECT_EQ(r.http_status, 400);
    EXPECT_EQ(r.attempts, 0);
    EXPECT_TRUE(contains(r.reason, "alerts is empty")) << r.reason;
    EXPECT_TRUE(contains(r.summary(), "400 bad request")) << r.summary();
}

TEST_F(DeliveryRun, SecretsInABadBodyAreRedactedFromTheReason)
{
    // The error names the offending label, and here the label's name is the token.
    const Report r = deliver(target("http://127.0.0.1:1/robot/send"),
                             R"({"alerts":[{"labels":{")" + kToken + R"(":1}}]})");
    EXPECT_EQ(r.outcome, Outcome::bad_request);
    EXPECT_TRUE(contains(r.reason, "must be a string")) << r.reason;
    expect_no_secrets(r);
}

TEST_F(DeliveryRun, BadBodyReasonIsOneLine)
{
    // A label name holding a line break must not forge a second line in the log.
    const Report r = deliver(target("http://127.0.0.1:1/robot/send"),
                             R"({"alerts":[{"labels":{"a\n2026/11/24 [alert] forged":1}}]})");
    EXPECT_EQ(r.outcome, Outcome::bad_request);
    EXPECT_EQ(r.reason.find_first_of("\r\n"), std::string::npos) << r.reason;
    EXPECT_EQ(r.summary().find_first_of("\r\n"), std::string::npos) << r.summary();
}

TEST_F(DeliveryRun, NothingListeningIsUnreachableQuickly)
{
    const auto start = std::chrono::steady_clock::now();
    const Report r =
        deliver(target("http://127.0.0.1:1/robot/send"), dingtalk_test::fixture_text("firing"));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_TRUE(r.transient);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_EQ(r.alerts, 3u);
    EXPECT_EQ(r.shown, 3u);
    EXPECT_FALSE(r.reason.empty());
    EXPECT_LT(took, std::chrono::seconds(2));
    expect_no_secrets(r);
}

TEST_F(DeliveryRun, RunningAgainCountsAttempts)
{
    Delivery d(target("http://127.0.0.1:1/robot/send"), dingtalk_test::fixture_text("mixed"));
    dingtalk_test::ready(d);
    d.run(dingtalk_test::in(std::chrono::milliseconds(1000)));
    d.run(dingtalk_test::in(std::chrono::milliseconds(1000)));
    EXPECT_EQ(d.report().attempts, 2);
    EXPECT_EQ(d.report().alerts, 4u) << "the rendered message is kept for the next attempt";
    EXPECT_EQ(d.report().outcome, Outcome::unreachable);
    EXPECT_TRUE(contains(d.report().summary(), "2 attempts")) << d.report().summary();
}

TEST_F(DeliveryRun, DeliveredWithSignedUrlAndTheRenderedBody)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    ASSERT_NE(mock.port(), 0);
    const std::string body = dingtalk_test::fixture_text("firing");
    const Report r = deliver(target(mock.url()), body);
    EXPECT_EQ(r.outcome, Outcome::delivered) << r.reason;
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.errcode, 0);
    EXPECT_EQ(r.attempts, 1);
    EXPECT_EQ(r.shown, 3u);
    expect_no_secrets(r);

    const std::string req = mock.request();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(req, m,
                                  std::regex("^POST /robot/send\\?access_token=" + kToken +
                                             "&timestamp=(\\d{13})&sign=([A-Za-z0-9%]+) HTTP/1.1"
                                             "\r\n")))
        << req;
    EXPECT_EQ(m[2].str(), sign(kSecret, std::stoll(m[1].str())));
    EXPECT_TRUE(contains(req, "\r\nContent-Type: application/json")) << req;

    const std::string sent = req.substr(req.find("\r\n\r\n") + 4);
    const Message expected = dingtalk_test::render(dingtalk_test::fixture("firing"));
    EXPECT_EQ(sent, expected.request_body);
}

TEST_F(DeliveryRun, RefusedKeepsDingTalksWordsWithoutSecrets)
{
    // A gateway in front of the robot API may echo the URL it was called with.
    MockDingTalk mock(MockDingTalk::json_reply(
        200, R"({"errcode":310000,"errmsg":"sign not match for /robot/send?access_token=)" +
                 kToken + "\"}"));
    const Report r = deliver(target(mock.url(), false), dingtalk_test::fixture_text("resolved"));
    EXPECT_EQ(r.outcome, Outcome::refused);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_EQ(r.errcode, 310000);
    EXPECT_TRUE(contains(r.reason, "sign not match")) << r.reason;
    expect_no_secrets(r);
}

TEST_F(DeliveryRun, ThrottledIs503)
{
    MockDingTalk mock(MockDingTalk::json_reply(
        200, R"({"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"})"));
    const Report r = deliver(target(mock.url()), dingtalk_test::fixture_text("mixed"));
    EXPECT_EQ(r.outcome, Outcome::throttled);
    EXPECT_EQ(r.http_status, 503);
    EXPECT_EQ(r.alerts, 4u);
}

TEST_F(DeliveryRun, HtmlErrorPageIsUnreachable)
{
    MockDingTalk mock("HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\nContent-Length: "
                      "19\r\nConnection: close\r\n\r\n<h1>Bad Gateway</h1");
    const Report r = deliver(target(mock.url()), dingtalk_test::fixture_text("firing"));
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_TRUE(r.transient);
    EXPECT_TRUE(contains(r.reason, "502")) << r.reason;
}

// A server that read the whole request and says nothing may have posted it: the attempt waits
// for the answer (dingtalk_answer_timeout), then says so; it is never a plain timeout.
TEST_F(DeliveryRun, ASilentServerAfterTheWholeRequestIsInDoubt)
{
    MockDingTalk mock("");
    Target t = target(mock.url());
    dingtalk_test::edit(t).timeout = std::chrono::milliseconds(300);
    dingtalk_test::edit(t).answer_timeout = std::chrono::milliseconds(1000);
    const auto start = std::chrono::steady_clock::now();
    const Report r = deliver(t, dingtalk_test::fixture_text("firing"));
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(r.outcome, Outcome::doubtful) << r.reason;
    EXPECT_EQ(r.http_status, 503);
    EXPECT_TRUE(r.transient);
    EXPECT_TRUE(r.sent);
    EXPECT_TRUE(contains(r.reason, "may have posted it")) << r.reason;
    EXPECT_GE(took, std::chrono::milliseconds(1000))
        << "the answer was waited for, past the budget";
    EXPECT_LT(took, std::chrono::seconds(3));
    expect_no_secrets(r);
}

// The attempt's budget bounds connecting (TLS included), not the answer: a server that never
// finishes the handshake times out within it, and nothing went out.
TEST_F(DeliveryRun, TheBudgetBoundsConnecting)
{
    MockDingTalk mock("");
    Target t = target("https://127.0.0.1:" + std::to_string(mock.port()) + "/robot/send");
    dingtalk_test::edit(t).timeout = std::chrono::milliseconds(20000);
    Delivery d(t, dingtalk_test::fixture_text("firing"));
    dingtalk_test::ready(d);
    const auto start = std::chrono::steady_clock::now();
    d.run(dingtalk_test::in(std::chrono::milliseconds(300))); // what is left of the delivery's time
    EXPECT_EQ(d.report().outcome, Outcome::timeout) << d.report().reason;
    // well under the 20 s timeout (a wide margin: valgrind on a busy machine took 3.7 s)
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST_F(DeliveryRun, HugeReplyIsRefusedNotBuffered)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":")" +
                                                        std::string(100 * 1024, 'x') + "\"}"));
    const Report r = deliver(target(mock.url()), dingtalk_test::fixture_text("firing"));
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_TRUE(contains(r.reason, "64 KiB")) << r.reason;
}

// The rate limit counts on the deadline: a thread that picks the task up after it (the queue
// was long) sends nothing, and says why.
TEST_F(DeliveryRun, NothingIsSentPastTheDeadline)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    Delivery d(target(mock.url()), dingtalk_test::fixture_text("firing"));
    dingtalk_test::ready(d);
    d.run(dingtalk::monotonic_ms() - 1);
    const Report &r = d.report();
    EXPECT_EQ(r.outcome, Outcome::late);
    EXPECT_EQ(r.http_status, 503);
    EXPECT_FALSE(r.sent);
    EXPECT_TRUE(contains(r.reason, "queue")) << r.reason;
    EXPECT_EQ(mock.request(), "(the mock has not finished reading)") << "nothing reached it";
}

TEST_F(DeliveryRun, TheReportSaysWhetherTheRequestLeft)
{
    Delivery refused(target("http://127.0.0.1:1/robot/send"),
                     dingtalk_test::fixture_text("firing"));
    dingtalk_test::ready(refused);
    refused.run(dingtalk_test::in(std::chrono::milliseconds(1000)));
    EXPECT_FALSE(refused.report().sent) << "a connection refused sent nothing";

    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    const std::uint64_t before = dingtalk::monotonic_ms();
    Delivery d(target(mock.url()), dingtalk_test::fixture_text("firing"));
    dingtalk_test::ready(d);
    d.run(dingtalk_test::in(std::chrono::milliseconds(3000)));
    EXPECT_TRUE(d.report().sent);
    EXPECT_GE(d.report().ended_ms, before);
    EXPECT_LE(d.report().ended_ms, dingtalk::monotonic_ms());
}

// The first run sends nothing: it keys the notification, so that a retry can be looked up
// first. A resume renders only what was not posted, and goes on numbering.
TEST_F(DeliveryRun, TheFirstRunKeysTheNotificationAndAResumeSendsOnlyTheRest)
{
    std::string body = R"({"version":"4","status":"firing","groupKey":"g","alerts":[)";
    for (int i = 0; i < 30; ++i) {
        body += std::string(i ? "," : "") +
                R"({"status":"firing","labels":{"alertname":"A","pod":"p)" + std::to_string(i) +
                R"("},"annotations":{"message":")" + std::string(1500, 'x') +
                R"("},"startsAt":"2026-11-23T16:04:05Z"})";
    }
    body += "]}";
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    Target t = target(mock.url(), false);
    dingtalk_test::edit(t).max_messages = 3;
    Delivery d(t, body);
    d.run(dingtalk_test::in(t.settings->timeout));
    EXPECT_EQ(d.left(), 3u);
    EXPECT_EQ(d.report().attempts, 0) << "nothing sent by the first run";
    ASSERT_EQ(d.alert_keys().size(), 30u);
    EXPECT_NE(d.key(), 0u);
    Delivery again(t, body);
    again.run(0);
    EXPECT_EQ(again.key(), d.key()) << "the same notification, the same key";

    // an earlier request got the first message taken: its alerts are posted
    const ParseResult parsed = parse_notification(body);
    const auto all = render_messages(*parsed.notification, dingtalk_test::options(*t.settings));
    ASSERT_EQ(all.size(), 3u);
    std::vector<Posted> states(30, Posted::no);
    for (const std::size_t i : all[0].alerts) {
        states[i] = Posted::yes;
    }
    d.resume(states, 1);
    EXPECT_FALSE(d.rendered());
    d.run(0);
    ASSERT_TRUE(d.rendered());
    EXPECT_EQ(d.left(), 2u);
    d.go();
    d.run(dingtalk_test::in(t.settings->timeout));
    const Report &r = d.report();
    EXPECT_EQ(r.outcome, Outcome::delivered) << r.reason;
    EXPECT_EQ(r.taken, 2u);
    EXPECT_EQ(r.messages, 3u);
    EXPECT_EQ(d.left(), 1u);
    EXPECT_TRUE(contains(r.reply_json(), R"("messages":3,"taken":2)")) << r.reply_json();
    EXPECT_TRUE(contains(r.summary(), "2 of 3 messages taken")) << r.summary();
    const std::string req = mock.request();
    EXPECT_EQ(req.substr(req.find("\r\n\r\n") + 4), all[1].request_body)
        << "the same split: nothing moved";
}

TEST_F(DeliveryRun, AllPostedBeforeIsA200WithoutASend)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    Delivery d(target(mock.url()), dingtalk_test::fixture_text("mixed"));
    d.run(0);
    d.posted_before();
    EXPECT_EQ(d.report().outcome, Outcome::posted_before);
    EXPECT_TRUE(contains(d.report().reply_json(), R"("ok":true)")) << d.report().reply_json();
    EXPECT_EQ(d.report().http_status, 200);
    EXPECT_EQ(d.left(), 0u);
    EXPECT_TRUE(contains(d.report().reason, "already posted")) << d.report().reason;
}
