// Delivery: DingTalk's verdicts, the send URL, redaction, the reply and the log line.
#include "delivery.hpp"

#include "json.hpp"
#include "sign.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

using namespace dingtalk;

namespace
{

const std::string kToken = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const std::string kSecret = "SEC1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f801";

HttpReply reply(long status, std::string body, Transport t = Transport::ok)
{
    HttpReply r;
    r.transport = t;
    r.status = status;
    r.body = std::move(body);
    return r;
}

HttpReply failure(Transport t, std::string error)
{
    HttpReply r;
    r.transport = t;
    r.error = std::move(error);
    return r;
}

bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

JsonPtr parse_json(const std::string &text)
{
    json_error_t err;
    JsonPtr root(json_loadb(text.data(), text.size(), 0, &err));
    EXPECT_TRUE(root) << err.text << " in " << text;
    return root;
}

} // namespace

TEST(Interpret, ErrcodeZeroIsDelivered)
{
    const Report r = interpret(reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    EXPECT_EQ(r.outcome, Outcome::delivered);
    EXPECT_EQ(r.http_status, 200);
    EXPECT_EQ(r.errcode, 0);
    EXPECT_EQ(r.errmsg, "ok");
    EXPECT_FALSE(r.transient);
}

TEST(Interpret, ThrottledIs503)
{
    const Report r = interpret(
        reply(200, R"({"errcode":130101,"errmsg":"send too fast, exceed 20 times per minute"})"));
    EXPECT_EQ(r.outcome, Outcome::throttled);
    EXPECT_EQ(r.http_status, 503) << "a 5xx makes Alertmanager retry";
    EXPECT_EQ(r.errcode, 130101);
    EXPECT_TRUE(contains(r.reason, "130101")) << r.reason;
}

TEST(Interpret, RefusedNamesErrcodeErrmsgAndHint)
{
    struct Case {
        long errcode;
        const char *errmsg;
        const char *hint;
    };
    const Case cases[] = {
        {310000, "keywords not in content, more: [https://ding-doc.dingtalk.com/doc]",
         "set dingtalk_keyword"},
        {310000, "sign not match, more: [https://ding-doc.dingtalk.com/doc]",
         "check dingtalk_secret"},
        {310000, "invalid timestamp", "check dingtalk_secret and the clock"},
        {310000, "ip X.X.X.X not in whitelist", "IP allow-list"},
        {310000, "something new", "security settings"},
        {300001, "token is not exist", "dingtalk_token"},
        {460101, "message too long, exceed 20000 bytes", "too long"},
        {101002, "message is too long", "too long"},
        {400013, "invalid message", "not accepted"},
    };
    for (const Case &c : cases) {
        SCOPED_TRACE(c.errcode);
        const Report r = interpret(reply(200, "{\"errcode\":" + std::to_string(c.errcode) +
                                                  ",\"errmsg\":\"" + c.errmsg + "\"}"));
        EXPECT_EQ(r.outcome, Outcome::refused);
        EXPECT_EQ(r.http_status, 502);
        EXPECT_EQ(r.errcode, c.errcode);
        EXPECT_EQ(r.errmsg, c.errmsg);
        EXPECT_FALSE(r.transient);
        EXPECT_TRUE(contains(r.reason, std::to_string(c.errcode))) << r.reason;
        EXPECT_TRUE(contains(r.reason, c.errmsg)) << r.reason;
        EXPECT_TRUE(contains(r.reason, c.hint)) << r.reason;
    }
}

TEST(Interpret, ErrmsgIsSanitized)
{
    const Report r = interpret(reply(200, R"({"errcode":310000,"errmsg":"line1\nline2\r\u0007)" +
                                              std::string(1000, 'x') + "\"}"));
    EXPECT_EQ(r.errmsg.find_first_of("\r\n\x07"), std::string::npos) << r.errmsg;
    EXPECT_LT(r.errmsg.size(), 260u);
    EXPECT_EQ(r.reason.find('\n'), std::string::npos);
}

TEST(Interpret, HttpErrorIsUnreachableAndTransient)
{
    const Report r = interpret(reply(500, "<html><body><h1>500 Internal Server Error</h1></html>"));
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_TRUE(r.transient);
    EXPECT_FALSE(r.errcode) << "no errcode is not a number any reply can carry";
    EXPECT_TRUE(contains(r.reason, "500")) << r.reason;

    const Report r502 = interpret(reply(502, R"({"errcode":0})"));
    EXPECT_EQ(r502.outcome, Outcome::unreachable) << "an errcode 0 in an error reply is no proof";
}

TEST(Interpret, Http200WithoutErrcodeIsNotDelivered)
{
    for (const char *body :
         {R"({"ok":true})", "<html>Welcome to nginx!</html>", "", "[0]", R"({"errcode":"0"})",
          R"({"errcode":null})", R"({"errcode":0.0})", "{\"errcode\":0"}) {
        SCOPED_TRACE(body);
        const Report r = interpret(reply(200, body));
        EXPECT_NE(r.outcome, Outcome::delivered);
        EXPECT_EQ(r.outcome, Outcome::unreachable);
        EXPECT_EQ(r.http_status, 502);
        EXPECT_FALSE(r.reason.empty());
    }
}

TEST(Interpret, TransportFailures)
{
    const Report t = interpret(failure(Transport::timeout, "Operation timed out after 10001 ms"));
    EXPECT_EQ(t.outcome, Outcome::timeout);
    EXPECT_EQ(t.http_status, 502);
    EXPECT_TRUE(t.transient);
    EXPECT_TRUE(contains(t.reason, "10001 ms")) << t.reason;

    const Report c = interpret(failure(Transport::connect_failed, "Couldn't connect to server"));
    EXPECT_EQ(c.outcome, Outcome::unreachable);
    EXPECT_EQ(c.http_status, 502);
    EXPECT_TRUE(c.transient);
    EXPECT_TRUE(contains(c.reason, "connect failed")) << c.reason;

    const Report s = interpret(failure(Transport::certificate, "SSL certificate problem"));
    EXPECT_EQ(s.outcome, Outcome::unreachable);
    EXPECT_EQ(s.http_status, 502);
    EXPECT_FALSE(s.transient) << "a bad certificate does not fix itself";
    EXPECT_TRUE(contains(s.reason, "SSL certificate problem")) << s.reason;

    for (Transport tr : {Transport::dropped, Transport::other}) {
        const Report d = interpret(failure(tr, "Recv failure"));
        EXPECT_EQ(d.outcome, Outcome::unreachable);
        EXPECT_EQ(d.http_status, 502);
    }
}

TEST(SendUrl, TokenAndSignature)
{
    Target t;
    dingtalk_test::edit(t).api_url = "https://oapi.dingtalk.com/robot/send";
    t.token = kToken;
    EXPECT_EQ(send_url(t), "https://oapi.dingtalk.com/robot/send?access_token=" + kToken);

    t.secret = kSecret;
    const std::string url = send_url(t);
    std::smatch m;
    ASSERT_TRUE(
        std::regex_match(url, m,
                         std::regex(R"(https://oapi\.dingtalk\.com/robot/send\?access_token=)" +
                                    kToken + R"(&timestamp=(\d{13})&sign=([^&]+))")))
        << url;
    EXPECT_EQ(m[2].str(), sign(kSecret, std::stoll(m[1].str())));
    EXPECT_FALSE(contains(url, kSecret));
}

TEST(SendUrl, ApiUrlWithAQuery)
{
    Target t;
    dingtalk_test::edit(t).api_url = "http://127.0.0.1:8080/robot/send?tenant=ops";
    t.token = "abc";
    EXPECT_EQ(send_url(t), "http://127.0.0.1:8080/robot/send?tenant=ops&access_token=abc");
    t.secret = kSecret;
    EXPECT_EQ(send_url(t).rfind("http://127.0.0.1:8080/robot/send?tenant=ops&access_token=abc&"
                                "timestamp=",
                                0),
              0u)
        << send_url(t);
}

TEST(Redact, RemovesTokenAndSecretEverywhere)
{
    Target t;
    t.token = kToken;
    t.secret = kSecret;
    const std::string text = "url ?access_token=" + kToken + "&x=" + kToken + kToken + " secret " +
                             kSecret + " end " + kSecret;
    const std::string out = redact(text, t);
    EXPECT_FALSE(contains(out, kToken)) << out;
    EXPECT_FALSE(contains(out, kSecret)) << out;
    EXPECT_EQ(out, "url ?access_token=***&x=****** secret *** end ***");

    Target none;
    EXPECT_EQ(redact("nothing to hide", none), "nothing to hide");
    EXPECT_EQ(redact("", t), "");
}

TEST(ReportJson, DeliveredCarriesDingTalksAnswer)
{
    Report r = interpret(reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    r.alerts = 3;
    r.shown = 3;
    const std::string body = r.reply_json();
    EXPECT_EQ(body.back(), '\n');
    JsonPtr j = parse_json(body);
    ASSERT_TRUE(j);
    EXPECT_TRUE(json_is_true(json_object_get(j.get(), "ok")));
    EXPECT_STREQ(json_string_value(json_object_get(j.get(), "reason")), r.reason.c_str());
    EXPECT_EQ(json_integer_value(json_object_get(j.get(), "errcode")), 0);
    EXPECT_EQ(json_object_get(j.get(), "errmsg"), nullptr) << "only in verbose replies";
    EXPECT_EQ(json_integer_value(json_object_get(j.get(), "alerts")), 3);
    JsonPtr verbose = parse_json(r.reply_json(true));
    EXPECT_STREQ(json_string_value(json_object_get(verbose.get(), "errmsg")), "ok");
}

TEST(ReportJson, RefusedAndUnreachable)
{
    const Report refused =
        interpret(reply(200, R"({"errcode":310000,"errmsg":"sign not match \"x\""})"));
    JsonPtr j = parse_json(refused.reply_json());
    ASSERT_TRUE(j);
    EXPECT_TRUE(json_is_false(json_object_get(j.get(), "ok")));
    EXPECT_EQ(json_integer_value(json_object_get(j.get(), "errcode")), 310000);
    EXPECT_EQ(json_object_get(j.get(), "errmsg"), nullptr) << "DingTalk's words: log only";
    const std::string said = json_string_value(json_object_get(j.get(), "reason"));
    EXPECT_TRUE(contains(said, "310000")) << said;
    EXPECT_FALSE(contains(said, "sign not match")) << said;
    JsonPtr v = parse_json(refused.reply_json(true));
    EXPECT_STREQ(json_string_value(json_object_get(v.get(), "errmsg")), "sign not match \"x\"");
    EXPECT_TRUE(contains(json_string_value(json_object_get(v.get(), "reason")), "sign not match"));

    const Report down =
        interpret(failure(Transport::connect_failed, "Failed to connect to 10.1.2.3 port 443"));
    JsonPtr d = parse_json(down.reply_json());
    ASSERT_TRUE(d);
    EXPECT_TRUE(json_is_false(json_object_get(d.get(), "ok")));
    EXPECT_STREQ(json_string_value(json_object_get(d.get(), "reason")),
                 "cannot reach DingTalk (connect failed)")
        << "no address for strangers";
    EXPECT_TRUE(contains(down.reason, "10.1.2.3 port 443")) << "the log has it";
    EXPECT_EQ(json_object_get(d.get(), "errcode"), nullptr) << "DingTalk never answered";

    JsonPtr plain = parse_json(reply_json(false, "queue \"full\"\n"));
    ASSERT_TRUE(plain);
    EXPECT_STREQ(json_string_value(json_object_get(plain.get(), "reason")), "queue \"full\"\n");
}

TEST(ReportSummary, StatusOutcomeCountsAndReason)
{
    Report r = interpret(reply(200, R"({"errcode":310000,"errmsg":"keywords not in content"})"));
    r.alerts = 12;
    r.shown = 9;
    r.attempts = 1;
    const std::string s = r.summary();
    EXPECT_EQ(s.rfind("502 refused, 12 alerts (9 shown), 1 attempt, errcode 310000, ", 0), 0u) << s;
    EXPECT_TRUE(contains(s, "keywords not in content")) << s;

    Report ok = interpret(reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    ok.alerts = 1;
    ok.shown = 1;
    ok.attempts = 2;
    EXPECT_EQ(ok.summary().rfind("200 delivered, 1 alert, 2 attempts, errcode 0, ", 0), 0u)
        << ok.summary();
}

// errcode -1 is DingTalk's "系统繁忙": busy, try again later. Not a refusal.
TEST(Interpret, BusyIsTransient)
{
    const Report r = interpret(reply(200, R"({"errcode":-1,"errmsg":"系统繁忙"})"));
    EXPECT_EQ(r.outcome, Outcome::busy);
    EXPECT_EQ(r.http_status, 503);
    EXPECT_TRUE(r.transient);
    ASSERT_TRUE(r.errcode);
    EXPECT_EQ(*r.errcode, -1);
    EXPECT_TRUE(contains(r.summary(), "errcode -1")) << r.summary();
    EXPECT_TRUE(retry_delay(r, std::chrono::milliseconds(0), std::chrono::seconds(10)));
}

// A reset in the handshake is a network fault; only a certificate that fails is permanent.
TEST(Interpret, HandshakeFailureIsTransient)
{
    const Report r = interpret(failure(Transport::handshake, "Connection reset by peer"));
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_TRUE(r.transient);
    EXPECT_TRUE(contains(r.reason, "TLS handshake failed")) << r.reason;
}

// Of several messages, each gets its own retries: the attempts of those before do not count.
TEST(RetryDelay, CountsTheAttemptsOfTheMessageBeingSent)
{
    Report r = interpret(reply(502, "bad gateway"));
    r.attempts = 9; // eight messages taken before, then this one failed once
    r.message_attempts = 1;
    const auto d = retry_delay(r, std::chrono::milliseconds(0), std::chrono::seconds(10));
    ASSERT_TRUE(d);
    EXPECT_EQ(d->count(), 100);
    r.message_attempts = 8;
    EXPECT_FALSE(retry_delay(r, std::chrono::milliseconds(0), std::chrono::seconds(10)));
}
