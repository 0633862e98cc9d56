// GoLayout: Go's reference-time layouts, as Go's time.Format prints them (the expected strings
// are what Debian's Go 1.19 printed for the same times and zones).
#include "golayout.hpp"
#include "timezone.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;

namespace
{

std::string go(const char *zone, const char *rfc3339, const char *layout)
{
    std::string error;
    const std::optional<TimeZone> z = TimeZone::find(zone, error);
    const auto l = GoLayout::parse(layout, error);
    EXPECT_TRUE(z && l) << error;
    const std::optional<TimePoint> t = parse_rfc3339(rfc3339);
    EXPECT_TRUE(t.has_value()) << rfc3339;
    return z && l && t ? z->format(*t, *l) : error;
}

std::string refused(const char *layout)
{
    std::string error;
    EXPECT_EQ(GoLayout::parse(layout, error), nullptr) << layout;
    return error;
}

} // namespace

TEST(GoLayout, TheCommonLayouts)
{
    const char *t = "2026-11-24T16:04:05.123456Z";
    EXPECT_EQ(go("Asia/Shanghai", t, "2006-01-02 15:04:05"), "2026-11-25 00:04:05");
    EXPECT_EQ(go("Asia/Shanghai", t, "2006-01-02 15:04:05 MST"), "2026-11-25 00:04:05 CST");
    EXPECT_EQ(go("Asia/Shanghai", t, "2006-01-02T15:04:05Z07:00"), "2026-11-25T00:04:05+08:00");
    EXPECT_EQ(go("UTC", t, "2006-01-02T15:04:05Z07:00"), "2026-11-24T16:04:05Z");
    EXPECT_EQ(go("UTC", t, "2006-01-02T15:04:05-07:00"), "2026-11-24T16:04:05+00:00");
    EXPECT_EQ(go("Asia/Shanghai", t, "Mon Jan _2 15:04:05 MST 2006"),
              "Wed Nov 25 00:04:05 CST 2026");
    EXPECT_EQ(go("Asia/Shanghai", t, "Monday, January 2, 2006 3:04PM"),
              "Wednesday, November 25, 2026 12:04AM");
    EXPECT_EQ(go("America/New_York", t, "01/02 03:04:05 pm -0700"), "11/24 11:04:05 am -0500");
    EXPECT_EQ(go("Asia/Kolkata", t, "15:04 -07:00:00 Z0700 -07"), "21:34 +05:30:00 +0530 +05");
    EXPECT_EQ(go("Asia/Shanghai", t, "06-1-2 3:4:5"), "26-11-25 12:4:5");
    EXPECT_EQ(go("Asia/Shanghai", t, "2006年01月02日 15时04分"), "2026年11月25日 00时04分");
}

TEST(GoLayout, FractionsAndDaysOfTheYear)
{
    const char *t = "2026-02-03T04:05:06.120000Z";
    EXPECT_EQ(go("UTC", t, "15:04:05.000"), "04:05:06.120");
    EXPECT_EQ(go("UTC", t, "15:04:05.999999"), "04:05:06.12");
    EXPECT_EQ(go("UTC", t, "15:04:05,000000000"), "04:05:06,120000000");
    EXPECT_EQ(go("UTC", "2026-02-03T04:05:06Z", "15:04:05.999"), "04:05:06");
    EXPECT_EQ(go("UTC", t, "002 __2 _2 2"), "034  34  3 3");
    EXPECT_EQ(go("UTC", t, "_2006"), "_2026");     // "_" and the year, as Go reads it
    EXPECT_EQ(go("UTC", t, "05.0001"), "06.0002"); // a digit after: no fraction, 01 the month
}

TEST(GoLayout, WhatIsNotALayoutIsRefused)
{
    EXPECT_NE(refused("YYYY-MM-DD HH:mm:ss").find("(it has \"YYYY\")"), std::string::npos);
    EXPECT_NE(refused("%Y-%m-%d").find("\"%\""), std::string::npos);
    EXPECT_NE(refused("today").find("no element of Go's reference time"), std::string::npos);
    EXPECT_NE(refused("").find("1 to 64 bytes"), std::string::npos);
    EXPECT_NE(refused("2006\n01").find("control"), std::string::npos);
    EXPECT_NE(refused(std::string(65, '1').c_str()).find("1 to 64 bytes"), std::string::npos);
}

TEST(GoLayout, ItIsTheZonesDefaultTimeForm)
{
    std::string error;
    std::optional<TimeZone> z = TimeZone::find("Asia/Shanghai", error);
    ASSERT_TRUE(z.has_value());
    const TimePoint t = *parse_rfc3339("2026-11-24T16:04:05Z");
    EXPECT_EQ(z->format(t), "2026-11-25 00:04:05 +08:00");
    z->set_layout(GoLayout::parse("Jan 2 15:04", error));
    EXPECT_EQ(z->format(t), "Nov 25 00:04");
    EXPECT_EQ(z->format(t, TimeZone::Form::rfc3339), "2026-11-25T00:04:05+08:00");
}
