// dingtalk_message_type actioncard (issue #25): a message that shows one firing alert goes as
// DingTalk's actionCard, the alert's links as buttons; every other message stays markdown, with
// the action lines in its text. Templates see the links as silence_links.
#include "action.hpp"
#include "sign.hpp"
#include "test_util.hpp"

#include <jansson.h>

#include <cstring>
#include <set>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;

namespace
{

constexpr const char *kBase = "https://hook.example.com/dingtalk/action";
constexpr const char *kSlide = "dingtalk://dingtalkclient/page/link?url=";

Settings card_settings(bool with_keys = true)
{
    Settings s = dingtalk_test::settings();
    s.action_card = true;
    if (with_keys) {
        auto k = std::make_shared<ActionKeys>();
        std::string error;
        EXPECT_TRUE(k->add_file("k1 0123456789abcdef0123456789abcdef\n", error)) << error;
        s.action_keys = k;
        s.action_url = kBase;
    }
    return s;
}

struct Json {
    explicit Json(const std::string &body)
    {
        json_error_t error;
        j = json_loads(body.c_str(), 0, &error);
        EXPECT_NE(j, nullptr) << error.text << "\n" << body;
    }
    ~Json() { json_decref(j); }
    Json(const Json &) = delete;
    Json &operator=(const Json &) = delete;

    std::string msgtype() const { return json_string_value(json_object_get(j, "msgtype")); }
    json_t *card() const { return json_object_get(j, "actionCard"); }
    std::set<std::string> card_keys() const
    {
        std::set<std::string> keys;
        const char *key;
        json_t *value;
        json_object_foreach(card(), key, value)
        {
            keys.insert(key);
        }
        return keys;
    }
    std::vector<std::pair<std::string, std::string>> buttons() const
    {
        std::vector<std::pair<std::string, std::string>> out;
        std::size_t i;
        json_t *b;
        json_array_foreach(json_object_get(card(), "btns"), i, b)
        {
            out.emplace_back(json_string_value(json_object_get(b, "title")),
                             json_string_value(json_object_get(b, "actionURL")));
        }
        return out;
    }
    std::string card_string(const char *key) const
    {
        const char *v = json_string_value(json_object_get(card(), key));
        return v != nullptr ? v : "";
    }

    json_t *j = nullptr;
};

// The action link a button opens in DingTalk's side panel.
std::string target_of(const std::string &url)
{
    EXPECT_EQ(url.rfind(kSlide, 0), 0u) << url;
    const std::string tail = "&pc_slide=true";
    EXPECT_EQ(url.substr(url.size() - tail.size()), tail) << url;
    const std::string encoded =
        url.substr(std::strlen(kSlide), url.size() - std::strlen(kSlide) - tail.size());
    std::string out;
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] == '%' && i + 2 < encoded.size()) {
            out += static_cast<char>(std::stoi(encoded.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else {
            out += encoded[i];
        }
    }
    return out;
}

Alert firing(const std::string &name, Labels annotations = {})
{
    return make_alert(Status::firing, {{"alertname", name}, {"instance", "db-1"}},
                      std::move(annotations));
}

} // namespace

TEST(RenderCard, OneFiringAlertIsACardWithItsLinksAsButtons)
{
    const Settings s = card_settings();
    RenderOptions opt = dingtalk_test::options(s);
    opt.now = TimePoint(std::chrono::seconds(1'800'000'000));
    const Notification n = make_notification(
        {firing("Disk", {{"runbook_url", "https://runbooks.example/disk?x=1&y=2"}}),
         make_alert(Status::resolved, {{"alertname", "Old"}})});
    const Message m = render_message(n, opt);
    const Json j(m.request_body);
    EXPECT_EQ(j.msgtype(), "actionCard");
    EXPECT_EQ(j.card_keys(), (std::set<std::string>{"title", "text", "btnOrientation", "btns"}));
    EXPECT_EQ(json_object_size(j.j), 2u) << "no \"at\": " << m.request_body;
    EXPECT_EQ(j.card_string("title"), m.title);
    EXPECT_EQ(j.card_string("text"), m.text);
    EXPECT_EQ(j.card_string("btnOrientation"), "0") << "4 buttons: stacked";
    EXPECT_EQ(m.text.find("**静默**:"), std::string::npos) << "the links are buttons: " << m.text;
    EXPECT_NE(m.text.find("#### 已恢复 (1)"), std::string::npos) << "the resolved alert is there";

    const auto buttons = j.buttons();
    ASSERT_EQ(buttons.size(), 4u) << m.request_body;
    EXPECT_EQ(buttons[0].first, "静默2小时");
    EXPECT_EQ(buttons[1].first, "静默1天");
    EXPECT_EQ(buttons[2].first, "静默直到恢复");
    EXPECT_EQ(buttons[3].first, "处理手册");
    EXPECT_EQ(target_of(buttons[3].second), "https://runbooks.example/disk?x=1&y=2");
    for (std::size_t i = 0; i < 3; ++i) {
        const std::string url = target_of(buttons[i].second);
        const std::string prefix = std::string(kBase) + "?l=";
        ASSERT_EQ(url.rfind(prefix, 0), 0u) << url;
        const VerifiedLink v =
            verify_link(url.substr(prefix.size()), *s.action_keys, 1'800'000'000);
        ASSERT_EQ(v.error, LinkError::none) << url;
        EXPECT_EQ(v.link.until_resolved, i == 2);
    }
    // dingtalk_fold makes markdown of the body: the links are in it
    EXPECT_NE(m.body.find("**静默**: [2小时]("), std::string::npos) << m.body;
}

TEST(RenderCard, ThreeButtonsSideBySide)
{
    const Settings s = card_settings();
    const Message m =
        render_message(make_notification({firing("Disk")}), dingtalk_test::options(s));
    const Json j(m.request_body);
    EXPECT_EQ(j.buttons().size(), 3u);
    EXPECT_EQ(j.card_string("btnOrientation"), "1");
}

TEST(RenderCard, SeveralFiringAlertsAreMarkdownWithTheirActionLines)
{
    const Settings s = card_settings();
    const Message m = render_message(make_notification({firing("Disk"), firing("Load")}),
                                     dingtalk_test::options(s));
    const Json j(m.request_body);
    EXPECT_EQ(j.msgtype(), "markdown");
    EXPECT_EQ(dingtalk_test::occurrences(m.text, "**静默**: [2小时]("), 2u) << m.text;
}

TEST(RenderCard, WithoutLinksForButtonsItIsMarkdown)
{
    const Settings s = card_settings(false);
    const Message m =
        render_message(make_notification({firing("Disk")}), dingtalk_test::options(s));
    EXPECT_EQ(Json(m.request_body).msgtype(), "markdown");
    Settings plain = dingtalk_test::settings();
    EXPECT_EQ(m.request_body,
              render_message(make_notification({firing("Disk")}), dingtalk_test::options(plain))
                  .request_body)
        << "the same message as without the directive";

    // a runbook alone is a button
    const Message r = render_message(
        make_notification({firing("Disk", {{"runbook_url", "https://runbooks.example/disk"}})}),
        dingtalk_test::options(s));
    const Json j(r.request_body);
    ASSERT_EQ(j.msgtype(), "actionCard");
    ASSERT_EQ(j.buttons().size(), 1u);
    EXPECT_EQ(j.buttons()[0].first, "处理手册");
    // not http(s): no button
    const Message bad = render_message(
        make_notification({firing("Disk", {{"runbook_url", "javascript:alert(1)"}})}),
        dingtalk_test::options(s));
    EXPECT_EQ(Json(bad.request_body).msgtype(), "markdown");
}

TEST(RenderCard, AMessageThatMentionsStaysMarkdown)
{
    const Settings s = card_settings();
    RenderOptions opt = dingtalk_test::options(s);
    opt.at.mobiles = {"13800000000"};
    const Message m = render_message(make_notification({firing("Disk")}), opt);
    const Json j(m.request_body);
    EXPECT_EQ(j.msgtype(), "markdown");
    EXPECT_NE(m.text.find("**静默**: [2小时]("), std::string::npos) << m.text;
    EXPECT_NE(m.text.find("@13800000000"), std::string::npos) << m.text;
}

TEST(RenderCard, TemplatesSeeTheLinksAndWhetherTheyAreButtons)
{
    Settings s = card_settings();
    std::string error;
    s.text_template = Template::parse("{{#alerts}}{{alertname}}"
                                      "{{^has_buttons}}{{#silence_links}} [{{label}}]({{url}})"
                                      "{{/silence_links}}{{/has_buttons}}\n\n{{/alerts}}",
                                      Template::Kind::text, error);
    ASSERT_NE(s.text_template, nullptr) << error;
    const Message one =
        render_message(make_notification({firing("Disk")}), dingtalk_test::options(s));
    const Json j(one.request_body);
    EXPECT_EQ(j.msgtype(), "actionCard");
    EXPECT_EQ(j.buttons().size(), 3u);
    EXPECT_EQ(one.text, "Disk");
    EXPECT_NE(one.body.find("Disk [2小时](https://hook.example.com/dingtalk/action?l="),
              std::string::npos)
        << "the body a fold takes is markdown's: " << one.body;

    const Message two = render_message(make_notification({firing("Disk"), firing("Load")}),
                                       dingtalk_test::options(s));
    EXPECT_EQ(Json(two.request_body).msgtype(), "markdown");
    EXPECT_NE(two.text.find("Disk [2小时](https://hook.example.com/dingtalk/action?l="),
              std::string::npos)
        << two.text;
    EXPECT_NE(two.text.find(" [直到恢复]("), std::string::npos) << two.text;

    // no keys: the list is empty
    Settings none = card_settings(false);
    none.text_template = s.text_template;
    EXPECT_EQ(
        render_message(make_notification({firing("Disk")}), dingtalk_test::options(none)).text,
        "Disk");
}

TEST(RenderCard, PagesKeepTheSizeLimit)
{
    Settings s = card_settings();
    s.max_messages = 3;
    std::vector<Alert> alerts;
    for (int i = 0; i < 60; ++i) {
        alerts.push_back(
            firing("A" + std::to_string(i), {{"description", std::string(600, 'x')},
                                             {"runbook_url", "https://runbooks.example/a"}}));
    }
    RenderOptions opt = dingtalk_test::options(s);
    opt.max_request_bytes = 4000;
    for (const Message &m : render_messages(make_notification(alerts), opt)) {
        EXPECT_LE(m.request_body.size(), opt.max_request_bytes);
        const Json j(m.request_body);
        EXPECT_EQ(j.msgtype(), m.shown == 1 ? "actionCard" : "markdown") << m.request_body;
    }
    // one alert whose card is near the limit: still within it
    const Message big = render_message(
        make_notification({firing("Big", {{"description", std::string(3000, 'y')}})}), opt);
    EXPECT_LE(big.request_body.size(), opt.max_request_bytes);
}
