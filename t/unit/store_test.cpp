// dingtalk_store's core against a real redis-server (Debian's, started here on 127.0.0.1:23791):
// the shared window, the cool-down, the marker of an emptied store, errors and timeouts.
#include "store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <string>
#include <thread>
#include <unistd.h>

using namespace dingtalk;

namespace
{

constexpr int kPort = 23791;
const char kPidFile[] = "/tmp/dingtalk-store-test.pid";

std::string cli(const std::string &args)
{
    return "redis-cli -p " + std::to_string(kPort) + " " + args + " >/dev/null 2>&1";
}

class StoreTest : public ::testing::Test
{
protected:
    static void SetUpTestSuite()
    {
        if (std::system("command -v redis-server >/dev/null 2>&1") != 0) {
            return;
        }
        const std::string start = "redis-server --port " + std::to_string(kPort) +
                                  " --bind 127.0.0.1 --save '' --appendonly no --daemonize yes "
                                  "--enable-debug-command local "
                                  "--pidfile " +
                                  kPidFile + " >/dev/null";
        if (std::system(start.c_str()) == 0) {
            for (int i = 0; i < 50 && std::system(cli("PING").c_str()) != 0; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            started_ = true;
        }
    }
    static void TearDownTestSuite()
    {
        if (started_) {
            std::system(cli("SHUTDOWN NOSAVE").c_str());
        }
        store_disconnect_thread();
    }
    void SetUp() override
    {
        if (!started_) {
            GTEST_SKIP() << "redis-server is missing (Debian: apt-get install redis-server)";
        }
        ASSERT_EQ(std::system(cli("FLUSHALL").c_str()), 0);
        store_disconnect_thread();
    }

    static StoreConfig config()
    {
        std::string error;
        auto c = parse_store_url("redis://127.0.0.1:" + std::to_string(kPort), error);
        EXPECT_TRUE(c) << error;
        return *c;
    }
    static RateLimit limit(uint32_t count, uint64_t window_ms)
    {
        RateLimit l;
        l.count = count;
        l.window_ms = window_ms;
        l.guard_ms = 0;
        l.cooldown_ms = 2000;
        return l;
    }

    static inline bool started_ = false;
    const unsigned char robot_[16] = {1, 2, 3};
};

} // namespace

TEST(StoreUrl, ParsesHostPortDbAndUser)
{
    std::string error;
    auto c = parse_store_url("redis://alerts@redis.kube-ops:6380/2", error);
    ASSERT_TRUE(c) << error;
    EXPECT_EQ(c->host, "redis.kube-ops");
    EXPECT_EQ(c->port, 6380);
    EXPECT_EQ(c->db, 2);
    EXPECT_EQ(c->user, "alerts");
}

TEST(StoreUrl, RefusesWhatItCannotUse)
{
    std::string error;
    EXPECT_FALSE(parse_store_url("rediss://redis:6380", error));
    EXPECT_NE(error.find("TLS"), std::string::npos);
    for (const char *bad :
         {"redis://redis", "http://redis:6379", "redis://:6379", "redis://u:secret@redis:6379",
          "redis://redis:99999", "redis://r:1/x", "redis://r:1/16"}) {
        EXPECT_FALSE(parse_store_url(bad, error)) << bad;
        EXPECT_EQ(error.find("secret"), std::string::npos) << error;
    }
}

TEST_F(StoreTest, EmptiedStoreWarmsForOnePeriodUnlessAFallbackSlotIsHeld)
{
    Store store(config());
    StoreReservation r = store.reserve(robot_, limit(5, 1000), 100, false);
    EXPECT_EQ(r.kind, StoreReservation::warming) << r.error;
    EXPECT_GT(r.retry_after_ms, 900u);
    r = store.reserve(robot_, limit(5, 1000), 100, true);
    EXPECT_EQ(r.kind, StoreReservation::now) << r.error;
    EXPECT_GT(r.retry_after_ms, 0u); // still warming
    std::this_thread::sleep_for(std::chrono::milliseconds(1050));
    r = store.reserve(robot_, limit(5, 1000), 100, false);
    EXPECT_EQ(r.kind, StoreReservation::now) << r.error;
    EXPECT_EQ(r.retry_after_ms, 0u);
}

TEST_F(StoreTest, OneWindowForEveryThread)
{
    Store store(config());
    ASSERT_EQ(store.reserve(robot_, limit(10, 60000), 100, true).kind, StoreReservation::now);
    std::atomic<int> granted{1}, refused{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 10; ++i) {
                auto r = store.reserve(robot_, limit(10, 60000), 100, true);
                (r.kind == StoreReservation::now ? granted : refused)++;
            }
            store_disconnect_thread();
        });
    }
    for (auto &t : threads) {
        t.join();
    }
    EXPECT_EQ(granted.load(), 10);
    EXPECT_EQ(refused.load(), 31);
}

TEST_F(StoreTest, FullTellsWhenASlotFrees)
{
    Store store(config());
    std::string error;
    auto a = store.reserve(robot_, limit(1, 2000), 5000, true);
    ASSERT_EQ(a.kind, StoreReservation::now);
    auto b = store.reserve(robot_, limit(1, 2000), 5000, true);
    EXPECT_EQ(b.kind, StoreReservation::full);
    EXPECT_TRUE(b.under_way); // counted at its deadline until settled
    ASSERT_TRUE(store.settle(robot_, a.member, true, false, limit(1, 2000), {}, error)) << error;
    b = store.reserve(robot_, limit(1, 2000), 5000, true);
    EXPECT_EQ(b.kind, StoreReservation::full);
    EXPECT_FALSE(b.under_way);
    EXPECT_GT(b.retry_after_ms, 1800u);
    EXPECT_LE(b.retry_after_ms, 2000u);
}

TEST_F(StoreTest, ASendThatNeverLeftGivesItsSlotBack)
{
    Store store(config());
    std::string error;
    auto a = store.reserve(robot_, limit(1, 60000), 5000, true);
    ASSERT_EQ(a.kind, StoreReservation::now);
    ASSERT_TRUE(store.settle(robot_, a.member, false, false, limit(1, 60000), {}, error)) << error;
    EXPECT_EQ(store.reserve(robot_, limit(1, 60000), 5000, true).kind, StoreReservation::now);
}

TEST_F(StoreTest, ThrottledCoolsDownEveryInstance)
{
    Store store(config()), other(config());
    std::string error;
    auto a = store.reserve(robot_, limit(5, 60000), 100, true);
    ASSERT_TRUE(store.settle(robot_, a.member, true, true, limit(5, 60000), {}, error)) << error;
    auto b = other.reserve(robot_, limit(5, 60000), 100, true);
    EXPECT_EQ(b.kind, StoreReservation::throttled);
    EXPECT_GT(b.retry_after_ms, 1500u);
}

TEST_F(StoreTest, ScriptsLoadAgainAfterAFlush)
{
    Store store(config());
    ASSERT_EQ(store.reserve(robot_, limit(5, 60000), 100, true).kind, StoreReservation::now);
    ASSERT_EQ(std::system(cli("SCRIPT FLUSH").c_str()), 0);
    EXPECT_EQ(store.reserve(robot_, limit(5, 60000), 100, true).kind, StoreReservation::now);
}

TEST_F(StoreTest, AKeptConnectionOutlivesARestart)
{
    Store store(config());
    ASSERT_EQ(store.reserve(robot_, limit(5, 60000), 100, true).kind, StoreReservation::now);
    std::system(cli("SHUTDOWN NOSAVE").c_str());
    started_ = false;
    SetUpTestSuite();
    ASSERT_TRUE(started_);
    // emptied: warming, and the kept connection's first try is not an error
    EXPECT_EQ(store.reserve(robot_, limit(5, 60000), 100, false).kind, StoreReservation::warming);
}

TEST_F(StoreTest, DownIsAnErrorQuickly)
{
    StoreConfig c = config();
    c.port = 1; // nothing listens
    Store store(c);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = store.reserve(robot_, limit(5, 60000), 100, true);
    EXPECT_EQ(r.kind, StoreReservation::failed);
    EXPECT_FALSE(r.error.empty());
    r = store.reserve(robot_, limit(5, 60000), 100, true); // no second try within a second
    EXPECT_EQ(r.kind, StoreReservation::failed);
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
}

TEST_F(StoreTest, SlowIsAnErrorWithinTheTimeout)
{
    Store store(config());
    ASSERT_EQ(store.reserve(robot_, limit(5, 60000), 100, true).kind, StoreReservation::now);
    std::thread sleeper([] { std::system(cli("DEBUG SLEEP 1").c_str()); });
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto t0 = std::chrono::steady_clock::now();
    auto r = store.reserve(robot_, limit(5, 60000), 100, true);
    const auto took = std::chrono::steady_clock::now() - t0;
    sleeper.join();
    EXPECT_EQ(r.kind, StoreReservation::failed);
    EXPECT_LT(took, std::chrono::milliseconds(400)); // timeout 200ms
}

TEST_F(StoreTest, PasswordAndDb)
{
    ASSERT_EQ(std::system(cli("CONFIG SET requirepass s3cret-pass").c_str()), 0);
    StoreConfig c = config();
    c.db = 3;
    Store wrong(c);
    auto r = wrong.reserve(robot_, limit(5, 60000), 100, true);
    EXPECT_EQ(r.kind, StoreReservation::failed);
    store_disconnect_thread();
    c.password = "s3cret-pass";
    Store right(c);
    r = right.reserve(robot_, limit(5, 60000), 100, true);
    EXPECT_EQ(r.kind, StoreReservation::now) << r.error;
    EXPECT_EQ(
        std::system(cli("-a s3cret-pass --no-auth-warning CONFIG SET requirepass ''").c_str()), 0);
}

// ---------------------------------------------------------------------------------------------
// the records: what every instance posted of a notification

namespace
{

// The record of notification 1000 (0x3e8) for robot_, as the store names it.
const char kRecord[] = "dingtalk:01020300000000000000000000000000:n:00000000000003e8";

// A settle of a message that showed `alerts` of `notification`, taken or in doubt, by `owner`.
bool settle_marks(const Store &store, const unsigned char robot[16], const std::string &owner,
                  StoreMarks::Kind kind, std::vector<StoreMark> records)
{
    RateLimit l;
    l.count = 5;
    l.window_ms = 60000;
    StoreReservation r = store.reserve(robot, l, 100, true);
    StoreMarks marks{kind, owner, 60000, std::move(records)};
    std::string error;
    return r.kind == StoreReservation::now &&
           store.settle(robot, r.member, true, false, l, marks, error);
}

} // namespace

TEST_F(StoreTest, AnotherInstanceWaitsWhileTheOwnersLeaseRuns)
{
    Store store(config());
    const std::vector<uint64_t> alerts{11, 22, 33};
    StoreClaim a = store.claim(robot_, 1000, alerts, "host-a:1", 60000);
    ASSERT_EQ(a.kind, StoreClaim::mine) << a.error;
    EXPECT_EQ(a.states, std::vector<Posted>(3, Posted::no));
    StoreClaim b = store.claim(robot_, 1000, alerts, "host-b:1", 60000);
    EXPECT_EQ(b.kind, StoreClaim::taken);
    EXPECT_GT(b.retry_after_ms, 59000u);
    EXPECT_LE(b.retry_after_ms, 60000u);
    EXPECT_EQ(store.claim(robot_, 1000, alerts, "host-a:1", 60000).kind, StoreClaim::mine);
    // another notification, or another robot, is another record
    EXPECT_EQ(store.claim(robot_, 1001, alerts, "host-b:1", 60000).kind, StoreClaim::mine);
    const unsigned char other[16] = {9};
    EXPECT_EQ(store.claim(other, 1000, alerts, "host-b:1", 60000).kind, StoreClaim::mine);
}

TEST_F(StoreTest, ALeaseThatRanOutIsTakenOverWithWhatWasPosted)
{
    Store store(config());
    const std::vector<uint64_t> alerts{11, 22, 33};
    ASSERT_EQ(store.claim(robot_, 1000, alerts, "host-a:1", 300).kind, StoreClaim::mine);
    ASSERT_TRUE(settle_marks(store, robot_, "host-a:1", StoreMarks::taken, {{1000, {11}}}));
    // the settle renewed the lease for lease_ms (60 s here): still taken
    EXPECT_EQ(store.claim(robot_, 1000, alerts, "host-b:1", 300).kind, StoreClaim::taken);
    ASSERT_EQ(std::system(cli("HSET " + std::string(kRecord) + " l 1").c_str()),
              0); // the lease ended (as if the owner died 60 s ago)
    StoreClaim b = store.claim(robot_, 1000, alerts, "host-b:1", 300);
    ASSERT_EQ(b.kind, StoreClaim::mine) << b.error;
    EXPECT_EQ(b.states, (std::vector<Posted>{Posted::yes, Posted::no, Posted::no}));
    EXPECT_EQ(b.messages, 1u);
}

TEST_F(StoreTest, EveryAlertPostedIsDoneForEveryInstanceAndFreesTheClaim)
{
    Store store(config());
    const std::vector<uint64_t> alerts{11, 22};
    ASSERT_EQ(store.claim(robot_, 1000, alerts, "host-a:1", 60000).kind, StoreClaim::mine);
    ASSERT_TRUE(settle_marks(store, robot_, "host-a:1", StoreMarks::taken, {{1000, {11, 22}}}));
    StoreClaim b = store.claim(robot_, 1000, alerts, "host-b:1", 60000);
    EXPECT_EQ(b.kind, StoreClaim::done);
    EXPECT_EQ(b.states, std::vector<Posted>(2, Posted::yes));
    // kept for a replica's copy (2 minutes), not for repeat_interval's reminder
    const std::string ttl = "redis-cli -p " + std::to_string(kPort) + " PTTL " + kRecord;
    FILE *p = popen(ttl.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char out[32] = {};
    ASSERT_NE(std::fgets(out, sizeof(out), p), nullptr);
    pclose(p);
    EXPECT_GT(std::atol(out), 100000);
    EXPECT_LE(std::atol(out), 120000);
}

TEST_F(StoreTest, ADoubtIsSentOnceMoreAtMost)
{
    Store store(config());
    const std::vector<uint64_t> alerts{11, 22};
    ASSERT_EQ(store.claim(robot_, 1000, alerts, "host-a:1", 60000).kind, StoreClaim::mine);
    ASSERT_TRUE(settle_marks(store, robot_, "host-a:1", StoreMarks::in_doubt, {{1000, {11}}}));
    StoreClaim a = store.claim(robot_, 1000, alerts, "host-a:1", 60000);
    EXPECT_EQ(a.states, (std::vector<Posted>{Posted::doubtful, Posted::no}));
    EXPECT_EQ(a.messages, 0u);
    ASSERT_TRUE(settle_marks(store, robot_, "host-a:1", StoreMarks::in_doubt, {{1000, {11}}}));
    a = store.claim(robot_, 1000, alerts, "host-a:1", 60000);
    EXPECT_EQ(a.states, (std::vector<Posted>{Posted::yes, Posted::no}));
}

TEST_F(StoreTest, AFoldedMessageMarksEachNotificationItCarried)
{
    Store store(config());
    ASSERT_EQ(store.claim(robot_, 1, {11}, "host-a:1", 60000).kind, StoreClaim::mine);
    ASSERT_EQ(store.claim(robot_, 2, {21, 22}, "host-a:1", 60000).kind, StoreClaim::mine);
    ASSERT_TRUE(
        settle_marks(store, robot_, "host-a:1", StoreMarks::taken, {{1, {11}}, {2, {21, 22}}}));
    EXPECT_EQ(store.claim(robot_, 1, {11}, "host-b:1", 60000).kind, StoreClaim::done);
    EXPECT_EQ(store.claim(robot_, 2, {21, 22}, "host-b:1", 60000).kind, StoreClaim::done);
}

TEST_F(StoreTest, AClaimOfAStoreThatIsDownFails)
{
    StoreConfig c = config();
    c.port = 1;
    StoreClaim r = Store(c).claim(robot_, 1, {11}, "host-a:1", 60000);
    EXPECT_EQ(r.kind, StoreClaim::failed);
    EXPECT_FALSE(r.error.empty());
}

// "Until resolved" silences shared by the instances: kept with their hard end (the key expires
// with the last), one instance's round at a time, forgotten once expired.
TEST_F(StoreTest, UntilResolvedSilencesAreSharedAndOneInstanceChecksAtATime)
{
    Store store(config());
    std::string error;
    const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
    ASSERT_TRUE(store.keep_silence(7, {"s-1", "3ed2f3b1a2c4d5e6", now + 3600, now - 5}, error))
        << error;
    ASSERT_TRUE(store.keep_silence(7, {"s-2", "", now + 60, now}, error)) << error;
    ASSERT_TRUE(store.keep_silence(7, {"s-old", "f", now - 1, now - 9}, error)) << error;
    ASSERT_TRUE(store.keep_silence(8, {"s-other", "f", now + 60, now}, error)) << error;

    StoreRound a = store.silence_round(7, "1@a", 500);
    ASSERT_EQ(a.kind, StoreRound::mine) << a.error;
    ASSERT_EQ(a.silences.size(), 2u) << "past its hard end: dropped";
    EXPECT_EQ(a.silences[0].id, "s-2");
    EXPECT_EQ(a.silences[0].fingerprint, "");
    EXPECT_EQ(a.silences[1].id, "s-1");
    EXPECT_EQ(a.silences[1].fingerprint, "3ed2f3b1a2c4d5e6");
    EXPECT_EQ(a.silences[1].hard_end, now + 3600);
    EXPECT_EQ(a.silences[1].kept_at, now - 5);
    EXPECT_EQ(a.silences[0].kept_at, now);
    EXPECT_EQ(store.silence_round(7, "2@b", 500).kind, StoreRound::other);
    EXPECT_EQ(store.silence_round(8, "2@b", 500).kind, StoreRound::mine) << "another Alertmanager";

    ASSERT_TRUE(store.forget_silence(7, a.silences[1], error)) << error;
    std::this_thread::sleep_for(std::chrono::milliseconds(550));
    StoreRound b = store.silence_round(7, "2@b", 500);
    ASSERT_EQ(b.kind, StoreRound::mine) << "the lock ran out";
    ASSERT_EQ(b.silences.size(), 1u);
    EXPECT_EQ(b.silences[0].id, "s-2");
    const std::string ttl =
        "redis-cli -p " + std::to_string(kPort) + " TTL dingtalk:silences:0000000000000007";
    FILE *p = popen(ttl.c_str(), "r");
    char out[32] = {0};
    ASSERT_NE(p, nullptr);
    ASSERT_NE(fgets(out, sizeof out, p), nullptr);
    pclose(p);
    EXPECT_GT(std::atoi(out), 3500) << "the key lives until the last hard end";
    EXPECT_LE(std::atoi(out), 3600);
}

TEST_F(StoreTest, UntilResolvedSilencesOfAStoreThatIsDownFail)
{
    StoreConfig c = config();
    c.port = 1;
    Store store(c);
    std::string error;
    EXPECT_FALSE(store.keep_silence(7, {"s-1", "f", 1, 0}, error));
    EXPECT_FALSE(error.empty());
    EXPECT_EQ(store.silence_round(7, "1@a", 500).kind, StoreRound::failed);
}
