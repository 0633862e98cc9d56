#include "golayout.hpp"

#include <cctype>
#include <cstring>

namespace dingtalk
{

namespace
{

// The elements of Go's reference time, Mon Jan 2 15:04:05 MST 2006, as time/format.go names
// them.
enum Element {
    kLongMonth,
    kMonth,
    kNumMonth,
    kZeroMonth,
    kLongWeekDay,
    kWeekDay,
    kDay,
    kUnderDay,
    kZeroDay,
    kUnderYearDay,
    kZeroYearDay,
    kHour,
    kHour12,
    kZeroHour12,
    kMinute,
    kZeroMinute,
    kSecond,
    kZeroSecond,
    kLongYear,
    kYear,
    kPM,
    kpm,
    kTZ,
    kISO8601TZ,
    kISO8601SecondsTZ,
    kISO8601ShortTZ,
    kISO8601ColonTZ,
    kISO8601ColonSecondsTZ,
    kNumTZ,
    kNumSecondsTz,
    kNumShortTZ,
    kNumColonTZ,
    kNumColonSecondsTZ,
    kFraction
};

// Literal spellings, longest first where one starts another, as Go tries them.
const std::pair<const char *, Element> kSpellings[] = {
    {"January", kLongMonth},
    {"Jan", kMonth},
    {"Monday", kLongWeekDay},
    {"Mon", kWeekDay},
    {"MST", kTZ},
    {"002", kZeroYearDay},
    {"01", kZeroMonth},
    {"02", kZeroDay},
    {"03", kZeroHour12},
    {"04", kZeroMinute},
    {"05", kZeroSecond},
    {"06", kYear},
    {"15", kHour},
    {"1", kNumMonth},
    {"2006", kLongYear},
    {"2", kDay},
    {"__2", kUnderYearDay},
    {"_2", kUnderDay},
    {"3", kHour12},
    {"4", kMinute},
    {"5", kSecond},
    {"PM", kPM},
    {"pm", kpm},
    {"-07:00:00", kNumColonSecondsTZ},
    {"-070000", kNumSecondsTz},
    {"-07:00", kNumColonTZ},
    {"-0700", kNumTZ},
    {"-07", kNumShortTZ},
    {"Z07:00:00", kISO8601ColonSecondsTZ},
    {"Z070000", kISO8601SecondsTZ},
    {"Z07:00", kISO8601ColonTZ},
    {"Z0700", kISO8601TZ},
    {"Z07", kISO8601ShortTZ},
};

const char *const kMonths[] = {"January",   "February", "March",    "April",
                               "May",       "June",     "July",     "August",
                               "September", "October",  "November", "December"};
const char *const kDays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                             "Thursday", "Friday", "Saturday"};

bool digit_at(std::string_view s, std::size_t i)
{
    return i < s.size() && s[i] >= '0' && s[i] <= '9';
}

// The element that starts at i, and its length; -1 when none does.
int element_at(std::string_view s, std::size_t i, std::size_t &len)
{
    // "_2006" is "_" and the year, as Go reads it
    if (s.compare(i, 5, "_2006") == 0) {
        return -1;
    }
    // a fraction: "." or "," and a run of 0s or of 9s not followed by a digit
    if ((s[i] == '.' || s[i] == ',') && i + 1 < s.size() && (s[i + 1] == '0' || s[i + 1] == '9')) {
        std::size_t j = i + 1;
        while (j < s.size() && s[j] == s[i + 1]) {
            ++j;
        }
        if (!digit_at(s, j)) {
            len = j - i;
            return kFraction;
        }
    }
    for (const auto &[spelling, element] : kSpellings) {
        const std::size_t n = std::strlen(spelling);
        if (s.compare(i, n, spelling) == 0) {
            len = n;
            return element;
        }
    }
    return -1;
}

// What strftime or Java would mean by it: Go prints these as they are.
const char *foreign_spelling(std::string_view s)
{
    for (const char *f : {"YYYY", "yyyy", "YY", "DD", "dd", "HH", "hh", "mm", "ss", "SSS"}) {
        if (s.find(f) != std::string_view::npos) {
            return f;
        }
    }
    for (std::size_t i = s.find('%'); i != std::string_view::npos; i = s.find('%', i + 1)) {
        if (i + 1 < s.size() && std::isalpha(static_cast<unsigned char>(s[i + 1]))) {
            return "%";
        }
    }
    return nullptr;
}

void pad(std::string &out, long n, int width, char fill = '0')
{
    std::string digits = std::to_string(n < 0 ? -n : n);
    if (n < 0) {
        out += '-';
    }
    out.append(digits.size() < std::size_t(width) ? width - digits.size() : 0, fill);
    out += digits;
}

// The zone's offset as -0700, -07:00, -07, ... (Z for UTC in the ISO 8601 forms).
void offset(std::string &out, long secs, int element)
{
    const bool iso = element >= kISO8601TZ && element <= kISO8601ColonSecondsTZ;
    if (iso && secs == 0) {
        out += 'Z';
        return;
    }
    const bool colon = element == kISO8601ColonTZ || element == kISO8601ColonSecondsTZ ||
                       element == kNumColonTZ || element == kNumColonSecondsTZ;
    const bool seconds = element == kISO8601SecondsTZ || element == kISO8601ColonSecondsTZ ||
                         element == kNumSecondsTz || element == kNumColonSecondsTZ;
    const bool hours_only = element == kISO8601ShortTZ || element == kNumShortTZ;
    const long abs = secs < 0 ? -secs : secs;
    out += secs < 0 ? '-' : '+';
    pad(out, abs / 3600, 2);
    if (!hours_only) {
        out += colon ? ":" : "";
        pad(out, abs / 60 % 60, 2);
    }
    if (seconds) {
        out += colon ? ":" : "";
        pad(out, abs % 60, 2);
    }
}

// A fraction of a second: .000 always prints its digits, .999 drops trailing zeros (and itself
// when nothing is left). Alertmanager's times are kept to the microsecond.
void fraction(std::string &out, const GoLayout::Chunk &c, std::uint32_t micros)
{
    std::string digits = std::to_string(1000000 + micros).substr(1) + "000";
    digits.resize(c.digits);
    if (c.literal.size() > 1) { // the nines
        digits.erase(digits.find_last_not_of('0') + 1);
        if (digits.empty()) {
            return;
        }
    }
    out += c.literal[0];
    out += digits;
}

void element(std::string &out, const GoLayout::Chunk &c, const LocalTime &t)
{
    const unsigned h12 = t.hour % 12 == 0 ? 12 : t.hour % 12;
    switch (c.element) {
    case kLongMonth:
        out += kMonths[t.month - 1];
        break;
    case kMonth:
        out.append(kMonths[t.month - 1], 3);
        break;
    case kNumMonth:
        pad(out, t.month, 1);
        break;
    case kZeroMonth:
        pad(out, t.month, 2);
        break;
    case kLongWeekDay:
        out += kDays[t.weekday];
        break;
    case kWeekDay:
        out.append(kDays[t.weekday], 3);
        break;
    case kDay:
        pad(out, t.day, 1);
        break;
    case kUnderDay:
        pad(out, t.day, 2, ' ');
        break;
    case kZeroDay:
        pad(out, t.day, 2);
        break;
    case kUnderYearDay:
        pad(out, t.yearday, 3, ' ');
        break;
    case kZeroYearDay:
        pad(out, t.yearday, 3);
        break;
    case kHour:
        pad(out, t.hour, 2);
        break;
    case kHour12:
        pad(out, h12, 1);
        break;
    case kZeroHour12:
        pad(out, h12, 2);
        break;
    case kMinute:
        pad(out, t.minute, 1);
        break;
    case kZeroMinute:
        pad(out, t.minute, 2);
        break;
    case kSecond:
        pad(out, t.second, 1);
        break;
    case kZeroSecond:
        pad(out, t.second, 2);
        break;
    case kLongYear:
        pad(out, t.year, 4);
        break;
    case kYear:
        pad(out, t.year % 100, 2);
        break;
    case kPM:
        out += t.hour >= 12 ? "PM" : "AM";
        break;
    case kpm:
        out += t.hour >= 12 ? "pm" : "am";
        break;
    case kTZ:
        if (!t.abbr.empty()) {
            out += t.abbr;
        } else {
            offset(out, t.offset, kNumTZ);
        }
        break;
    case kFraction:
        fraction(out, c, t.micros);
        break;
    default:
        offset(out, t.offset, c.element);
        break;
    }
}

} // namespace

std::shared_ptr<const GoLayout> GoLayout::parse(std::string_view layout, std::string &error)
{
    if (layout.empty() || layout.size() > 64) {
        error = "a time layout is 1 to 64 bytes";
        return nullptr;
    }
    for (const char c : layout) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
            error = "a time layout has no control characters";
            return nullptr;
        }
    }
    if (const char *f = foreign_spelling(layout)) {
        error = "\"" + std::string(layout) + "\" is not a Go time layout (it has \"" + f +
                "\"): Go writes the reference time, 2006-01-02 15:04:05 (year, month, day, "
                "hour, minute, second), Jan, Mon, MST, -07:00, .000";
        return nullptr;
    }
    std::vector<Chunk> chunks;
    bool any = false;
    for (std::size_t i = 0; i < layout.size();) {
        std::size_t len = 0;
        const int e = element_at(layout, i, len);
        if (e < 0) {
            if (chunks.empty() || chunks.back().element >= 0) {
                chunks.push_back({-1, "", 0});
            }
            chunks.back().literal += layout[i++];
            continue;
        }
        // a fraction keeps its separator, and a 9 when it drops trailing zeros
        const std::string_view spelled = layout.substr(i, len);
        const bool fraction = e == kFraction;
        chunks.push_back({e,
                          fraction ? std::string(spelled.substr(0, spelled[1] == '9' ? 2 : 1)) : "",
                          fraction ? unsigned(len - 1) : 0});
        any = true;
        i += len;
    }
    if (!any) {
        error = "\"" + std::string(layout) +
                "\" has no element of Go's reference time (2006-01-02 15:04:05 MST)";
        return nullptr;
    }
    return std::shared_ptr<const GoLayout>(new GoLayout(std::string(layout), std::move(chunks)));
}

std::string GoLayout::format(const LocalTime &t) const
{
    std::string out;
    out.reserve(text_.size() + 16);
    for (const Chunk &c : chunks_) {
        if (c.element < 0) {
            out += c.literal;
        } else {
            element(out, c, t);
        }
    }
    return out;
}

} // namespace dingtalk
