// Helpers shared by the unit tests. The test binary runs in t/unit, so fixtures are at
// ../fixtures/NAME.json and golden files at golden/NAME.md.
#pragma once

#include "alert.hpp"
#include "delivery.hpp"
#include "render.hpp"
#include "sender.hpp"
#include "timezone.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk_test
{

inline std::string read_file(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        ADD_FAILURE() << "cannot open " << path << " (the tests run in t/unit)";
        return "";
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

inline std::string fixture_text(const std::string &name)
{
    return read_file("../fixtures/" + name + ".json");
}

// A fixture parsed; a parse failure fails the calling test and returns an empty notification.
inline dingtalk::Notification fixture(const std::string &name)
{
    dingtalk::ParseResult r = dingtalk::parse_notification(fixture_text(name));
    if (!r.notification) {
        ADD_FAILURE() << "fixture " << name << " does not parse: " << r.error;
        return {};
    }
    return *r.notification;
}

inline const dingtalk::TimeZone &zone(const char *name)
{
    std::string error;
    static std::map<std::string, dingtalk::TimeZone> cache;
    auto it = cache.find(name);
    if (it == cache.end()) {
        std::optional<dingtalk::TimeZone> z = dingtalk::TimeZone::find(name, error);
        if (!z) {
            ADD_FAILURE() << error;
            z = dingtalk::TimeZone::find("UTC", error);
        }
        it = cache.emplace(name, *z).first;
    }
    return it->second;
}

// The module's default settings, in Asia/Shanghai: the time zone the goldens are written in.
inline dingtalk::Settings settings()
{
    dingtalk::Settings s;
    s.timezone = std::make_shared<const dingtalk::TimeZone>(zone("Asia/Shanghai"));
    return s;
}

// Render options over settings the caller keeps alive.
inline dingtalk::RenderOptions options(const dingtalk::Settings &s)
{
    dingtalk::RenderOptions opt;
    opt.settings = &s;
    return opt;
}

// A target's settings, to change before a delivery starts (a copy: targets share them).
inline dingtalk::Settings &edit(dingtalk::Target &t)
{
    auto copy = std::make_shared<dingtalk::Settings>(t.settings ? *t.settings : settings());
    t.settings = copy;
    return *copy;
}

// A delivery past its first run (parse, key, render), cleared to send: each run from here on
// is one attempt.
inline void ready(dingtalk::Delivery &d)
{
    d.run(0);
    d.go();
}

// render_message with the default settings.
inline dingtalk::Message render(const dingtalk::Notification &n, dingtalk::Mentions at = {})
{
    const dingtalk::Settings s = settings();
    dingtalk::RenderOptions opt = options(s);
    opt.at = std::move(at);
    return dingtalk::render_message(n, opt);
}

inline dingtalk::Alert make_alert(dingtalk::Status status, dingtalk::Labels labels,
                                  dingtalk::Labels annotations = {})
{
    dingtalk::Alert a;
    a.status = status;
    a.labels = std::move(labels);
    a.annotations = std::move(annotations);
    a.starts_at = dingtalk::parse_rfc3339("2026-11-23T16:04:05Z");
    if (status == dingtalk::Status::resolved) {
        a.ends_at = dingtalk::parse_rfc3339("2026-11-23T16:34:05Z");
    }
    return a;
}

inline dingtalk::Notification make_notification(std::vector<dingtalk::Alert> alerts)
{
    dingtalk::Notification n;
    n.version = "4";
    n.receiver = "dingtalk";
    n.external_url = "http://alertmanager.example:9093";
    n.alerts = std::move(alerts);
    n.count_alerts();
    n.status = n.count(dingtalk::Status::firing) > 0 ? dingtalk::Status::firing
                                                     : dingtalk::Status::resolved;
    return n;
}

// A deadline `budget` from now, on the clock Delivery::run() counts on.
inline std::uint64_t in(std::chrono::milliseconds budget)
{
    return dingtalk::monotonic_ms() + static_cast<std::uint64_t>(budget.count());
}

// How many times `needle` occurs in `hay`, not overlapping.
inline std::size_t occurrences(std::string_view hay, std::string_view needle)
{
    std::size_t n = 0;
    for (std::size_t pos = hay.find(needle); pos != std::string_view::npos;
         pos = hay.find(needle, pos + needle.size())) {
        ++n;
    }
    return n;
}

// Strict UTF-8 check (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF, and no
// sequence cut short.
inline bool is_valid_utf8(std::string_view s)
{
    std::size_t i = 0;
    while (i < s.size()) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        std::size_t len = 0;
        unsigned min = 0;
        unsigned cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            len = 2, min = 0x80, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, min = 0x800, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, min = 0x10000, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) {
            return false;
        }
        for (std::size_t k = 1; k < len; ++k) {
            const unsigned char cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

// Whole seconds since the epoch (rounded down) and the nanoseconds past them.
inline long long epoch_seconds(const dingtalk::TimePoint &t)
{
    return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

inline long long subsecond_micros(const dingtalk::TimePoint &t)
{
    return std::chrono::duration_cast<std::chrono::microseconds>(
               t.time_since_epoch() - std::chrono::seconds(epoch_seconds(t)))
        .count();
}

} // namespace dingtalk_test
