// dingtalk_proxy: which URLs are taken, how they are shown, and what a failing proxy reads as.
#include "delivery.hpp"
#include "sender.hpp"

#include "mock_dingtalk.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

using namespace dingtalk;
using dingtalk_test::MockDingTalk;

namespace
{

const std::string kToken = "5e4d3c2b1a0998877665544332211005e4d3c2b1a0998877665544332211000";
const std::string kPassword = "Pr0xyPassw0rdNeverLogged";

bool contains(const std::string &hay, const std::string &needle)
{
    return hay.find(needle) != std::string::npos;
}

std::string refused(const std::string &url)
{
    std::string error;
    const auto p = parse_proxy(url, error);
    EXPECT_FALSE(p) << url;
    EXPECT_FALSE(error.empty()) << url;
    return error;
}

} // namespace

TEST(ParseProxy, TakesHttpHttpsAndSocks5h)
{
    for (const std::string url :
         {"http://127.0.0.1:3128", "https://proxy.example:443", "socks5h://10.0.0.1:1080",
          "HTTP://Proxy.Example:8080/", "http://[::1]:3128"}) {
        std::string error;
        const auto p = parse_proxy(url, error);
        ASSERT_TRUE(p) << url << ": " << error;
        EXPECT_EQ(p->url, url);
        EXPECT_EQ(p->shown, url);
        EXPECT_EQ(p->password, "");
    }
}

TEST(ParseProxy, CredentialsAreKeptForCurlAndHiddenEverywhereElse)
{
    std::string error;
    const auto p = parse_proxy("http://ops:" + kPassword + "@proxy.example:3128", error);
    ASSERT_TRUE(p) << error;
    EXPECT_EQ(p->url, "http://ops:" + kPassword + "@proxy.example:3128");
    EXPECT_EQ(p->shown, "http://***@proxy.example:3128");
    EXPECT_EQ(p->password, kPassword);

    const auto user_only = parse_proxy("http://ops@proxy.example:3128", error);
    ASSERT_TRUE(user_only) << error;
    EXPECT_EQ(user_only->shown, "http://***@proxy.example:3128");

    const auto encoded = parse_proxy("socks5h://ops:p%40ss%2Fw@10.0.0.1:1080", error);
    ASSERT_TRUE(encoded) << error;
    EXPECT_EQ(encoded->password, "p%40ss%2Fw");
    EXPECT_EQ(encoded->shown, "socks5h://***@10.0.0.1:1080");
}

TEST(ParseProxy, RefusesOtherSchemesAndMalformedUrlsWithoutTheirPassword)
{
    const std::string creds = "ops:" + kPassword + "@";
    const struct {
        std::string url, why;
    } cases[] = {
        {"ftp://" + creds + "proxy:21", "must be an http://, https:// or socks5h:// URL"},
        {"socks5://" + creds + "proxy:1080", "the proxy, not this host, resolves"},
        {"socks4://proxy:1080", "socks5h://"},
        {creds + "proxy:3128", "must be an http://"},
        {"proxy.example:3128", "must be an http://"},
        {"http://" + creds + "proxy.example", "needs a port"},
        {"http://" + creds + "proxy.example:", "needs a port"},
        {"http://" + creds + "proxy.example:0", "bad port"},
        {"http://" + creds + "proxy.example:65536", "bad port"},
        {"http://" + creds + "proxy.example:31x8", "bad port"},
        {"http://" + creds + ":3128", "no host name"},
        {"http://" + creds, "no host name"},
        {"http://[::1:3128", "bad IPv6"},
        {"http://" + creds + "[zz]:3128", "bad IPv6"},
        {"http://" + creds + "pro%78y:3128", "bad host name"},
        {"http://" + creds + "proxy:3128/path", "without a path"},
        {"http://" + creds + "proxy:3128?x=1", "without spaces, queries"},
        {"http://ops:pa/ss" + kPassword + "@proxy:3128", "percent-encoded"},
        {"http://ops:p@ss" + kPassword + "@proxy:3128", "percent-encoded"},
        {"http://ops:" + kPassword + " @proxy:3128", "without spaces"},
    };
    for (const auto &c : cases) {
        const std::string error = refused(c.url);
        EXPECT_TRUE(contains(error, c.why)) << c.url << ": " << error;
        EXPECT_FALSE(contains(error, kPassword)) << error;
    }
    EXPECT_TRUE(contains(refused("ftp://" + creds + "proxy:21"), "\"ftp://***@proxy:21\""));
}

TEST(HideCredentials, EverythingBeforeTheLastAt)
{
    EXPECT_EQ(hide_credentials("http://proxy:3128"), "http://proxy:3128");
    EXPECT_EQ(hide_credentials("http://u:p@proxy:3128"), "http://***@proxy:3128");
    EXPECT_EQ(hide_credentials("http://u:p@x@proxy:3128"), "http://***@proxy:3128");
    EXPECT_EQ(hide_credentials("u:p@proxy:3128"), "***@proxy:3128");
    EXPECT_EQ(hide_credentials(""), "");
}

TEST(Redact, RemovesTheProxyPassword)
{
    Target t;
    t.token = kToken;
    std::string error;
    dingtalk_test::edit(t).proxy = std::make_shared<const Proxy>(
        *parse_proxy("http://ops:" + kPassword + "@proxy:3128", error));
    EXPECT_EQ(redact("a " + kPassword + " b " + kToken, t), "a *** b ***");
    // the user too, where libcurl writes it (an API key may be the user, with no password)
    EXPECT_EQ(redact("proxy 'http://ops:***@proxy:3128' failed", t),
              "proxy 'http://***:***@proxy:3128' failed");
    dingtalk_test::edit(t).proxy =
        std::make_shared<const Proxy>(*parse_proxy("http://K3yK3yK3y@proxy:3128", error));
    EXPECT_EQ(redact("Unsupported proxy syntax in 'http://K3yK3yK3y@proxy:3128'", t),
              "Unsupported proxy syntax in 'http://***@proxy:3128'");
}

TEST(Interpret, ProxyFailuresNameTheProxyNotDingTalk)
{
    std::string error;
    const Proxy proxy = *parse_proxy("http://ops:" + kPassword + "@10.0.0.1:3128", error);
    HttpReply down;
    down.transport = Transport::proxy_down;
    down.error = "Failed to connect to 10.0.0.1 port 3128 after 0 ms: Couldn't connect to server";
    const Report d = interpret(down, &proxy);
    EXPECT_EQ(d.outcome, Outcome::unreachable);
    EXPECT_EQ(d.http_status, 502);
    EXPECT_TRUE(d.transient) << "a proxy that is down may be back";
    EXPECT_EQ(d.category, "cannot reach the proxy");
    EXPECT_EQ(d.reason, "cannot reach the proxy http://***@10.0.0.1:3128: " + down.error);

    HttpReply refused;
    refused.transport = Transport::proxy_refused;
    refused.proxy_status = 407;
    refused.error = "CONNECT tunnel failed, response 407";
    const Report r = interpret(refused, &proxy);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_FALSE(r.transient) << "wrong credentials do not fix themselves";
    EXPECT_TRUE(contains(r.category, "HTTP 407: check the user and password in dingtalk_proxy"))
        << r.category;
    EXPECT_TRUE(contains(r.reason, "(the proxy http://***@10.0.0.1:3128)")) << r.reason;
    EXPECT_FALSE(contains(r.reply_json(), "10.0.0.1")) << "addresses stay in the log";

    refused.proxy_status = 401; // what tinyproxy 1.11 answers
    EXPECT_TRUE(contains(interpret(refused, &proxy).category, "HTTP 401: check the user"));
    EXPECT_FALSE(interpret(refused, &proxy).transient);
    refused.proxy_status = 503;
    EXPECT_TRUE(interpret(refused, &proxy).transient);

    HttpReply http_error;
    http_error.transport = Transport::ok;
    http_error.status = 502;
    const Report h = interpret(http_error, &proxy);
    EXPECT_EQ(h.category, "DingTalk answered HTTP 502");
    EXPECT_TRUE(contains(h.reason, "through the proxy http://***@10.0.0.1:3128")) << h.reason;
    for (const Report *rep : {&d, &r, &h}) {
        EXPECT_FALSE(contains(rep->reason + rep->reply_json(true), kPassword));
    }
}

class ProxySend : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }

    static Report deliver(const std::string &api_url, const std::string &proxy_url)
    {
        Target t;
        Settings &s = dingtalk_test::edit(t);
        s.api_url = api_url;
        t.token = kToken;
        s.timeout = std::chrono::milliseconds(3000);
        if (!proxy_url.empty()) {
            std::string error;
            auto p = parse_proxy(proxy_url, error);
            EXPECT_TRUE(p) << error;
            s.proxy = std::make_shared<const Proxy>(*p);
        }
        Delivery d(t, dingtalk_test::fixture_text("firing"));
        dingtalk_test::ready(d);
        d.run(dingtalk_test::in(s.timeout));
        return d.report();
    }
};

TEST_F(ProxySend, AProxyNobodyListensOnIsNamedInTheReason)
{
    const Report r =
        deliver("https://oapi.dingtalk.com/robot/send", "http://ops:" + kPassword + "@127.0.0.1:1");
    EXPECT_EQ(r.outcome, Outcome::unreachable);
    EXPECT_EQ(r.http_status, 502);
    EXPECT_TRUE(r.transient);
    EXPECT_FALSE(r.sent) << "nothing reached DingTalk: the rate-limit slot is given back";
    EXPECT_EQ(r.reason.rfind("cannot reach the proxy http://***@127.0.0.1:1: ", 0), 0u) << r.reason;
    EXPECT_FALSE(contains(r.summary() + r.reply_json(true), kPassword));
}

TEST_F(ProxySend, ARefusedConnectIsTheProxysAnswer)
{
    MockDingTalk proxy("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n");
    const Report r = deliver("https://oapi.dingtalk.com/robot/send",
                             "http://127.0.0.1:" + std::to_string(proxy.port()));
    EXPECT_TRUE(contains(proxy.request(), "CONNECT oapi.dingtalk.com:443 HTTP/1.1"))
        << proxy.request();
    EXPECT_FALSE(contains(proxy.request(), kToken)) << "the proxy only sees the host";
    EXPECT_EQ(r.http_status, 502);
    EXPECT_FALSE(r.transient);
    EXPECT_FALSE(r.sent) << "a CONNECT is no message to DingTalk";
    EXPECT_TRUE(contains(r.reason, "the proxy did not open the way to DingTalk (HTTP 407"))
        << r.reason;
}

TEST_F(ProxySend, AnHttpTargetIsForwardedByTheProxy)
{
    MockDingTalk proxy(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    const Report r = deliver("http://dingtalk.invalid/robot/send",
                             "http://127.0.0.1:" + std::to_string(proxy.port()));
    EXPECT_EQ(r.outcome, Outcome::delivered) << r.reason;
    EXPECT_TRUE(contains(proxy.request(), "POST http://dingtalk.invalid/robot/send?access_token="))
        << proxy.request();
}

// libcurl reads no_proxy from the environment even with CURLOPT_PROXY set: a no_proxy of
// nginx's environment must not send around the configured proxy.
TEST_F(ProxySend, NoProxyInTheEnvironmentDoesNotBypassTheProxy)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    ::setenv("no_proxy", "*", 1);
    ::setenv("NO_PROXY", "127.0.0.1", 1);
    const Report r = deliver(mock.url(), "http://127.0.0.1:1"); // a proxy nobody listens on
    ::unsetenv("no_proxy");
    ::unsetenv("NO_PROXY");
    EXPECT_EQ(r.outcome, Outcome::unreachable) << r.reason;
    EXPECT_TRUE(contains(r.reason, "cannot reach the proxy")) << r.reason;
    EXPECT_EQ(mock.request(), "(the mock has not finished reading)") << "nothing went around";
}

TEST_F(ProxySend, WithoutDingtalkProxyTheEnvironmentsProxiesAreIgnored)
{
    MockDingTalk mock(MockDingTalk::json_reply(200, R"({"errcode":0,"errmsg":"ok"})"));
    for (const char *name : {"http_proxy", "https_proxy", "all_proxy", "ALL_PROXY"}) {
        ::setenv(name, "http://127.0.0.1:1", 1);
    }
    const Report r = deliver(mock.url(), "");
    for (const char *name : {"http_proxy", "https_proxy", "all_proxy", "ALL_PROXY"}) {
        ::unsetenv(name);
    }
    EXPECT_EQ(r.outcome, Outcome::delivered) << r.reason;
    EXPECT_TRUE(contains(mock.request(), "POST /robot/send?access_token=")) << mock.request();
}
