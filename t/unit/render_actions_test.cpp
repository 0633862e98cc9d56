// The action links of the built-in layout (issue #25): none by default, signed links for each
// firing alert once dingtalk_action_url and keys are set, naming the alert by its shown labels.
#include "action.hpp"
#include "test_util.hpp"

#include <regex>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;

namespace
{

std::shared_ptr<const ActionKeys> keys()
{
    auto k = std::make_shared<ActionKeys>();
    std::string error;
    EXPECT_TRUE(k->add_file("k1 0123456789abcdef0123456789abcdef\n", error)) << error;
    return k;
}

std::vector<std::string> tokens_in(const std::string &text)
{
    std::vector<std::string> out;
    const std::regex link(
        R"(\]\(https://hook\.example\.com/dingtalk/action\?l=([A-Za-z0-9_.-]+)\))");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link);
         it != std::sregex_iterator(); ++it) {
        out.push_back((*it)[1]);
    }
    return out;
}

} // namespace

TEST(RenderActions, NoneByDefault)
{
    const Notification n = make_notification({make_alert(Status::firing, {{"alertname", "A"}})});
    EXPECT_EQ(dingtalk_test::render(n).text.find("action?l="), std::string::npos);
}

TEST(RenderActions, SignedLinksForFiringAlertsOnly)
{
    Settings s = dingtalk_test::settings();
    s.action_url = "https://hook.example.com/dingtalk/action";
    s.action_keys = keys();
    RenderOptions opt = dingtalk_test::options(s);
    opt.now = TimePoint(std::chrono::seconds(1'800'000'000));
    Alert firing =
        make_alert(Status::firing,
                   {{"alertname", "Disk"}, {"instance", "db-1"}, {"prometheus", "monitoring/k8s"}});
    firing.fingerprint = "3ed2f3b1a2c4d5e6";
    const Notification n =
        make_notification({firing, make_alert(Status::resolved, {{"alertname", "Old"}})});
    const std::string text = render_message(n, opt).text;
    EXPECT_NE(text.find("**静默**: [2小时]("), std::string::npos) << text;
    EXPECT_NE(text.find(") · [1天]("), std::string::npos) << text;
    EXPECT_NE(text.find(") · [直到恢复]("), std::string::npos) << text;

    const std::vector<std::string> tokens = tokens_in(text);
    ASSERT_EQ(tokens.size(), 3u) << text << "\n(the resolved alert has none)";
    const VerifiedLink first = verify_link(tokens[0], *s.action_keys, 1'800'000'000);
    ASSERT_EQ(first.error, LinkError::none);
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"alertname", "Disk"}, {"instance", "db-1"}}; // prometheus hidden
    EXPECT_EQ(first.link.matchers, expected);
    EXPECT_EQ(first.link.fingerprint, "3ed2f3b1a2c4d5e6");
    EXPECT_EQ(first.link.seconds, 7200);
    EXPECT_EQ(first.link.expires, 1'800'000'000 + kActionLinkSeconds);
    const VerifiedLink last = verify_link(tokens[2], *s.action_keys, 1'800'000'000);
    EXPECT_TRUE(last.link.until_resolved);
    EXPECT_EQ(last.link.seconds, 7 * 86400);
}

TEST(RenderActions, DurationsAndNoUntilResolved)
{
    Settings s = dingtalk_test::settings();
    s.action_url = "https://hook.example.com/dingtalk/action";
    s.action_keys = keys();
    s.action_durations = {std::chrono::minutes(30)};
    s.action_until_resolved = std::chrono::seconds(0);
    const Notification n = make_notification({make_alert(Status::firing, {{"alertname", "A"}})});
    const std::string text = render_message(n, dingtalk_test::options(s)).text;
    EXPECT_NE(text.find("**静默**: [30分钟]("), std::string::npos) << text;
    EXPECT_EQ(tokens_in(text).size(), 1u) << text;
}
