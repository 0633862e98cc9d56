// The Prometheus text: exact where Prometheus reads numbers, every errcode and ending named.
#include "metrics.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;

TEST(Metrics, DurationSumIsExact)
{
    MetricsSnapshot m;
    m.duration_sum_ms = 1234567; // "%g" printed 1234.57
    EXPECT_NE(to_prometheus(m).find("\ndingtalk_delivery_duration_seconds_sum 1234.567\n"),
              std::string::npos);
    m.duration_sum_ms = 5;
    EXPECT_NE(to_prometheus(m).find("\ndingtalk_delivery_duration_seconds_sum 0.005\n"),
              std::string::npos);
    m.duration_sum_ms = 18446744073709551ull; // no float rounding at any size
    EXPECT_NE(to_prometheus(m).find("_sum 18446744073709.551\n"), std::string::npos);
}

TEST(Metrics, BusyIsAnErrcodeOfItsOwn)
{
    MetricsSnapshot m;
    m.errcodes[errcode_slot(-1)] = 3;
    m.errcodes[errcode_slot(123456)] = 1;
    const std::string text = to_prometheus(m);
    EXPECT_NE(text.find("dingtalk_errcode_total{errcode=\"-1\"} 3\n"), std::string::npos) << text;
    EXPECT_NE(text.find("dingtalk_errcode_total{errcode=\"other\"} 1\n"), std::string::npos);
}

TEST(Metrics, EveryEndingHasASeries)
{
    const std::string text = to_prometheus(MetricsSnapshot());
    for (const char *ending : {"zone_full", "busy", "client_closed", "queue_full"}) {
        EXPECT_NE(text.find(std::string("outcome=\"") + ending + "\"} 0\n"), std::string::npos)
            << ending;
    }
}

// dingtalk_timeout's default (10 s) is a bucket edge: a delivery that used all of its time is
// told apart from one that did not.
TEST(Metrics, TheDefaultTimeoutIsABucketEdge)
{
    MetricsSnapshot m;
    m.duration[duration_slot(10000)] = 1; // 10 s: still le="10"
    m.duration[duration_slot(10001)] = 2; // past it: le="30"
    const std::string text = to_prometheus(m);
    EXPECT_NE(text.find("\ndingtalk_delivery_duration_seconds_bucket{le=\"5\"} 0\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\ndingtalk_delivery_duration_seconds_bucket{le=\"10\"} 1\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("\ndingtalk_delivery_duration_seconds_bucket{le=\"30\"} 3\n"),
              std::string::npos);
}

// dingtalk_store's two series only where a location uses it.
TEST(Metrics, StoreSeriesOnlyWithAStore)
{
    MetricsSnapshot m;
    EXPECT_EQ(to_prometheus(m).find("dingtalk_store"), std::string::npos);
    m.store = true;
    m.store_errors = 4;
    m.store_up = false;
    const std::string text = to_prometheus(m);
    EXPECT_NE(text.find("# TYPE dingtalk_store_errors_total counter\n"
                        "dingtalk_store_errors_total 4\n"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("# TYPE dingtalk_store_up gauge\ndingtalk_store_up 0\n"), std::string::npos)
        << text;
}

// dingtalk_actions_total only where a location has dingtalk_action: a series per result, each
// named as the action location's log line names it.
TEST(Metrics, ActionSeriesOnlyWithAnActionLocation)
{
    MetricsSnapshot m;
    EXPECT_EQ(to_prometheus(m).find("dingtalk_actions"), std::string::npos);
    m.actions = true;
    m.silences = {3, 1, 2, 5};
    m.expires = {4, 6, 7, 8};
    const std::string text = to_prometheus(m);
    EXPECT_NE(text.find("# TYPE dingtalk_actions_total counter\n"
                        "dingtalk_actions_total{action=\"silence\",result=\"created\"} 3\n"
                        "dingtalk_actions_total{action=\"silence\",result=\"already\"} 1\n"
                        "dingtalk_actions_total{action=\"silence\",result=\"failed\"} 2\n"
                        "dingtalk_actions_total{action=\"silence\",result=\"refused\"} 5\n"
                        "dingtalk_actions_total{action=\"expire\",result=\"expired\"} 4\n"
                        "dingtalk_actions_total{action=\"expire\",result=\"gone\"} 6\n"
                        "dingtalk_actions_total{action=\"expire\",result=\"failed\"} 7\n"
                        "dingtalk_actions_total{action=\"expire\",result=\"full\"} 8\n"),
              std::string::npos)
        << text;
}
