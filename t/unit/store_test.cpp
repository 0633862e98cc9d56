// dingtalk_store's core against a real redis-server (Debian's, started here on 127.0.0.1:23791):
// the shared window, the cool-down, the marker of an emptied store, errors and timeouts.
#include "store.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
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
    ASSERT_TRUE(store.settle(robot_, a.member, true, false, limit(1, 2000), error)) << error;
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
    ASSERT_TRUE(store.settle(robot_, a.member, false, false, limit(1, 60000), error)) << error;
    EXPECT_EQ(store.reserve(robot_, limit(1, 60000), 5000, true).kind, StoreReservation::now);
}

TEST_F(StoreTest, ThrottledCoolsDownEveryInstance)
{
    Store store(config()), other(config());
    std::string error;
    auto a = store.reserve(robot_, limit(5, 60000), 100, true);
    ASSERT_TRUE(store.settle(robot_, a.member, true, true, limit(5, 60000), error)) << error;
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
