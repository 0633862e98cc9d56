// Alertmanager's silence API, against a stand-in that answers one request as Alertmanager 0.25
// would: what the client sends, what it makes of the answers, and every failure's error.
#include "mock_dingtalk.hpp"
#include "silence.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;
using dingtalk_test::MockDingTalk;

namespace
{

class SilenceApi : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }

    static AlertmanagerApi api_of(const MockDingTalk &am)
    {
        AlertmanagerApi api;
        api.url = am.url("/am");
        api.authorization = bearer_authorization("s3cret-token");
        api.timeout = std::chrono::milliseconds(1000);
        api.answer_timeout = std::chrono::milliseconds(500);
        return api;
    }

    static std::string reply(int status, const std::string &body)
    {
        return MockDingTalk::json_reply(status, body);
    }
};

const Matchers kMatchers = {{"alertname", "Disk \"full\""}, {"instance", "db-1:9100"}};

NewSilence new_silence()
{
    NewSilence s;
    s.matchers = kMatchers;
    s.starts_at = 1'800'000'000;
    s.ends_at = 1'800'007'200;
    s.created_by = "DingTalk: 张三";
    s.comment = "disk swap tonight";
    return s;
}

} // namespace

TEST(SilenceFormat, TimesAndFilters)
{
    EXPECT_EQ(rfc3339_utc(1'800'000'000), "2027-01-15T08:00:00Z");
    EXPECT_EQ(filter_matcher("a", "x\"y\\z\nw"), "a=\"x\\\"y\\\\z\\nw\"");
    EXPECT_EQ(basic_authorization("am:pw"), "Basic YW06cHc=");
}

TEST_F(SilenceApi, CreateSendsTheSilenceAndReturnsItsId)
{
    MockDingTalk am(reply(200, R"({"silenceID":"6f1c3d2a-0b1e-4c55-9a2f-1d2e3f405060"})"));
    const SilenceResult r = create_silence(api_of(am), new_silence());
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(r.id, "6f1c3d2a-0b1e-4c55-9a2f-1d2e3f405060");

    const std::string sent = am.request();
    EXPECT_EQ(sent.rfind("POST /am/api/v2/silences HTTP/1.1\r\n", 0), 0u) << sent;
    EXPECT_NE(sent.find("\r\nAuthorization: Bearer s3cret-token\r\n"), std::string::npos);
    EXPECT_NE(sent.find("\r\nContent-Type: application/json"), std::string::npos);
    const std::string body = sent.substr(sent.find("\r\n\r\n") + 4);
    EXPECT_EQ(body, R"({"matchers":[{"name":"alertname","value":"Disk \"full\"","isRegex":false,)"
                    R"("isEqual":true},{"name":"instance","value":"db-1:9100","isRegex":false,)"
                    R"("isEqual":true}],"startsAt":"2027-01-15T08:00:00Z",)"
                    R"("endsAt":"2027-01-15T10:00:00Z","createdBy":"DingTalk: 张三",)"
                    R"("comment":"disk swap tonight"})")
        << body;
}

TEST_F(SilenceApi, CreateRefusedSaysWhatAlertmanagerSaid)
{
    MockDingTalk am(reply(400, R"("start time must be before end time")"));
    const SilenceResult r = create_silence(api_of(am), new_silence());
    EXPECT_FALSE(r.ok);
    EXPECT_FALSE(r.unreachable);
    EXPECT_EQ(r.error, R"(Alertmanager answered 400: "start time must be before end time")");
}

TEST_F(SilenceApi, CreateWithoutAnIdIsAnError)
{
    MockDingTalk am(reply(200, R"({"silenceID":"../x"})"));
    const SilenceResult r = create_silence(api_of(am), new_silence());
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "Alertmanager's answer has no silenceID");
}

TEST_F(SilenceApi, AlertmanagerDownIsUnreachable)
{
    AlertmanagerApi api;
    {
        MockDingTalk gone(reply(200, "{}"));
        api = api_of(gone);
    } // closed: nothing listens on the port now
    const SilenceResult r = create_silence(api, new_silence());
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.unreachable);
    EXPECT_EQ(r.error.rfind("Alertmanager could not be reached (", 0), 0u) << r.error;
    EXPECT_EQ(r.error.find("s3cret"), std::string::npos);
}

TEST_F(SilenceApi, ASilentAlertmanagerTimesOut)
{
    MockDingTalk am(""); // reads, never answers
    const auto start = std::chrono::steady_clock::now();
    const SilenceResult r = find_silences(api_of(am), kMatchers);
    EXPECT_FALSE(r.ok);
    EXPECT_TRUE(r.unreachable);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
}

TEST_F(SilenceApi, FindKeepsActiveSilencesWithExactlyTheseMatchers)
{
    const std::string m = R"("matchers":[{"name":"instance","value":"db-1:9100","isRegex":false,)"
                          R"("isEqual":true},{"name":"alertname","value":"Disk \"full\"",)"
                          R"("isRegex":false,"isEqual":true}])";
    const std::string broader = R"("matchers":[{"name":"alertname","value":"Disk \"full\"",)"
                                R"("isRegex":false,"isEqual":true}])";
    const std::string list =
        "["
        R"({"id":"a1","status":{"state":"active"},"createdBy":"DingTalk: li",)"
        R"("comment":"c","endsAt":"2027-01-15T10:00:00.000Z",)" +
        m + "}," + R"({"id":"a2","status":{"state":"expired"},"createdBy":"x",)" + m + "}," +
        R"({"id":"a3","status":{"state":"active"},"createdBy":"y",)" + broader + "}]";
    MockDingTalk am(reply(200, list));
    const SilenceResult r = find_silences(api_of(am), kMatchers);
    ASSERT_TRUE(r.ok) << r.error;
    ASSERT_EQ(r.silences.size(), 1u);
    EXPECT_EQ(r.silences[0].id, "a1");
    EXPECT_EQ(r.silences[0].created_by, "DingTalk: li");
    EXPECT_EQ(r.silences[0].ends_at, "2027-01-15T10:00:00.000Z");

    const std::string sent = am.request();
    EXPECT_EQ(sent.rfind("GET /am/api/v2/silences?filter=alertname%3D%22Disk%20%5C%22full%5C%22%22"
                         "&filter=instance%3D%22db-1%3A9100%22 HTTP/1.1\r\n",
                         0),
              0u)
        << sent;
}

TEST_F(SilenceApi, FindRefusesAnAnswerThatIsNotAList)
{
    MockDingTalk am(reply(200, R"({"not":"a list"})"));
    const SilenceResult r = find_silences(api_of(am), kMatchers);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "Alertmanager's answer is not a list of silences");
}

TEST_F(SilenceApi, ExpireDeletesById)
{
    MockDingTalk am("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    const SilenceResult r = expire_silence(api_of(am), "6f1c3d2a-0b1e");
    ASSERT_TRUE(r.ok) << r.error;
    EXPECT_EQ(am.request().rfind("DELETE /am/api/v2/silence/6f1c3d2a-0b1e HTTP/1.1\r\n", 0), 0u)
        << am.request();
}

TEST_F(SilenceApi, ExpiringAnExpiredSilenceIsDone)
{
    MockDingTalk am(reply(500, R"("silence 6f1c already expired")"));
    EXPECT_TRUE(expire_silence(api_of(am), "6f1c").ok);
}

TEST_F(SilenceApi, ExpireRefusesIdsThatAreNotIds)
{
    const SilenceResult r = expire_silence(AlertmanagerApi{}, "../../api/v2/status");
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "not a silence id");
}

TEST(SilenceConfig, AlertmanagerUrlIsChecked)
{
    EXPECT_EQ(check_alertmanager_url("http://alertmanager:9093"), "");
    EXPECT_EQ(check_alertmanager_url("https://am.example.com/prefix/"), "");
    EXPECT_EQ(check_alertmanager_url("am:9093"), "must be an http:// or https:// URL");
    EXPECT_NE(check_alertmanager_url("http://am:9093/?x=1"), "");
    EXPECT_EQ(check_alertmanager_url("http://admin:pw@am:9093"),
              "must not hold credentials: use dingtalk_alertmanager_bearer_file or _basic_file");
    EXPECT_EQ(check_alertmanager_url("http://am:9093/a@b"), "") << "an @ in the path is no user";
}

TEST(SilenceConfig, CredentialFiles)
{
    std::string out, error;
    EXPECT_TRUE(authorization_from_file("# the API token\n\ntok-123\n", false, out, error));
    EXPECT_EQ(out, "Bearer tok-123");
    EXPECT_TRUE(authorization_from_file("am:pw\r\n", true, out, error));
    EXPECT_EQ(out, "Basic YW06cHc=");

    const struct {
        const char *text;
        bool basic;
        const char *error;
    } bad[] = {
        {"", false, "no credential in the file"},
        {"a\nb\n", false, "line 2: more than one credential"},
        {"secret token\n", false, "line 1: spaces or non-ASCII bytes"},
        {"no-colon-secret\n", true, "line 1: expected user:password"},
    };
    for (const auto &b : bad) {
        error.clear();
        EXPECT_FALSE(authorization_from_file(b.text, b.basic, out, error)) << b.text;
        EXPECT_EQ(error, b.error);
        EXPECT_EQ(error.find("secret"), std::string::npos);
    }
}

TEST_F(SilenceApi, ATrailingSlashOfTheBaseIsNotDoubled)
{
    MockDingTalk am("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    AlertmanagerApi api = api_of(am);
    api.url += "/";
    EXPECT_TRUE(expire_silence(api, "abc").ok);
    EXPECT_EQ(am.request().rfind("DELETE /am/api/v2/silence/abc HTTP/1.1\r\n", 0), 0u);
}

TEST_F(SilenceApi, AMatcherThatCannotBeWrittenMakesNoSilence)
{
    NewSilence s = new_silence();
    s.matchers.emplace_back("pod", "\xff\xfe");
    const SilenceResult r = create_silence(AlertmanagerApi{}, s);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "the silence could not be written as JSON (not UTF-8?)");
}
