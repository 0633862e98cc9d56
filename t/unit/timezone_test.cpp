// TimeZone: IANA lookups and the "YYYY-MM-DD HH:mm:ss +hh:mm" format, daylight saving included.
// Expected local times computed with python3's zoneinfo, e.g.
//   datetime.fromisoformat("2026-01-15T12:00:00+00:00").astimezone(ZoneInfo("America/New_York"))
#include "timezone.hpp"

#include "alert.hpp"

#include <gtest/gtest.h>

#include <regex>
#include <string>

using namespace dingtalk;

namespace
{

TimePoint utc(const char *rfc3339)
{
    const std::optional<TimePoint> t = parse_rfc3339(rfc3339);
    EXPECT_TRUE(t.has_value()) << rfc3339;
    return t.value_or(TimePoint{});
}

std::string show(const char *zone, const char *rfc3339)
{
    std::string error;
    const std::optional<TimeZone> z = TimeZone::find(zone, error);
    EXPECT_TRUE(z.has_value()) << zone << ": " << error;
    return z ? z->format(utc(rfc3339)) : "no zone " + std::string(zone);
}

} // namespace

TEST(TimeZone, FindsShanghaiAndUtc)
{
    std::string error;
    const std::optional<TimeZone> sh = TimeZone::find("Asia/Shanghai", error);
    ASSERT_TRUE(sh.has_value()) << error;
    EXPECT_EQ(sh->name(), "Asia/Shanghai");
    EXPECT_TRUE(error.empty()) << error;
    const std::optional<TimeZone> u = TimeZone::find("UTC", error);
    ASSERT_TRUE(u.has_value()) << error;
    EXPECT_EQ(u->name(), "UTC");
}

TEST(TimeZone, UnknownZoneIsAnErrorNamingIt)
{
    for (const char *name : {"Mars/Olympus_Mons", "asia/shanghai_x", "", "../../etc/passwd"}) {
        std::string error;
        EXPECT_FALSE(TimeZone::find(name, error).has_value()) << name;
        EXPECT_NE(error.find("unknown time zone"), std::string::npos) << error;
        EXPECT_NE(error.find("\"" + std::string(name) + "\""), std::string::npos) << error;
    }
}

TEST(TimeZone, ShanghaiFormatMatchesTheSeed)
{
    EXPECT_EQ(show("Asia/Shanghai", "2026-11-23T16:04:05.123456789Z"),
              "2026-11-24 00:04:05 +08:00");
    // Fractions are dropped, never rounded up into the next second.
    EXPECT_EQ(show("Asia/Shanghai", "2026-11-23T15:59:59.999999999Z"),
              "2026-11-23 23:59:59 +08:00");
    EXPECT_EQ(show("Asia/Shanghai", "2026-12-31T16:00:00Z"), "2027-01-01 00:00:00 +08:00");
    const std::string s = show("Asia/Shanghai", "2026-03-05T01:02:03Z");
    EXPECT_TRUE(std::regex_match(s, std::regex(R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d\d:\d\d)")))
        << s;
    EXPECT_EQ(s, "2026-03-05 09:02:03 +08:00");
}

TEST(TimeZone, Utc)
{
    EXPECT_EQ(show("UTC", "2026-11-23T16:04:05Z"), "2026-11-23 16:04:05 +00:00");
    EXPECT_EQ(show("UTC", "1970-01-01T00:00:00Z"), "1970-01-01 00:00:00 +00:00");
    EXPECT_EQ(show("UTC", "1969-12-31T23:59:59.5Z"), "1969-12-31 23:59:59 +00:00");
    EXPECT_EQ(show("UTC", "2026-11-24T00:04:05+08:00"), "2026-11-23 16:04:05 +00:00");
}

TEST(TimeZone, NewYorkDaylightSaving)
{
    EXPECT_EQ(show("America/New_York", "2026-01-15T12:00:00Z"), "2026-01-15 07:00:00 -05:00");
    EXPECT_EQ(show("America/New_York", "2026-07-15T12:00:00Z"), "2026-07-15 08:00:00 -04:00");
    // The switch on 2026-03-08: 01:59:59 EST is followed by 03:00:00 EDT.
    EXPECT_EQ(show("America/New_York", "2026-03-08T06:59:59Z"), "2026-03-08 01:59:59 -05:00");
    EXPECT_EQ(show("America/New_York", "2026-03-08T07:00:00Z"), "2026-03-08 03:00:00 -04:00");
}

TEST(TimeZone, BerlinDaylightSaving)
{
    EXPECT_EQ(show("Europe/Berlin", "2026-01-15T12:00:00Z"), "2026-01-15 13:00:00 +01:00");
    EXPECT_EQ(show("Europe/Berlin", "2026-07-15T12:00:00Z"), "2026-07-15 14:00:00 +02:00");
    EXPECT_EQ(show("Europe/Berlin", "2026-03-29T00:59:59Z"), "2026-03-29 01:59:59 +01:00");
    EXPECT_EQ(show("Europe/Berlin", "2026-03-29T01:00:00Z"), "2026-03-29 03:00:00 +02:00");
}

TEST(TimeZone, NegativeHalfHourOffset)
{
    EXPECT_EQ(show("America/St_Johns", "2026-01-15T12:00:00Z"), "2026-01-15 08:30:00 -03:30");
    EXPECT_EQ(show("America/St_Johns", "2026-07-15T12:00:00Z"), "2026-07-15 09:30:00 -02:30");
    // Local time falls on the previous day.
    EXPECT_EQ(show("America/St_Johns", "2026-01-15T02:00:00Z"), "2026-01-14 22:30:00 -03:30");
}

TEST(TimeZone, PositiveHalfAndQuarterHourOffsets)
{
    EXPECT_EQ(show("Asia/Kolkata", "2026-01-15T12:00:00Z"), "2026-01-15 17:30:00 +05:30");
    EXPECT_EQ(show("Asia/Kolkata", "2026-01-15T20:00:00Z"), "2026-01-16 01:30:00 +05:30");
    EXPECT_EQ(show("Asia/Kathmandu", "2026-01-15T12:00:00Z"), "2026-01-15 17:45:00 +05:45");
}

TEST(TimeZone, CopiesFormatTheSame)
{
    std::string error;
    const std::optional<TimeZone> z = TimeZone::find("Europe/Berlin", error);
    ASSERT_TRUE(z.has_value()) << error;
    const TimeZone copy = *z;
    EXPECT_EQ(copy.format(utc("2026-07-15T12:00:00Z")), "2026-07-15 14:00:00 +02:00");
    EXPECT_EQ(copy.name(), "Europe/Berlin");
}

// as_sent: each time with the offset it was written with, as Go's .StartsAt.Format prints it
// (the Go bridge's users on hosts in Asia/Shanghai see +08:00 times in their local time).
TEST(TimeZone, AsSentShowsEachTimeWithTheOffsetItWasWrittenWith)
{
    std::string error;
    std::optional<TimeZone> sent = TimeZone::find("as_sent", error);
    ASSERT_TRUE(sent.has_value()) << error;
    Offset east{}, west{}, utc_{};
    const auto t1 = parse_rfc3339("2026-11-24T00:09:35.5+08:00", &east);
    const auto t2 = parse_rfc3339("2026-11-23T11:09:35-05:00", &west);
    const auto t3 = parse_rfc3339("2026-11-23T16:09:35Z", &utc_);
    ASSERT_TRUE(t1 && t2 && t3);
    EXPECT_EQ(east, Offset(480));
    EXPECT_EQ(west, Offset(-300));
    EXPECT_EQ(utc_, Offset(0));
    EXPECT_EQ(sent->format(*t1, TimeZone::Form::date_time, east), "2026-11-24 00:09:35 +08:00");
    EXPECT_EQ(sent->format(*t2, TimeZone::Form::date_time, west), "2026-11-23 11:09:35 -05:00");
    EXPECT_EQ(sent->format(*t3), "2026-11-23 16:09:35 +00:00");
    const auto layout = GoLayout::parse("2006-01-02 15:04:05 MST", error);
    ASSERT_TRUE(layout) << error;
    EXPECT_EQ(sent->format(*t1, *layout, east), "2026-11-24 00:09:35 +0800");
    EXPECT_EQ(sent->format(*t3, *layout, utc_), "2026-11-23 16:09:35 UTC");
    // An IANA zone ignores the offset written: the same instant in its own time.
    const std::optional<TimeZone> ny = TimeZone::find("America/New_York", error);
    ASSERT_TRUE(ny.has_value()) << error;
    EXPECT_EQ(ny->format(*t1, TimeZone::Form::date_time, east), "2026-11-23 11:09:35 -05:00");
}
