// "Until resolved" silences: the table the shared zone keeps (plain data), and the check that
// asks Alertmanager whether the alert still fires and expires the silence when it does not,
// against a stand-in answering one reply per connection as Alertmanager 0.25 does.
#include "mock_sequence.hpp"
#include "resolved.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

using namespace dingtalk;
using dingtalk_test::MockSequence;

namespace
{

constexpr std::int64_t kNow = 1'800'000'000;
const std::uint64_t kAm = alertmanager_identity("http://am:9093");

std::string json(int status, const std::string &body)
{
    return "HTTP/1.1 " + std::to_string(status) +
           " X\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::unique_ptr<UntilResolvedTable> table()
{
    return std::make_unique<UntilResolvedTable>(UntilResolvedTable{});
}

std::string id(int i)
{
    return "6f1c3d2a-0b1e-4c55-9a2f-" + std::to_string(100000000000 + i);
}

UntilResolved entry(const std::string &silence, const std::string &fingerprint)
{
    auto t = table();
    keep(*t, silence, fingerprint, kAm, kNow + 3600, kNow);
    UntilResolved out[kMaxUntilResolved];
    EXPECT_EQ(due(*t, kNow, out), 1u);
    return out[0];
}

AlertmanagerApi api(const MockSequence &am)
{
    AlertmanagerApi a;
    a.url = am.url();
    a.timeout = std::chrono::milliseconds(1000);
    a.answer_timeout = std::chrono::milliseconds(1000);
    return a;
}

std::string silence(const std::string &state)
{
    return R"({"id":"s-1","status":{"state":")" + state +
           R"("},"createdBy":"DingTalk","comment":"c","endsAt":"2027-01-22T08:00:00.000Z",)"
           R"("matchers":[{"name":"alertname","value":"Disk \"full\"","isRegex":false,)"
           R"("isEqual":true},{"name":"pod","value":"api-.*","isRegex":true,"isEqual":false}]})";
}

class UntilResolvedCheck : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }
};

} // namespace

TEST(UntilResolvedTable, KeepsForgetsAndDropsAtTheHardEnd)
{
    auto t = table();
    EXPECT_EQ(keep(*t, "s-1", "3ed2f3b1a2c4d5e6", kAm, kNow + 60, kNow), KeepResult::kept);
    EXPECT_EQ(keep(*t, "s-1", "3ed2f3b1a2c4d5e6", kAm, kNow + 120, kNow), KeepResult::again);
    EXPECT_EQ(keep(*t, "s-2", "", kAm, kNow + 30, kNow), KeepResult::kept);
    EXPECT_EQ(kept(*t), 2u);
    UntilResolved out[kMaxUntilResolved];
    ASSERT_EQ(due(*t, kNow + 60, out), 1u) << "s-2 is past its hard end";
    EXPECT_STREQ(out[0].id, "s-1");
    EXPECT_EQ(out[0].hard_end, kNow + 120) << "the later hard end";
    EXPECT_STREQ(out[0].fingerprint, "3ed2f3b1a2c4d5e6");
    EXPECT_EQ(out[0].alertmanager, kAm);
    EXPECT_EQ(drop_ended(*t, kNow + 60), 1u);
    EXPECT_TRUE(forget(*t, "s-1"));
    EXPECT_FALSE(forget(*t, "s-1"));
    EXPECT_EQ(kept(*t), 0u);
}

TEST(UntilResolvedTable, AFullTableKeepsNoMoreUntilOneEnds)
{
    auto t = table();
    for (std::size_t i = 0; i < kMaxUntilResolved; ++i) {
        ASSERT_EQ(keep(*t, id(static_cast<int>(i)), "", kAm, kNow + 60 + static_cast<int>(i), kNow),
                  KeepResult::kept);
    }
    EXPECT_EQ(keep(*t, "one-more", "", kAm, kNow + 3600, kNow), KeepResult::full);
    EXPECT_EQ(keep(*t, "one-more", "", kAm, kNow + 3600, kNow + 60), KeepResult::kept)
        << "the first one's hard end made room";
    EXPECT_EQ(kept(*t), kMaxUntilResolved);
}

TEST(UntilResolvedTable, RefusesWhatItCannotHold)
{
    auto t = table();
    EXPECT_EQ(keep(*t, "", "", kAm, kNow + 60, kNow), KeepResult::invalid);
    EXPECT_EQ(keep(*t, std::string(64, 'a'), "", kAm, kNow + 60, kNow), KeepResult::invalid);
    EXPECT_EQ(keep(*t, "s-1", std::string(32, 'f'), kAm, kNow + 60, kNow), KeepResult::invalid);
    EXPECT_EQ(keep(*t, std::string(63, 'a'), std::string(31, 'f'), kAm, kNow + 60, kNow),
              KeepResult::kept);
}

TEST(UntilResolvedTable, TheLongestUncheckedComesFirst)
{
    auto t = table();
    for (int i = 0; i < 3; ++i) {
        keep(*t, id(i), "", kAm, kNow + 600, kNow);
    }
    checked(*t, id(0), false, kNow + 20);
    checked(*t, id(1), true, kNow + 10);
    UntilResolved out[kMaxUntilResolved];
    ASSERT_EQ(due(*t, kNow + 30, out), 3u);
    EXPECT_EQ(out[0].id, id(2));
    EXPECT_EQ(out[1].id, id(1));
    EXPECT_EQ(out[1].failures, 1u);
    EXPECT_EQ(out[2].id, id(0));
    checked(*t, id(1), false, kNow + 40);
    due(*t, kNow + 40, out);
    EXPECT_EQ(out[2].failures, 0u) << "a check that worked resets the failures";
}

TEST(UntilResolvedTable, AlertmanagersAreKnownByTheirUrl)
{
    EXPECT_EQ(alertmanager_identity("http://am:9093"), alertmanager_identity("http://am:9093/"));
    EXPECT_NE(alertmanager_identity("http://am:9093"), alertmanager_identity("http://am2:9093"));
    EXPECT_EQ(alertmanager_identity("http://am:9093"), 0x70712935e965ef9aULL)
        << "stable across processes and builds (FNV-1a)";
}

// Resolved: the silence's own matchers ask for the alerts it silences (silenced ones
// included); none is listed, so the silence is expired.
TEST_F(UntilResolvedCheck, AResolvedAlertsSilenceIsExpired)
{
    MockSequence am({json(200, silence("active")), json(200, "[]"),
                     json(200, R"({"uptime":"2027-01-15T07:00:00.123Z","config":{}})"),
                     "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"});
    const Lift lift = lift_if_resolved(api(am), entry("s-1", "3ed2f3b1a2c4d5e6"), kNow);
    EXPECT_EQ(lift.result, LiftResult::expired) << lift.error;
    ASSERT_EQ(am.requests().size(), 4u);
    EXPECT_EQ(am.requests()[0].rfind("GET /api/v2/silence/s-1 ", 0), 0u) << am.requests()[0];
    const std::string &q = am.requests()[1];
    EXPECT_EQ(q.rfind("GET /api/v2/alerts?active=true&silenced=true&inhibited=true&"
                      "unprocessed=true&filter=alertname%3D%22Disk%20%5C%22full%5C%22%22&"
                      "filter=pod%21~%22api-.%2A%22 ",
                      0),
              0u)
        << q;
    EXPECT_EQ(am.requests()[2].rfind("GET /api/v2/status ", 0), 0u);
    EXPECT_EQ(am.requests()[3].rfind("DELETE /api/v2/silence/s-1 ", 0), 0u);
    EXPECT_STREQ(to_string(lift.result), "expired");
}

// After a start, Alertmanager lists a firing alert again only once Prometheus resends it: an
// alert missing then is not taken for resolved (unless the silence was kept after the start).
TEST_F(UntilResolvedCheck, AnAlertmanagerJustStartedIsGivenTimeForItsAlerts)
{
    const std::string started = R"({"uptime":"2027-01-15T08:00:10.500Z"})"; // kNow + 10
    MockSequence young({json(200, silence("active")), json(200, "[]"), json(200, started)});
    const Lift a = lift_if_resolved(api(young), entry("s-1", "f"), kNow + 30);
    EXPECT_EQ(a.result, LiftResult::firing);
    EXPECT_EQ(a.error, "Alertmanager started 20 s ago");
    EXPECT_EQ(young.requests().size(), 3u) << "nothing expired";

    MockSequence settled({json(200, silence("active")), json(200, "[]"), json(200, started),
                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"});
    EXPECT_EQ(
        lift_if_resolved(api(settled), entry("s-1", "f"), kNow + 10 + kAlertsBackSeconds).result,
        LiftResult::expired);

    MockSequence unknown({json(200, silence("active")), json(200, "[]"),
                          json(200, "{" + std::string(70 * 1024, ' ') + "}"),
                          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"});
    EXPECT_EQ(lift_if_resolved(api(unknown), entry("s-1", "f"), kNow + 30).result,
              LiftResult::expired)
        << "a status too large to read (its whole configuration) does not hold the silence";
}

TEST_F(UntilResolvedCheck, AFiringAlertKeepsItsSilence)
{
    MockSequence am({json(200, silence("active")),
                     json(200, R"([{"fingerprint":"3ed2f3b1a2c4d5e6","labels":{}}])")});
    EXPECT_EQ(lift_if_resolved(api(am), entry("s-1", "3ed2f3b1a2c4d5e6"), kNow).result,
              LiftResult::firing);
    EXPECT_EQ(am.requests().size(), 2u) << "nothing expired";
}

// The silence covers every alert its matchers match (the link names the shown labels): while
// another of them fires, it is kept, though the link's own alert resolved.
TEST_F(UntilResolvedCheck, AnyAlertTheSilenceMatchesKeepsIt)
{
    MockSequence am({json(200, silence("active")),
                     json(200, R"([{"fingerprint":"0000000000000001","labels":{}}])")});
    EXPECT_EQ(lift_if_resolved(api(am), entry("s-1", "3ed2f3b1a2c4d5e6"), kNow).result,
              LiftResult::firing);
}

TEST_F(UntilResolvedCheck, ASilenceThatEndedIsForgotten)
{
    MockSequence expired({json(200, silence("expired"))});
    EXPECT_EQ(lift_if_resolved(api(expired), entry("s-1", "f"), kNow).result, LiftResult::gone);
    MockSequence unknown({json(404, R"("silence not found")")});
    EXPECT_EQ(lift_if_resolved(api(unknown), entry("s-1", "f"), kNow).result, LiftResult::gone);
}

TEST_F(UntilResolvedCheck, FailuresKeepTheSilenceAndSayWhy)
{
    MockSequence refused({json(200, silence("active")), json(500, R"("boom")")});
    const Lift a = lift_if_resolved(api(refused), entry("s-1", "f"), kNow);
    EXPECT_EQ(a.result, LiftResult::failed);
    EXPECT_FALSE(a.unreachable);
    EXPECT_EQ(a.error, R"(Alertmanager answered 500: "boom")");

    MockSequence none({});
    AlertmanagerApi down = api(none);
    down.url = "http://127.0.0.1:1"; // nothing listens there
    const Lift b = lift_if_resolved(down, entry("s-1", "f"), kNow);
    EXPECT_EQ(b.result, LiftResult::failed);
    EXPECT_TRUE(b.unreachable);

    MockSequence cannot(
        {json(200, silence("active")), json(200, "[]"), json(200, "{}"), json(500, R"("no")")});
    EXPECT_EQ(lift_if_resolved(api(cannot), entry("s-1", "f"), kNow).result, LiftResult::failed);
    EXPECT_EQ(cannot.requests().size(), 3u) << "when it started is not known: nothing expired";
    MockSequence status({json(200, silence("active")), json(200, "[]"), json(403, R"("no")")});
    EXPECT_EQ(lift_if_resolved(api(status), entry("s-1", "f"), kNow).result, LiftResult::failed);
    EXPECT_EQ(status.requests().size(), 3u) << "a status refused: nothing expired";

    MockSequence large(
        {json(200, silence("active")), json(200, "[" + std::string(70 * 1024, ' ') + "]")});
    const Lift c = lift_if_resolved(api(large), entry("s-1", "f"), kNow);
    EXPECT_EQ(c.result, LiftResult::failed);
    EXPECT_FALSE(c.unreachable) << "reached: it answered too much";
    EXPECT_EQ(c.error, "Alertmanager's answer is larger than the 64 KiB this module reads");

    MockSequence odd({json(200, R"({"id":"s-1"})")});
    EXPECT_EQ(lift_if_resolved(api(odd), entry("s-1", "f"), kNow).error,
              "Alertmanager's answer is not a silence");
}

TEST(UntilResolvedTable, RemembersWhatIsInTheStoreToo)
{
    auto t = table();
    keep(*t, "s-1", "f", kAm, kNow + 60, kNow);
    UntilResolved out[kMaxUntilResolved];
    due(*t, kNow, out);
    EXPECT_EQ(out[0].stored, 0u) << "copied to dingtalk_store by the next check";
    stored(*t, "s-1");
    due(*t, kNow, out);
    EXPECT_EQ(out[0].stored, 1u);

    UntilResolved e;
    ASSERT_TRUE(make_entry("s-2", "fp", kAm, kNow + 5, e));
    EXPECT_STREQ(e.id, "s-2");
    EXPECT_STREQ(e.fingerprint, "fp");
    EXPECT_EQ(e.hard_end, kNow + 5);
    EXPECT_FALSE(make_entry("", "fp", kAm, kNow + 5, e));
    EXPECT_FALSE(make_entry("s-3", std::string(40, 'f'), kAm, kNow + 5, e));
}

TEST(UntilResolvedTable, OnlyIdsAndFingerprintsFitForALogLine)
{
    auto t = table();
    EXPECT_EQ(keep(*t, "s-1\n[alert]", "", kAm, kNow + 60, kNow), KeepResult::invalid);
    EXPECT_EQ(keep(*t, "s-1", "f f", kAm, kNow + 60, kNow), KeepResult::invalid);
    EXPECT_EQ(kept(*t), 0u);
}
