// parse_rfc3339: exact instants for every accepted form, nothing for anything else.
#include "alert.hpp"

#include "test_util.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

using namespace dingtalk;
using dingtalk_test::epoch_seconds;
using dingtalk_test::subsecond_micros;

namespace
{

// Epoch seconds computed with python3:
//   int(datetime.fromisoformat("2026-11-23T16:04:05+00:00").timestamp())
constexpr long long k20261123T160405Z = 1795449845;
constexpr long long k20240229T120000Z = 1709208000;
constexpr long long k20380119T031408Z = 2147483648;

struct Instant {
    long long seconds;
    long long micros;
};

// The instant of a text that must parse; {-1, -1} (and a failure) when it does not.
Instant at(const std::string &text)
{
    const std::optional<TimePoint> t = parse_rfc3339(text);
    EXPECT_TRUE(t.has_value()) << "refused: " << text;
    if (!t) {
        return {-1, -1};
    }
    return {epoch_seconds(*t), subsecond_micros(*t)};
}

void expect_instant(const std::string &text, long long seconds, long long micros)
{
    SCOPED_TRACE(text);
    const Instant i = at(text);
    EXPECT_EQ(i.seconds, seconds);
    EXPECT_EQ(i.micros, micros);
}

} // namespace

TEST(Rfc3339, UtcWithNanoseconds)
{
    expect_instant("2026-11-23T16:04:05.123456789Z", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T16:04:05Z", k20261123T160405Z, 0);
    expect_instant("1970-01-01T00:00:00Z", 0, 0);
    expect_instant("2024-02-29T12:00:00Z", k20240229T120000Z, 0);
    expect_instant("2038-01-19T03:14:08Z", k20380119T031408Z, 0);
}

TEST(Rfc3339, Offsets)
{
    expect_instant("2026-11-24T00:04:05.123456789+08:00", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T10:34:05.123456789-05:30", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T16:04:05+00:00", k20261123T160405Z, 0);
    expect_instant("2026-11-23T16:04:05-00:00", k20261123T160405Z, 0);
    // An offset that moves the date across a day, a month and a year boundary.
    expect_instant("2027-01-01T07:04:05+14:00", 1798736645, 0);
    expect_instant("2026-12-31T00:00:00-12:00", 1798718400, 0);
}

TEST(Rfc3339, FractionalDigits)
{
    expect_instant("2026-11-23T16:04:05Z", k20261123T160405Z, 0);
    expect_instant("2026-11-23T16:04:05.1Z", k20261123T160405Z, 100000);
    expect_instant("2026-11-23T16:04:05.123Z", k20261123T160405Z, 123000);
    expect_instant("2026-11-23T16:04:05.123456Z", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T16:04:05.123456789Z", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T16:04:05.000000001Z", k20261123T160405Z, 0);
    // Beyond microseconds the digits are dropped, not rounded (messages show seconds).
    expect_instant("2026-11-23T16:04:05.123456789999Z", k20261123T160405Z, 123456);
    expect_instant("2026-11-23T16:04:05.999999999999+08:00", k20261123T160405Z - 8 * 3600, 999999);
}

TEST(Rfc3339, LowercaseSeparators)
{
    expect_instant("2026-11-23t16:04:05z", k20261123T160405Z, 0);
    expect_instant("2026-11-23t16:04:05.5z", k20261123T160405Z, 500000);
}

TEST(Rfc3339, BeforeTheEpoch)
{
    expect_instant("1969-12-31T23:59:59.5Z", -1, 500000);
    // python3: int(datetime(1700,1,1,tzinfo=timezone.utc).timestamp())
    expect_instant("1700-01-01T00:00:00Z", -8520336000, 0);
}

TEST(Rfc3339, LeapSecondShowsAsTheSecondBefore)
{
    const std::optional<TimePoint> leap = parse_rfc3339("2016-12-31T23:59:60Z");
    const std::optional<TimePoint> before = parse_rfc3339("2016-12-31T23:59:59Z");
    ASSERT_TRUE(leap && before);
    EXPECT_EQ(*leap, *before);
}

TEST(Rfc3339, RefusesInvalidDatesAndTimes)
{
    for (const char *text : {
             "2026-02-30T00:00:00Z", // February 30
             "2026-02-29T00:00:00Z", // not a leap year
             "2026-13-01T00:00:00Z", // month 13
             "2026-00-10T00:00:00Z", // month 0
             "2026-11-00T00:00:00Z", // day 0
             "2026-04-31T00:00:00Z", // April 31
             "2026-11-23T24:00:00Z", // hour 24
             "2026-11-23T16:60:00Z", // minute 60
             "2026-11-23T16:04:61Z", // second 61
             "2026-11-23T16:04:05+24:00",
             "2026-11-23T16:04:05+08:60",
         }) {
        EXPECT_FALSE(parse_rfc3339(text).has_value()) << text;
    }
}

TEST(Rfc3339, RefusesOtherShapes)
{
    for (const char *text : {
             "",
             "garbage",
             "yesterday at noon",
             "2026-11-23",
             "2026-11-23T16:04Z",
             "2026-11-23T16:04:05",        // no zone
             "2026-11-23T16:04:05.Z",      // a dot without digits
             "2026-11-23T16:04:05.123",    // digits, still no zone
             "2026-11-23T16:04:05+0800",   // offset without the colon
             "2026-11-23T16:04:05+08",     // offset without minutes
             "2026-11-23T16:04:05 +08:00", // a space before the offset
             "2026-11-23T16:04:05UTC",
             "2026/11/23T16:04:05Z",
             "2026-11-23X16:04:05Z",
             "26-11-23T16:04:05Z",
             "+2026-11-23T16:04:05Z",
             "2026-1-23T16:04:05Z",
             "2026-11-23T16:4:05Z",
             "20a6-11-23T16:04:05Z",
             "1795449845",
         }) {
        EXPECT_FALSE(parse_rfc3339(text).has_value()) << "'" << text << "'";
    }
}

TEST(Rfc3339, RefusesTrailingText)
{
    for (const char *text : {
             "2026-11-23T16:04:05Zx",
             "2026-11-23T16:04:05Z ",
             "2026-11-23T16:04:05ZZ",
             "2026-11-23T16:04:05+08:00 ",
             "2026-11-23T16:04:05+08:00:00",
             "2026-11-23T16:04:05.123Z\n",
         }) {
        EXPECT_FALSE(parse_rfc3339(text).has_value()) << "'" << text << "'";
    }
    EXPECT_FALSE(parse_rfc3339(std::string("2026-11-23T16:04:05Z\0", 21)).has_value());
    EXPECT_FALSE(parse_rfc3339(std::string_view(" 2026-11-23T16:04:05Z")).has_value());
}

TEST(Rfc3339, ShortInputIsNotReadPastItsEnd)
{
    // A view into a longer buffer: only the first 19 bytes belong to the input.
    const std::string buffer = "2026-11-23T16:04:05Z";
    EXPECT_FALSE(parse_rfc3339(std::string_view(buffer).substr(0, 19)).has_value());
    EXPECT_FALSE(parse_rfc3339(std::string_view(buffer).substr(0, 10)).has_value());
    const std::string offset = "2026-11-23T16:04:05+08:00";
    EXPECT_FALSE(parse_rfc3339(std::string_view(offset).substr(0, 24)).has_value());
}

// Times far from today (Go's zero time in year 1, year 2300) must keep their order: a TimePoint
// that wrapped around (as 64-bit nanoseconds would) would turn them into wrong instants.
TEST(Rfc3339, FarTimesDoNotWrapAround)
{
    const TimePoint y1700 = *parse_rfc3339("1700-01-01T00:00:00Z");
    const TimePoint y2262 = *parse_rfc3339("2262-01-01T00:00:00Z");
    EXPECT_EQ(epoch_seconds(y2262), 9214646400);

    const std::optional<TimePoint> zero = parse_rfc3339("0001-01-01T00:00:00Z");
    ASSERT_TRUE(zero.has_value());
    EXPECT_EQ(epoch_seconds(*zero), -62135596800) << "Go's zero time";
    const std::optional<TimePoint> late = parse_rfc3339("2300-01-01T00:00:00Z");
    ASSERT_TRUE(late.has_value());
    EXPECT_GT(*late, y2262) << "year 2300 came out as " << epoch_seconds(*late);
    const std::optional<TimePoint> early = parse_rfc3339("1600-01-01T00:00:00Z");
    ASSERT_TRUE(early.has_value());
    EXPECT_LT(*early, y1700) << "year 1600 came out as " << epoch_seconds(*early);
}
