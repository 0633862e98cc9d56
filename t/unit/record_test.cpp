// The record of what was posted of a notification: keys no rendering changes, one owner at a
// time, and never a third send of a doubtful alert.
#include "record.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

using namespace dingtalk;

namespace
{

const unsigned char kRobot[16] = {1, 2, 3};
const unsigned char kOtherRobot[16] = {9};

Alert firing(const std::string &pod, const char *starts = "2026-11-23T16:04:05Z")
{
    Alert a = dingtalk_test::make_alert(Status::firing, {{"alertname", "Down"}, {"pod", pod}});
    a.starts_at = parse_rfc3339(starts);
    return a;
}

// A record in memory sized for it, as the zone allocates one.
struct Stored {
    std::vector<std::uint64_t> storage;
    NotificationRecord &r;

    explicit Stored(const std::vector<std::uint64_t> &alerts, std::uint64_t key = 42)
        : storage(record_size(alerts.size()) / 8 + 1),
          r(*reinterpret_cast<NotificationRecord *>(storage.data()))
    {
        init_record(r, key, record_keys(alerts));
    }
};

std::vector<Posted> states(const NotificationRecord &r, const std::vector<std::uint64_t> &alerts)
{
    std::vector<Posted> out;
    states_of(r, alerts, out);
    return out;
}

} // namespace

TEST(AlertKey, IdentityStatusAndTimesNotTheText)
{
    const Alert a = firing("api-0");
    Alert same = a;
    same.annotations["message"] = "another text, another hour in its duration";
    same.generator_url = "http://elsewhere";
    EXPECT_EQ(alert_key(a), alert_key(same));
    EXPECT_NE(alert_key(a), 0u);

    Alert resolved = a;
    resolved.status = Status::resolved;
    EXPECT_NE(alert_key(a), alert_key(resolved));
    EXPECT_NE(alert_key(a), alert_key(firing("api-0", "2026-11-23T17:00:00Z"))) << "fired again";
    EXPECT_NE(alert_key(a), alert_key(firing("api-1")));

    Alert fingerprinted = a;
    fingerprinted.fingerprint = "3ed2f3b1a2c4d5e6";
    Alert relabelled = fingerprinted;
    relabelled.labels["pod"] = "renamed by a relabelling nobody shows";
    EXPECT_EQ(alert_key(fingerprinted), alert_key(relabelled)) << "the fingerprint is the identity";
}

TEST(NotificationKey, TheAlertsInAnyOrderForOneRobot)
{
    Notification n;
    n.group_key = "{}:{alertname=\"Down\"}";
    const std::vector<std::uint64_t> keys = {alert_key(firing("a")), alert_key(firing("b"))};
    const std::vector<std::uint64_t> reversed = {keys[1], keys[0]};
    EXPECT_EQ(notification_key(kRobot, n, keys), notification_key(kRobot, n, reversed));
    EXPECT_NE(notification_key(kRobot, n, keys), notification_key(kOtherRobot, n, keys));
    EXPECT_NE(notification_key(kRobot, n, keys), notification_key(kRobot, n, {keys[0]}));
    Notification other = n;
    other.group_key = "{}:{alertname=\"Other\"}";
    EXPECT_NE(notification_key(kRobot, n, keys), notification_key(kRobot, other, keys));
    Notification elsewhere = n;
    elsewhere.external_url = "http://replica-2:9093";
    EXPECT_EQ(notification_key(kRobot, n, keys), notification_key(kRobot, elsewhere, keys))
        << "two replicas' bodies differ in externalURL only";
}

TEST(Record, RemembersByAlertWhateverTheOrder)
{
    const std::vector<std::uint64_t> keys = {30, 10, 20, 10};
    Stored s(keys);
    EXPECT_EQ(s.r.alerts, 3u) << "repeats are one alert";
    EXPECT_TRUE(same_alerts(s.r, record_keys({20, 30, 10})));
    EXPECT_FALSE(same_alerts(s.r, record_keys({20, 30})));
    mark(s.r, {20}, true);
    EXPECT_TRUE(all_posted(s.r, {20}));
    EXPECT_FALSE(all_posted(s.r, {20, 30}));
    EXPECT_EQ(states(s.r, {10, 20, 30, 99}),
              (std::vector<Posted>{Posted::no, Posted::yes, Posted::no, Posted::no}));
    EXPECT_EQ(s.r.messages, 1u);
    EXPECT_FALSE(all_posted(s.r));
    mark(s.r, {10, 30}, true);
    EXPECT_TRUE(all_posted(s.r));
}

TEST(Record, OneOwnerAtATimeUntilItsLeaseRunsOut)
{
    Stored s({1, 2});
    EXPECT_EQ(claim(s.r, 7, 1000, 5000), Claim::mine);
    EXPECT_EQ(claim(s.r, 8, 2000, 9000), Claim::taken);
    EXPECT_EQ(claim(s.r, 7, 2000, 6000), Claim::mine) << "the owner again";
    EXPECT_EQ(claim(s.r, 8, 6001, 9000), Claim::mine) << "a lease that ran out is taken over";
    release(s.r, 7, 99999);
    EXPECT_EQ(s.r.owner, 8u) << "only the owner releases";
    release(s.r, 8, 99999);
    EXPECT_EQ(s.r.owner, 0u);
    EXPECT_EQ(s.r.expires, 99999u);
    mark(s.r, {1, 2}, true);
    EXPECT_EQ(claim(s.r, 9, 7000, 9000), Claim::done);
}

TEST(Record, ADoubtfulAlertIsSentOnceMoreNeverTwice)
{
    Stored s({1, 2});
    mark(s.r, {1}, false);
    EXPECT_EQ(states(s.r, {1})[0], Posted::doubtful);
    EXPECT_EQ(s.r.messages, 0u) << "a doubtful message is not counted as taken";
    EXPECT_FALSE(empty(s.r)) << "a doubt is worth remembering";
    mark(s.r, {1}, false);
    EXPECT_EQ(states(s.r, {1})[0], Posted::yes) << "a second doubtful send is the last";
    mark(s.r, {2}, false);
    mark(s.r, {2}, true);
    EXPECT_TRUE(all_posted(s.r));
}

TEST(Record, NothingPostedIsNothingToKeep)
{
    Stored s({1});
    EXPECT_TRUE(empty(s.r));
    ASSERT_EQ(claim(s.r, 5, 0, 100), Claim::mine);
    EXPECT_FALSE(empty(s.r)) << "owned";
    release(s.r, 5, 100);
    EXPECT_TRUE(empty(s.r));
}
