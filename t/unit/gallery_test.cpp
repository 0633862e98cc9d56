// The template gallery (templates/*.mustache): each renders the fixtures to its golden file, and
// the port of the Go bridge's layout sends what the Go bridge sends, apart from the differences
// docs/migrating.md lists ("From the Go bridge").
//
// A golden file is the markdown text and a final newline, as `dingtalk-render --now
// 2026-11-24T02:00:00Z --template FILE --text` prints it (zone Asia/Shanghai).
#include "render.hpp"
#include "template.hpp"

#include "json.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

using namespace dingtalk;
using dingtalk_test::fixture;
using dingtalk_test::read_file;

namespace
{

const char *const kFixtures[] = {"firing", "resolved", "mixed"};

// The Go bridge's title template, ported (docs/migrating.md, "From the Go bridge").
const char *const kGoTitle =
    "[{{status_upper}}{{#has_firing}}:{{firing_count}}{{/has_firing}}] {{group_label_values}}"
    "{{#has_other_common_labels}} ({{other_common_label_values}}){{/has_other_common_labels}}";

std::shared_ptr<const Template> parse(const std::string &src, Template::Kind kind)
{
    std::string error;
    auto t = Template::parse(src, kind, error);
    EXPECT_TRUE(t) << error;
    return t;
}

Message render_with(const std::string &text_template, const char *fixture_name)
{
    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    opt.now = *parse_rfc3339("2026-11-24T02:00:00Z");
    s.text_template =
        parse(read_file("../../templates/" + text_template + ".mustache"), Template::Kind::text);
    s.title_template = parse(kGoTitle, Template::Kind::title);
    return render_message(fixture(fixture_name), opt);
}

// The Go bridge's DingTalk request for a fixture: {"title", "text"}.
std::pair<std::string, std::string> go_bridge_sent(const char *fixture_name)
{
    const std::string body =
        read_file(std::string("../fixtures/go-bridge/") + fixture_name + ".json");
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), 0, &err));
    const json_t *md = json_object_get(root.get(), "markdown");
    return {json_string_value(json_object_get(md, "title")),
            json_string_value(json_object_get(md, "text"))};
}

// The Go bridge's text with docs/migrating.md's differences applied, one line each.
std::string go_text_as_ours(std::string text, const Notification &n)
{
    std::string group;
    for (const auto &kv : n.group_labels) {
        group += (group.empty() ? "" : " ") + kv.second;
    }
    // 1. the link to Alertmanager: the group's label values as its text (Go: the alertname
    //    group label, empty when the group is not by alertname), no double slash
    text = std::regex_replace(text, std::regex(R"(\*\*\[[^\]]*\]\(([^)]*)//#/alerts)"),
                              "**[" + group + "]($1/#/alerts");
    // 2. label names are escaped as text like their values (DingTalk shows pod\_name as pod_name)
    text = std::regex_replace(text, std::regex(R"((> - [a-z]+)_([a-z]+):)"), "$1\\_$2:");
    // 3. a line holding only a section tag vanishes, so runs of blank lines are one
    text = std::regex_replace(text, std::regex("\n\n\n+"), "\n\n");
    text = std::regex_replace(text, std::regex(R"(^(#### [^\n]*\n)\n)"), "$1");
    // 4. no trailing blank lines (the module trims the text)
    return text.substr(0, text.find_last_not_of('\n') + 1);
}

} // namespace

TEST(Gallery, EachTemplateRendersItsGoldenFiles)
{
    for (const char *name : {"compact", "english", "go-bridge", "oncall"}) {
        for (const char *f : kFixtures) {
            SCOPED_TRACE(std::string(name) + " " + f);
            const std::string golden =
                read_file(std::string("golden/templates/") + name + "-" + f + ".md");
            ASSERT_FALSE(golden.empty());
            EXPECT_EQ(render_with(name, f).text + "\n", golden);
        }
    }
}

TEST(Gallery, TheBuiltInLayoutIsDefaultMustache)
{
    for (const char *f : kFixtures) {
        SCOPED_TRACE(f);
        Settings s = dingtalk_test::settings();
        RenderOptions opt = dingtalk_test::options(s);
        opt.now = *parse_rfc3339("2026-11-24T02:00:00Z");
        const Message built_in = render_message(fixture(f), opt);
        EXPECT_EQ(render_with("default", f).text, built_in.text);
    }
}

TEST(Gallery, TheGoBridgePortSendsWhatTheGoBridgeSends)
{
    for (const char *f : kFixtures) {
        SCOPED_TRACE(f);
        const auto [go_title, go_text] = go_bridge_sent(f);
        const Message ours = render_with("go-bridge", f);
        // the title: the same, without the Go bridge's trailing space
        EXPECT_EQ(ours.title, go_title.substr(0, go_title.find_last_not_of(' ') + 1));
        EXPECT_EQ(ours.text, go_text_as_ours(go_text, fixture(f)));
    }
}

TEST(Gallery, TheGoBridgePortLeavesSeverityOutOfTheDetails)
{
    const std::string text = render_with("go-bridge", "mixed").text;
    EXPECT_NE(text.find("#### \\[CRITICAL\\] Targets are down."), std::string::npos);
    EXPECT_EQ(text.find("> - severity:"), std::string::npos);
    EXPECT_NE(text.find("> - job: node-exporter"), std::string::npos);
}
