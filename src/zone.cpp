#include "zone.hpp"

#include "date_lib.hpp"

#include <cstdio>
#include <exception>

namespace dingtalk
{

std::optional<Zone> Zone::find(std::string_view name, std::string &error)
{
    try {
        const date::time_zone *tz = date::locate_zone(name);
        return Zone(tz, std::string(name));
    } catch (const std::exception &e) {
        error = "unknown time zone \"" + std::string(name) +
                "\" (an IANA name like Asia/Shanghai or UTC is expected; is tzdata installed?)";
    }
    return std::nullopt;
}

std::string Zone::format(TimePoint t, Form form) const
{
    const auto *tz = static_cast<const date::time_zone *>(tz_);
    const auto secs = date::floor<std::chrono::seconds>(t);
    const auto info = tz->get_info(secs);
    const auto local = date::local_seconds((secs + info.offset).time_since_epoch());

    const auto day = date::floor<date::days>(local);
    const date::year_month_day ymd(day);
    const date::hh_mm_ss<std::chrono::seconds> hms(local - day);

    const long off_min = static_cast<long>(info.offset.count() / 60);
    const long abs_off = off_min < 0 ? -off_min : off_min;

    char date[64], time[72], offset[48];
    std::snprintf(date, sizeof(date), "%04d-%02u-%02u", int(ymd.year()), unsigned(ymd.month()),
                  unsigned(ymd.day()));
    std::snprintf(time, sizeof(time), "%02ld:%02ld:%02ld", long(hms.hours().count()),
                  long(hms.minutes().count()), long(hms.seconds().count()));
    std::snprintf(offset, sizeof(offset), "%c%02ld:%02ld", off_min < 0 ? '-' : '+', abs_off / 60,
                  abs_off % 60);
    switch (form) {
    case Form::date:
        return date;
    case Form::time:
        return time;
    case Form::rfc3339:
        return std::string(date) + "T" + time + offset;
    case Form::date_time:
        break;
    }
    return std::string(date) + " " + time + " " + offset;
}

} // namespace dingtalk
