#include "timezone.hpp"

#include "date_lib.hpp"

#include <exception>

namespace dingtalk
{

std::optional<TimeZone> TimeZone::find(std::string_view name, std::string &error)
{
    if (name == kAsSent) {
        return TimeZone(nullptr, std::string(name));
    }
    try {
        const date::time_zone *tz = date::locate_zone(name);
        return TimeZone(tz, std::string(name));
    } catch (const std::exception &e) {
        error = "unknown time zone \"" + std::string(name) +
                "\" (an IANA name like Asia/Shanghai or UTC is expected; is tzdata installed?)";
    }
    return std::nullopt;
}

namespace
{

// Appends n as printf's "%0*ld" writes it with `width`: zeros after the sign up to that many
// characters. By hand: snprintf was most of the cost of formatting a time.
std::string &add_padded(std::string &out, long n, std::size_t width)
{
    char digits[24];
    char *const end = digits + sizeof digits;
    char *p = end;
    unsigned long u = n < 0 ? 0UL - static_cast<unsigned long>(n) : static_cast<unsigned long>(n);
    do {
        *--p = static_cast<char>('0' + u % 10);
        u /= 10;
    } while (u != 0);
    const std::size_t count = static_cast<std::size_t>(end - p), sign = n < 0 ? 1 : 0;
    out.append(sign, '-');
    out.append(count + sign < width ? width - count - sign : 0, '0');
    return out.append(p, count);
}

} // namespace

LocalTime TimeZone::local(TimePoint t, Offset sent) const
{
    const auto *tz = static_cast<const date::time_zone *>(tz_);
    const auto secs = date::floor<std::chrono::seconds>(t);
    LocalTime l;
    std::chrono::seconds offset = sent;
    if (tz != nullptr) {
        const auto info = tz->get_info(secs);
        offset = info.offset;
        l.abbr = info.abbrev;
    } else if (sent.count() == 0) {
        l.abbr = "UTC";
    } else { // as Go names a zone known only by its offset: "+0800"
        const auto m = sent.count() < 0 ? -sent.count() : sent.count();
        add_padded(l.abbr += sent.count() < 0 ? '-' : '+', m / 60 * 100 + m % 60, 4);
    }
    const auto local = date::local_seconds((secs + offset).time_since_epoch());
    const auto day = date::floor<date::days>(local);
    const date::year_month_day ymd(day);
    const date::hh_mm_ss<std::chrono::seconds> hms(local - day);
    const date::year_month_day jan1(ymd.year() / date::January / 1);
    l.year = int(ymd.year());
    l.month = unsigned(ymd.month());
    l.day = unsigned(ymd.day());
    l.hour = unsigned(hms.hours().count());
    l.minute = unsigned(hms.minutes().count());
    l.second = unsigned(hms.seconds().count());
    l.weekday = date::weekday(day).c_encoding();
    l.yearday = unsigned((day - date::local_days(jan1)).count()) + 1;
    l.micros = std::uint32_t((t - secs).count());
    l.offset = long(offset.count());
    return l;
}

std::string TimeZone::format(TimePoint t, const GoLayout &layout, Offset sent) const
{
    return layout.format(local(t, sent));
}

std::string TimeZone::format(TimePoint t, Form form, Offset sent) const
{
    if (form == Form::date_time && layout_) {
        return format(t, *layout_, sent);
    }
    const LocalTime l = local(t, sent);
    const long off_min = l.offset / 60;
    const long abs_off = off_min < 0 ? -off_min : off_min;

    std::string date, time, offset;
    if (form == Form::date_time || form == Form::rfc3339) {
        date.reserve(32); // built in date
    }
    add_padded(date, l.year, 4) += '-';
    add_padded(date, l.month, 2) += '-';
    add_padded(date, l.day, 2);
    add_padded(time, l.hour, 2) += ':';
    add_padded(time, l.minute, 2) += ':';
    add_padded(time, l.second, 2);
    offset += off_min < 0 ? '-' : '+';
    add_padded(offset, abs_off / 60, 2) += ':';
    add_padded(offset, abs_off % 60, 2);
    switch (form) {
    case Form::date:
        return date;
    case Form::time:
        return time;
    case Form::rfc3339:
        date.append("T").append(time).append(offset);
        return date;
    case Form::date_time:
        break;
    }
    date.append(" ").append(time).append(" ").append(offset);
    return date;
}

} // namespace dingtalk
