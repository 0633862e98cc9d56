// IANA time zones for the times shown in messages, backed by the system tz database.
#pragma once

#include "alert.hpp"
#include "golayout.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace dingtalk
{

class TimeZone
{
public:
    // Looks the zone up once (at configuration time). Thread-safe to use afterwards. kAsSent
    // names no IANA zone: each time is shown with the UTC offset Alertmanager wrote it with, as
    // Go's `.StartsAt.Format` shows it (UTC for a time that has no offset, such as now).
    static std::optional<TimeZone> find(std::string_view name, std::string &error);
    static constexpr std::string_view kAsSent = "as_sent";

    enum class Form {
        date_time, // "2026-11-24 00:04:05 +08:00", the seed's format
        date,      // "2026-11-24"
        time,      // "00:04:05"
        rfc3339,   // "2026-11-24T00:04:05+08:00"
    };
    // date_time is the layout given to set_layout, when one was. `sent`: the offset the time
    // was written with (Alert::starts_at_offset), used only by the kAsSent zone.
    std::string format(TimePoint t, Form form = Form::date_time, Offset sent = {}) const;
    std::string format(TimePoint t, const GoLayout &layout, Offset sent = {}) const;
    LocalTime local(TimePoint t, Offset sent = {}) const;

    // dingtalk_timezone's second argument: the layout of every time shown (starts_at, ends_at,
    // now) instead of "2026-11-24 00:04:05 +08:00".
    void set_layout(std::shared_ptr<const GoLayout> layout) { layout_ = std::move(layout); }
    const GoLayout *layout() const { return layout_.get(); }

    const std::string &name() const { return name_; }

private:
    TimeZone(const void *tz, std::string name) : tz_(tz), name_(std::move(name)) {}

    const void *tz_; // a date::time_zone from the process-wide database; never freed; null: kAsSent
    std::string name_;
    std::shared_ptr<const GoLayout> layout_;
};

} // namespace dingtalk
