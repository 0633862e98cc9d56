// What a robot's settings ask of every message: its keyword (310000 without one) and mentions
// whose rules say what they mean (severities in any case, typos refused, the log says who).
#include "render.hpp"
#include "template.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;
using dingtalk_test::make_alert;
using dingtalk_test::make_notification;

namespace
{

Message render_with(const Notification &n, const std::string &keyword, Mentions at = {},
                    std::shared_ptr<const Template> tmpl = nullptr)
{
    Settings s = dingtalk_test::settings();
    RenderOptions opt = dingtalk_test::options(s);
    s.keyword = keyword;
    opt.at = std::move(at);
    s.text_template = std::move(tmpl);
    return render_message(n, opt);
}

std::shared_ptr<const Template> text_template(const std::string &src)
{
    std::string error;
    auto t = Template::parse(src, Template::Kind::text, error);
    EXPECT_TRUE(t) << error;
    return t;
}

Notification firing(const std::string &severity)
{
    return make_notification(
        {make_alert(Status::firing, {{"alertname", "A"}, {"severity", severity}})});
}

MentionRule rule(MentionKind kind, std::initializer_list<const char *> args)
{
    MentionRule r;
    for (const char *a : args) {
        EXPECT_EQ(add_mention_argument(r, kind, a), "") << a;
    }
    return r;
}

} // namespace

TEST(Keyword, AddedAsALastLineWhenTheTextLacksIt)
{
    const Notification n = firing("critical");
    const auto english = text_template("Alert {{#alerts}}{{alertname}}{{/alerts}}\n");
    EXPECT_EQ(render_with(n, "prometheus", {}, english).text, "Alert A\n\nprometheus");
    EXPECT_EQ(render_with(n, "Alert", {}, english).text, "Alert A") << "already there";
    // the built-in layout says 告警 in every message
    const Message builtin = render_with(n, "告警");
    EXPECT_EQ(builtin.text, render_with(n, "").text);
    // after the mentions, as when a template prints them itself (default.mustache)
    Mentions at;
    at.mobiles = {"13800000000"};
    EXPECT_EQ(render_with(n, "prometheus", at, english).text,
              "Alert A\n\n@13800000000\n\nprometheus");
}

TEST(Keyword, SurvivesTheLastResortCut)
{
    // a template whose fixed text alone is too large, with the keyword at its very end
    const auto huge = text_template(std::string(30000, 'x') + "\nprometheus\n");
    Mentions at;
    at.user_ids = {"oncall"};
    const Message m = render_with(firing("critical"), "prometheus", at, huge);
    EXPECT_LE(m.request_body.size(), kMaxRequestBytes);
    EXPECT_NE(m.text.find("prometheus"), std::string::npos) << "cut away, and put back";
    EXPECT_EQ(m.text.substr(m.text.size() - 21), "\n\n@oncall\n\nprometheus");
}

TEST(Keyword, WhatMayBeOne)
{
    EXPECT_EQ(check_keyword("告警"), "");
    EXPECT_EQ(check_keyword("prometheus alert"), "");
    EXPECT_NE(check_keyword(""), "");
    EXPECT_NE(check_keyword(std::string(65, 'k')), "");
    EXPECT_NE(check_keyword("two\nlines"), "");
    EXPECT_NE(check_keyword(" padded"), "");
    EXPECT_NE(check_keyword("\xff"), "") << "not UTF-8";
}

TEST(Mentions, SeveritiesMatchInAnyCase)
{
    const std::vector<MentionRule> rules = {
        rule(MentionKind::mobiles, {"13800000000", "severity=CRITICAL,page"})};
    EXPECT_EQ(resolve_mentions(rules, firing("Critical")).mobiles,
              std::vector<std::string>{"13800000000"});
    EXPECT_EQ(resolve_mentions(rules, firing("PAGE")).mobiles,
              std::vector<std::string>{"13800000000"});
    EXPECT_TRUE(resolve_mentions(rules, firing("warning")).empty());
}

TEST(Mentions, ATypoOfAWellKnownSeverityIsRefused)
{
    MentionRule r;
    EXPECT_EQ(add_mention_argument(r, MentionKind::all, "severity=critcal"),
              "severity \"critcal\" looks like a typo of \"critical\", which would never match");
    EXPECT_NE(add_mention_argument(r, MentionKind::all, "severity=Warnig"), "");
    for (const char *own : {"severity=p1", "severity=warn", "severity=sev2", "severity=crit",
                            "severity=minor", "severity=major"}) {
        EXPECT_EQ(add_mention_argument(r, MentionKind::all, own), "") << own;
    }
    EXPECT_EQ(severity_typo_of("eror"), "error");
    EXPECT_EQ(severity_typo_of("infp"), "info");
    EXPECT_EQ(severity_typo_of("disater"), "disaster");
    EXPECT_EQ(severity_typo_of("critical"), "");
    EXPECT_EQ(severity_typo_of("critcial"), "critical") << "two letters swapped";
    // names of their own, a letter or a digit more than a well-known one, or two letters off
    for (const char *own : {"pager", "paged", "notify", "higher", "high1", "page1", "page2",
                            "warning1", "errors", "infos", "majors", "debug", "fatal"}) {
        EXPECT_EQ(severity_typo_of(own), "") << own;
    }
    Styles styles = Styles::defaults();
    EXPECT_NE(styles.set("criticla", "🔴", ""), "") << "dingtalk_severity_style too";
}

TEST(Mentions, BadArgumentsSayWhy)
{
    MentionRule r;
    EXPECT_NE(add_mention_argument(r, MentionKind::mobiles, "138abc"), "");
    EXPECT_NE(add_mention_argument(r, MentionKind::user_ids, "bad@id"), "");
    EXPECT_NE(add_mention_argument(r, MentionKind::all, "maybe"), "");
    EXPECT_EQ(add_mention_argument(r, MentionKind::mobiles, "severity=,"), "empty \"severity=\"");
    EXPECT_EQ(check_mention_rule(MentionRule{}, MentionKind::user_ids), "nobody to mention");
    EXPECT_EQ(check_mention_rule(MentionRule{}, MentionKind::all), "");
}

TEST(Mentions, TheLogSaysWhoOrWhyNobody)
{
    const std::vector<MentionRule> rules = {
        rule(MentionKind::mobiles, {"13800000000", "severity=critical,page"}),
        rule(MentionKind::all, {"on", "severity=critical"})};
    const Notification warning = firing("warning");
    EXPECT_EQ(describe_mentions(rules, {}, resolve_mentions(rules, warning), warning),
              "mentioned nobody: no firing alert has severity critical, page");
    const Notification critical = firing("critical");
    EXPECT_EQ(describe_mentions(rules, {}, resolve_mentions(rules, critical), critical),
              "mentioned everyone @13800000000");
    const Notification resolved =
        make_notification({make_alert(Status::resolved, {{"severity", "critical"}})});
    EXPECT_EQ(describe_mentions(rules, {}, resolve_mentions(rules, resolved), resolved),
              "mentioned nobody: no alert is firing");
    EXPECT_EQ(describe_mentions({}, {}, {}, critical), "") << "no rules, nothing to say";
}

// dingtalk_at_mobiles_from / _user_ids_from: whom the firing alerts name, annotation first.
TEST(MentionsFromAlerts, FiringAlertsNameWhomToCall)
{
    const MentionSources from{"oncall_mobiles", "oncall"};
    const Notification n = make_notification({
        make_alert(Status::firing, {{"oncall", "zhang.san"}, {"oncall_mobiles", "13500000000"}},
                   {{"oncall_mobiles", "13900000000, +86-13700000000  13800000000,,bogus!"}}),
        make_alert(Status::firing, {{"oncall", "li_si zhang.san"}}),
        make_alert(Status::resolved, {{"oncall", "wang.wu"}}, {{"oncall_mobiles", "13600000000"}}),
    });
    Mentions at;
    at.mobiles = {"13800000000"}; // from dingtalk_at_mobiles: kept first, not repeated
    const MentionsFromAlerts taken = add_mentions_from_alerts(from, n, at);
    EXPECT_EQ(at.mobiles,
              (std::vector<std::string>{"13800000000", "13900000000", "+86-13700000000"}))
        << "the annotation wins over the label; a resolved alert calls nobody";
    EXPECT_EQ(at.user_ids, (std::vector<std::string>{"zhang.san", "li_si"}));
    EXPECT_EQ(taken.added, 4u);
    EXPECT_EQ(taken.invalid, 1u) << "bogus!";
    EXPECT_EQ(describe_mentions({}, from, at, n, taken),
              "mentioned @13800000000 @13900000000 @+86-13700000000 @zhang.san @li_si; dropped 1 "
              "named by the alerts that are not a mobile number or user id");
}

TEST(MentionsFromAlerts, OnlyMobileNumbersAndUserIds)
{
    for (const char *bad : {"138", "+86_13800000000", "+12345-13800000000", "1380000000a",
                            "-13800000000", "+-13800000000", "+86-", "139000000001234567890"}) {
        const Notification n = make_notification(
            {make_alert(Status::firing, {{"alertname", "A"}}, {{"mobiles", bad}})});
        Mentions at;
        EXPECT_EQ(add_mentions_from_alerts({"mobiles", ""}, n, at).invalid, 1u) << bad;
        EXPECT_TRUE(at.empty()) << bad;
    }
    for (const char *bad : {"@zhang", "zhang\u00e9", "a/b", "<b>x</b>"}) {
        const Notification n =
            make_notification({make_alert(Status::firing, {{"alertname", "A"}}, {{"who", bad}})});
        Mentions at;
        EXPECT_EQ(add_mentions_from_alerts({"", "who"}, n, at).invalid, 1u) << bad;
    }
}

TEST(MentionsFromAlerts, AtMostTwentySoABadLabelCannotCallACrowd)
{
    std::string crowd;
    for (int i = 0; i < 30; ++i) {
        crowd += "1380000" + std::to_string(1000 + i) + " ";
    }
    const Notification n =
        make_notification({make_alert(Status::firing, {{"alertname", "A"}}, {{"mobiles", crowd}})});
    Mentions at;
    const MentionsFromAlerts taken = add_mentions_from_alerts({"mobiles", ""}, n, at);
    EXPECT_EQ(at.mobiles.size(), kMaxMentionsFromAlerts);
    EXPECT_EQ(taken.over_cap, 10u);
    EXPECT_NE(describe_mentions({}, {"mobiles", ""}, at, n, taken)
                  .find("; dropped 10 named by the alerts past the first 20"),
              std::string::npos);
}

TEST(MentionsFromAlerts, TheLogSaysWhyNobody)
{
    const Notification n = make_notification({make_alert(Status::firing, {{"alertname", "A"}})});
    Mentions at;
    const MentionSources from{"oncall_mobiles", ""};
    EXPECT_EQ(describe_mentions({}, from, at, n, add_mentions_from_alerts(from, n, at)),
              "mentioned nobody: no firing alert names anyone in oncall_mobiles");
}
