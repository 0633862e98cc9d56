// parse_notification: the fixtures, every field variant, and bodies that must be refused with an
// error naming the problem.
#include "alert.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <vector>

using namespace dingtalk;
using dingtalk_test::epoch_seconds;
using dingtalk_test::fixture;
using dingtalk_test::fixture_text;
using dingtalk_test::subsecond_micros;

namespace
{

// 2026-11-23T16:04:05Z (python3: int(datetime(2026,11,23,16,4,5,tzinfo=timezone.utc).timestamp()))
constexpr long long kStart = 1795449845;

Notification parse_ok(const std::string &body)
{
    ParseResult r = parse_notification(body);
    EXPECT_TRUE(r.notification.has_value()) << "error: " << r.error << "\nbody: " << body;
    EXPECT_TRUE(!r.notification || r.error.empty()) << r.error;
    return r.notification.value_or(Notification{});
}

std::string parse_error(const std::string &body)
{
    ParseResult r = parse_notification(body);
    EXPECT_FALSE(r.notification.has_value()) << "accepted: " << body;
    EXPECT_FALSE(r.error.empty()) << "no error text for: " << body;
    return r.error;
}

// A label value holding a raw NUL byte (sizeof keeps the bytes after it).
std::string with_nul()
{
    static const char raw[] = "{\"alerts\":[{\"labels\":{\"pod\":\"a\0b\"}}]}";
    return std::string(raw, sizeof raw - 1);
}

} // namespace

TEST(ParseFixture, FiringHasEveryField)
{
    const Notification n = fixture("firing");
    EXPECT_EQ(n.version, "4");
    EXPECT_EQ(n.group_key, "{}:{alertname=\"KubePodCrashLooping\"}");
    EXPECT_EQ(n.receiver, "dingtalk");
    EXPECT_EQ(n.status, Status::firing);
    EXPECT_EQ(n.truncated_alerts, 0);
    EXPECT_EQ(n.external_url, "http://alertmanager.example:9093");
    EXPECT_EQ(n.group_labels, (Labels{{"alertname", "KubePodCrashLooping"}}));
    EXPECT_EQ(n.common_labels.at("severity"), "critical");
    EXPECT_EQ(n.common_labels.size(), 4u);
    EXPECT_EQ(n.common_annotations.count("runbook_url"), 1u);
    ASSERT_EQ(n.alerts.size(), 3u);
    EXPECT_EQ(n.count(Status::firing), 3u);
    EXPECT_EQ(n.count(Status::resolved), 0u);

    const Alert &a = n.alerts[0];
    EXPECT_EQ(a.status, Status::firing);
    EXPECT_EQ(a.labels.size(), 7u);
    EXPECT_EQ(a.labels.at("pod"), "api-7d9f8b6c5d-x2x7q");
    EXPECT_EQ(a.labels.at("namespace"), "kube-ops");
    EXPECT_EQ(a.labels.at("instance"), "10.244.1.17:8080");
    EXPECT_EQ(a.labels.at("job"), "kube-state-metrics");
    EXPECT_EQ(a.annotations.at("message"),
              "Pod kube-ops/api-7d9f8b6c5d-x2x7q (api) is restarting 1.05 times / 10 minutes.");
    ASSERT_TRUE(a.starts_at.has_value());
    EXPECT_EQ(epoch_seconds(*a.starts_at), kStart);
    EXPECT_EQ(subsecond_micros(*a.starts_at), 123456);
    EXPECT_FALSE(a.ends_at.has_value()) << "the zero endsAt of a firing alert means no end";
    EXPECT_EQ(a.generator_url.rfind("http://prometheus.example:9090/graph?g0.expr=", 0), 0u);
    EXPECT_EQ(a.fingerprint, "3ed2f3b1a2c4d5e6");

    ASSERT_TRUE(n.alerts[1].starts_at.has_value());
    EXPECT_EQ(epoch_seconds(*n.alerts[1].starts_at), kStart + 330);
    EXPECT_EQ(subsecond_micros(*n.alerts[1].starts_at), 500000);
    EXPECT_EQ(n.alerts[2].labels.at("pod"), "worker-0");
}

TEST(ParseFixture, ResolvedHasRealEndTimesInAnyOffset)
{
    const Notification n = fixture("resolved");
    EXPECT_EQ(n.status, Status::resolved);
    ASSERT_EQ(n.alerts.size(), 2u);
    EXPECT_EQ(n.count(Status::resolved), 2u);
    for (const Alert &a : n.alerts) {
        EXPECT_EQ(a.status, Status::resolved);
        ASSERT_TRUE(a.starts_at && a.ends_at);
        EXPECT_LT(*a.starts_at, *a.ends_at);
    }
    // "2026-11-23T16:34:05.987654321Z"
    EXPECT_EQ(epoch_seconds(*n.alerts[0].ends_at), kStart + 1800);
    EXPECT_EQ(subsecond_micros(*n.alerts[0].ends_at), 987654);
    // "2026-11-24T00:09:35.5+08:00" is 16:09:35.5Z; "2026-11-24T00:41:00.25+08:00" 16:41:00.25Z
    EXPECT_EQ(epoch_seconds(*n.alerts[1].starts_at), kStart + 330);
    EXPECT_EQ(epoch_seconds(*n.alerts[1].ends_at), kStart + 2215);
    EXPECT_EQ(subsecond_micros(*n.alerts[1].ends_at), 250000);
}

TEST(ParseFixture, MixedKeepsEachAlertsStatusAndFields)
{
    const Notification n = fixture("mixed");
    ASSERT_EQ(n.alerts.size(), 4u);
    EXPECT_EQ(n.status, Status::firing);
    EXPECT_EQ(n.count(Status::firing), 2u);
    EXPECT_EQ(n.count(Status::resolved), 2u);
    EXPECT_EQ(n.alerts[0].status, Status::resolved);
    EXPECT_EQ(n.alerts[1].status, Status::firing);
    EXPECT_EQ(n.alerts[1].labels.count("pod"), 0u);
    EXPECT_EQ(n.alerts[1].labels.at("pod_name"), "legacy-api-5d8f7b9c6-x2x7q");
    EXPECT_EQ(n.alerts[2].labels.count("severity"), 0u);
    EXPECT_EQ(n.alerts[3].annotations.size(), 3u);
}

TEST(ParseLenient, MissingOptionalFieldsAreEmpty)
{
    const Notification n = parse_ok(R"({"alerts":[{}]})");
    EXPECT_EQ(n.version, "");
    EXPECT_EQ(n.receiver, "");
    EXPECT_EQ(n.external_url, "");
    EXPECT_EQ(n.truncated_alerts, 0);
    EXPECT_TRUE(n.group_labels.empty() && n.common_labels.empty());
    ASSERT_EQ(n.alerts.size(), 1u);
    const Alert &a = n.alerts[0];
    EXPECT_EQ(a.status, Status::firing);
    EXPECT_TRUE(a.labels.empty() && a.annotations.empty());
    EXPECT_FALSE(a.starts_at.has_value());
    EXPECT_FALSE(a.ends_at.has_value());
    EXPECT_EQ(a.generator_url, "");
    EXPECT_EQ(a.fingerprint, "");
}

TEST(ParseLenient, NullMapsAndStringsAreAbsent)
{
    const Notification n = parse_ok(
        R"({"version":null,"groupKey":null,"truncatedAlerts":null,"status":null,"receiver":null,
            "groupLabels":null,"commonLabels":null,"commonAnnotations":null,"externalURL":null,
            "alerts":[{"status":null,"labels":null,"annotations":null,"startsAt":null,
                       "endsAt":null,"generatorURL":null,"fingerprint":null}]})");
    EXPECT_EQ(n.version, "");
    EXPECT_EQ(n.truncated_alerts, 0);
    EXPECT_TRUE(n.group_labels.empty());
    ASSERT_EQ(n.alerts.size(), 1u);
    EXPECT_EQ(n.alerts[0].status, Status::firing);
    EXPECT_TRUE(n.alerts[0].labels.empty());
    EXPECT_FALSE(n.alerts[0].starts_at.has_value());
    EXPECT_EQ(n.alerts[0].generator_url, "");
}

TEST(ParseLenient, UnknownFieldsAreIgnored)
{
    const Notification n = parse_ok(
        R"({"version":"4","somethingNew":{"x":[1,2,3]},"numbers":42,
            "alerts":[{"status":"resolved","silencedBy":["abc"],"value":1.5,
                       "labels":{"alertname":"A"}}]})");
    ASSERT_EQ(n.alerts.size(), 1u);
    EXPECT_EQ(n.alerts[0].status, Status::resolved);
    EXPECT_EQ(n.alerts[0].labels.at("alertname"), "A");
}

TEST(ParseLenient, AlertStatusIsInheritedFromTheGroup)
{
    const Notification n =
        parse_ok(R"({"status":"resolved","alerts":[{"labels":{}},{"status":"firing"},{}]})");
    ASSERT_EQ(n.alerts.size(), 3u);
    EXPECT_EQ(n.alerts[0].status, Status::resolved);
    EXPECT_EQ(n.alerts[1].status, Status::firing);
    EXPECT_EQ(n.alerts[2].status, Status::resolved);
    // The group fires while any of its alerts does, whatever the body claims.
    EXPECT_EQ(n.status, Status::firing);

    EXPECT_EQ(parse_ok(R"({"status":"resolved","alerts":[{}]})").status, Status::resolved);
    EXPECT_EQ(parse_ok(R"({"status":"firing","alerts":[{"status":"resolved"}]})").status,
              Status::resolved);
}

TEST(ParseLenient, ZeroTimesMeanUnknown)
{
    const Notification n = parse_ok(R"({"alerts":[{"startsAt":"0001-01-01T00:00:00Z",
                                                   "endsAt":"0001-01-01T00:00:00Z"}]})");
    ASSERT_EQ(n.alerts.size(), 1u);
    EXPECT_FALSE(n.alerts[0].starts_at.has_value());
    EXPECT_FALSE(n.alerts[0].ends_at.has_value());
}

TEST(ParseLenient, UnicodeValuesAreKept)
{
    const Notification n = parse_ok(
        R"({"alerts":[{"labels":{"pod":"支付-0","emoji":"\ud83d\udd25","esc":"\u4e2d"}}]})");
    ASSERT_EQ(n.alerts.size(), 1u);
    EXPECT_EQ(n.alerts[0].labels.at("pod"), "支付-0");
    EXPECT_EQ(n.alerts[0].labels.at("emoji"), "\xF0\x9F\x94\xA5");
    EXPECT_EQ(n.alerts[0].labels.at("esc"), "中");
}

struct BadBody {
    const char *name;
    std::string body;
    std::vector<std::string> says; // every one must appear in the error
};

TEST(ParseBad, EachErrorNamesTheProblem)
{
    const std::string firing = fixture_text("firing");
    const std::vector<BadBody> cases = {
        {"empty", "", {"empty body"}},
        {"not JSON", "status=firing", {"invalid JSON", "line 1"}},
        {"truncated JSON", firing.substr(0, firing.size() / 2), {"invalid JSON"}},
        {"top-level array", "[{\"alerts\":[]}]", {"must be a JSON object"}},
        {"top-level string", "\"alerts\"", {"invalid JSON"}},
        {"missing alerts", R"({"version":"4","status":"firing"})", {"\"alerts\"", "array"}},
        {"alerts an object", R"({"alerts":{"0":{}}})", {"alerts must be an array"}},
        {"alerts a string", R"({"alerts":"[]"})", {"alerts must be an array"}},
        {"empty alerts", R"({"alerts":[]})", {"alerts is empty"}},
        {"alert a number", R"({"alerts":[1]})", {"alerts[0] must be an object"}},
        {"second alert a string", R"({"alerts":[{},"x"]})", {"alerts[1] must be an object"}},
        {"label value a number",
         R"({"alerts":[{"labels":{"alertname":"A","severity":3}}]})",
         {"alerts[0].labels.severity must be a string"}},
        {"labels an array",
         R"({"alerts":[{"labels":["pod","web-0"]}]})",
         {"alerts[0].labels must be an object"}},
        {"annotations a string",
         R"({"alerts":[{},{"annotations":"x"}]})",
         {"alerts[1].annotations must be an object"}},
        {"commonLabels value an object",
         R"({"commonLabels":{"a":{}},"alerts":[{}]})",
         {"commonLabels.a must be a string"}},
        {"groupLabels an array",
         R"({"groupLabels":[],"alerts":[{}]})",
         {"groupLabels must be an object"}},
        {"group status bogus",
         R"({"status":"bogus","alerts":[{}]})",
         {"status must be \"firing\" or \"resolved\""}},
        {"alert status bogus", R"({"alerts":[{"status":"FIRING"}]})", {"alerts[0].status must be"}},
        {"status a boolean", R"({"status":true,"alerts":[{}]})", {"status must be a string"}},
        {"startsAt not RFC 3339",
         R"({"alerts":[{"startsAt":"2026-11-23 16:04"}]})",
         {"alerts[0].startsAt is not an RFC 3339 time"}},
        {"endsAt month 13",
         R"({"alerts":[{"endsAt":"2026-13-01T00:00:00Z"}]})",
         {"alerts[0].endsAt is not an RFC 3339 time"}},
        {"startsAt a number",
         R"({"alerts":[{"startsAt":1795449845}]})",
         {"alerts[0].startsAt must be a string"}},
        {"generatorURL an array",
         R"({"alerts":[{"generatorURL":[]}]})",
         {"alerts[0].generatorURL must be a string"}},
        {"fingerprint a boolean",
         R"({"alerts":[{"fingerprint":false}]})",
         {"alerts[0].fingerprint must be a string"}},
        {"version a number", R"({"version":4,"alerts":[{}]})", {"version must be a string"}},
        {"externalURL an object",
         R"({"externalURL":{},"alerts":[{}]})",
         {"externalURL must be a string"}},
        {"truncatedAlerts negative",
         R"({"truncatedAlerts":-1,"alerts":[{}]})",
         {"truncatedAlerts must be a non-negative integer"}},
        {"truncatedAlerts a string",
         R"({"truncatedAlerts":"3","alerts":[{}]})",
         {"truncatedAlerts must be a non-negative integer"}},
        {"truncatedAlerts a fraction",
         R"({"truncatedAlerts":1.5,"alerts":[{}]})",
         {"truncatedAlerts"}},
        {"duplicate keys",
         R"({"alerts":[{"status":"firing","status":"resolved"}]})",
         {"invalid JSON", "duplicate"}},
        {"duplicate top-level key", R"({"alerts":[{}],"alerts":[{}]})", {"duplicate"}},
        {"invalid UTF-8",
         "{\"alerts\":[{\"labels\":{\"pod\":\"web-\xff\"}}]}",
         {"invalid JSON", "0xff"}},
        {"truncated UTF-8 sequence",
         "{\"alerts\":[{\"labels\":{\"pod\":\"\xe4\xb8\"}}]}",
         {"invalid JSON"}},
        {"raw NUL byte", with_nul(), {"invalid JSON"}},
        {"trailing garbage", R"({"alerts":[{}]} x)", {"invalid JSON"}},
    };
    for (const BadBody &c : cases) {
        SCOPED_TRACE(c.name);
        const std::string error = parse_error(c.body);
        for (const std::string &s : c.says) {
            EXPECT_NE(error.find(s), std::string::npos) << "error: " << error << "\nwant: " << s;
        }
    }
}

// \u0000 is valid JSON (Go writes a NUL that way): kept in the value, shown as a space.
TEST(ParseLenient, EscapedNulInAValueIsKept)
{
    const Notification n = parse_ok(R"({"alerts":[{"labels":{"pod":"a\u0000b"}}]})");
    ASSERT_EQ(n.alerts.size(), 1u);
    EXPECT_EQ(n.alerts[0].labels.at("pod"), std::string("a\0b", 3));
    EXPECT_NE(dingtalk_test::render(n).text.find("**故障pod**: a b"), std::string::npos);
}

TEST(ParseBad, RawNulByteCaseReallyHoldsANul)
{
    // Guards the case above: the body must keep its NUL, and be valid without it.
    const std::string body = with_nul();
    const std::size_t nul = body.find('\0');
    ASSERT_NE(nul, std::string::npos);
    EXPECT_EQ(body.back(), '}');
    std::string without = body;
    without.erase(nul, 1);
    EXPECT_TRUE(parse_notification(without).notification.has_value());
}

TEST(ParseBad, FirstBadAlertIsNamed)
{
    const std::string error =
        parse_error(R"({"alerts":[{"labels":{"a":"b"}},{"labels":{"a":"b"}},{"labels":{"a":7}}]})");
    EXPECT_NE(error.find("alerts[2].labels.a"), std::string::npos) << error;
}

// ---------------------------------------------------------------------------------------------
// What a body may cost: caps on what is kept, never on what is checked.

namespace
{

std::string alerts_body(const std::vector<std::string> &alerts)
{
    std::string body = R"({"alerts":[)";
    for (std::size_t i = 0; i < alerts.size(); ++i) {
        body += (i ? "," : "") + alerts[i];
    }
    return body + "]}";
}

} // namespace

TEST(ParseLimits, AlertsPastTheCapAreCountedNotKept)
{
    std::vector<std::string> alerts(1000, "{}");
    ParseLimits limits;
    limits.max_alerts = 10;
    const ParseResult r = parse_notification(alerts_body(alerts), limits);
    ASSERT_TRUE(r.notification) << r.error;
    EXPECT_EQ(r.notification->alerts.size(), 10u);
    EXPECT_EQ(r.notification->total(), 1000u);
    EXPECT_EQ(r.notification->not_kept(), 990u);
    EXPECT_EQ(r.notification->count(Status::firing), 1000u);
}

TEST(ParseLimits, FiringAlertsAreKeptFirstWhereverTheyStand)
{
    std::vector<std::string> alerts(50, R"({"status":"resolved","labels":{"n":"r"}})");
    alerts.push_back(R"({"status":"firing","labels":{"n":"f1"}})");
    alerts.push_back(R"({"status":"firing","labels":{"n":"f2"}})");
    ParseLimits limits;
    limits.max_alerts = 5;
    const Notification n = parse_notification(alerts_body(alerts), limits).notification.value();
    ASSERT_EQ(n.alerts.size(), 5u);
    EXPECT_EQ(n.count(Status::firing), 2u);
    EXPECT_EQ(n.count(Status::resolved), 50u);
    EXPECT_EQ(n.status, Status::firing);
    std::size_t firing = 0;
    for (const Alert &a : n.alerts) {
        firing += a.status == Status::firing;
    }
    EXPECT_EQ(firing, 2u) << "both firing alerts kept, resolved ones fill the rest";
    EXPECT_EQ(n.alerts[0].status, Status::resolved) << "body order is kept";
}

TEST(ParseLimits, ABadTypePastTheCapIsStillAnError)
{
    std::vector<std::string> alerts(300, "{}");
    alerts.push_back(R"({"labels":{"a":7}})");
    const std::string error = parse_error(alerts_body(alerts));
    EXPECT_NE(error.find("alerts[300].labels.a must be a string"), std::string::npos) << error;
}

TEST(ParseLimits, LabelsPastTheCapAreDropped)
{
    std::string labels;
    for (int i = 0; i < 1000; ++i) {
        labels += (i ? "," : "") + std::string("\"l") + std::to_string(1000 + i) + "\":\"v\"";
    }
    const Notification n = parse_ok(R"({"alerts":[{"labels":{)" + labels + "}}]}");
    EXPECT_EQ(n.alerts[0].labels.size(), ParseLimits().max_pairs);
    EXPECT_EQ(n.alerts[0].labels.begin()->first, "l1000") << "the first ones are kept";
}

TEST(ParseLimits, LongValuesAreCutAtACharacterBoundary)
{
    std::string value;
    for (int i = 0; i < 3000; ++i) {
        value += "告"; // 3 bytes each: 4096 falls inside one
    }
    const Notification n = parse_ok(R"({"alerts":[{"labels":{"k":")" + value + R"("}}]})");
    const std::string &kept = n.alerts[0].labels.at("k");
    EXPECT_LE(kept.size(), ParseLimits().max_value_bytes);
    EXPECT_GE(kept.size(), ParseLimits().max_value_bytes - 6);
    EXPECT_TRUE(dingtalk_test::is_valid_utf8(kept));
    EXPECT_EQ(kept.substr(kept.size() - 3), "…") << "a cut value says so";
}

TEST(ParseLimits, ABodyOverTheLimitIsRefusedUnread)
{
    ParseLimits limits;
    limits.max_body_bytes = 100;
    const ParseResult r = parse_notification(std::string(101, ' '), limits);
    EXPECT_FALSE(r.notification);
    EXPECT_NE(r.error.find("101 bytes is over the limit of 100"), std::string::npos) << r.error;
}

// simdjson's array::size() saturates at 2^24 - 1; a vector sized from it was written past its
// end. Nothing is sized from it any more: 17 million alerts are counted one by one.
TEST(ParseLimits, MoreAlertsThanSimdjsonCanCount)
{
    if (std::getenv("DINGTALK_SKIP_HUGE")) {
        GTEST_SKIP() << "DINGTALK_SKIP_HUGE: too slow under valgrind";
    }
    const std::size_t n = (std::size_t(1) << 24) + 10;
    std::string body = R"({"alerts":[)";
    body.reserve(n * 3 + 16);
    for (std::size_t i = 0; i < n; ++i) {
        body += i ? ",{}" : "{}";
    }
    body += "]}";
    ParseLimits limits;
    limits.max_body_bytes = body.size();
    const ParseResult r = parse_notification(body, limits);
    ASSERT_TRUE(r.notification) << r.error;
    EXPECT_EQ(r.notification->total(), n);
    EXPECT_EQ(r.notification->alerts.size(), limits.max_alerts);
}
