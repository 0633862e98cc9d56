#include "resolved.hpp"

#include <algorithm>
#include <cstring>

namespace dingtalk
{

namespace
{

bool fits(std::string_view s, std::size_t size)
{
    return s.size() < size && s.find('\0') == std::string_view::npos;
}

void copy(char *to, std::size_t size, std::string_view s)
{
    std::memset(to, 0, size);
    std::memcpy(to, s.data(), std::min(s.size(), size - 1));
}

// Letters, digits and '-' (silence ids are UUIDs, fingerprints hex): safe in a log line.
bool plain(std::string_view s)
{
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '-';
    });
}

bool used(const UntilResolved &e)
{
    return e.id[0] != '\0';
}

UntilResolved *find(UntilResolvedTable &t, std::string_view id)
{
    for (UntilResolved &e : t.entries) {
        if (used(e) && id == e.id) {
            return &e;
        }
    }
    return nullptr;
}

} // namespace

std::uint64_t alertmanager_identity(std::string_view url)
{
    while (!url.empty() && url.back() == '/') {
        url.remove_suffix(1); // the same base, written with or without its '/'
    }
    std::uint64_t h = 1469598103934665603ULL;
    for (const char c : url) {
        h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    }
    return h;
}

KeepResult keep(UntilResolvedTable &t, std::string_view id, std::string_view fingerprint,
                std::uint64_t alertmanager, std::int64_t hard_end, std::int64_t now)
{
    UntilResolved made;
    if (!make_entry(id, fingerprint, alertmanager, hard_end, made)) {
        return KeepResult::invalid;
    }
    drop_ended(t, now);
    if (UntilResolved *e = find(t, id)) {
        e->hard_end = std::max(e->hard_end, hard_end);
        return KeepResult::again;
    }
    made.kept_at = now;
    for (UntilResolved &e : t.entries) {
        if (!used(e)) {
            e = made;
            return KeepResult::kept;
        }
    }
    return KeepResult::full;
}

bool make_entry(std::string_view id, std::string_view fingerprint, std::uint64_t alertmanager,
                std::int64_t hard_end, UntilResolved &out)
{
    if (id.empty() || !fits(id, sizeof(UntilResolved::id)) || !plain(id) ||
        !fits(fingerprint, sizeof(UntilResolved::fingerprint)) || !plain(fingerprint)) {
        return false;
    }
    std::memset(&out, 0, sizeof out);
    copy(out.id, sizeof out.id, id);
    copy(out.fingerprint, sizeof out.fingerprint, fingerprint);
    out.alertmanager = alertmanager;
    out.hard_end = hard_end;
    return true;
}

bool forget(UntilResolvedTable &t, std::string_view id)
{
    UntilResolved *e = find(t, id);
    if (e != nullptr) {
        std::memset(e, 0, sizeof *e);
    }
    return e != nullptr;
}

std::size_t drop_ended(UntilResolvedTable &t, std::int64_t now)
{
    std::size_t n = 0;
    for (UntilResolved &e : t.entries) {
        if (used(e) && e.hard_end <= now) {
            std::memset(&e, 0, sizeof e);
            ++n;
        }
    }
    return n;
}

std::size_t due(const UntilResolvedTable &t, std::int64_t now,
                UntilResolved (&out)[kMaxUntilResolved])
{
    std::size_t n = 0;
    for (const UntilResolved &e : t.entries) {
        if (used(e) && e.hard_end > now) {
            out[n++] = e;
        }
    }
    std::sort(out, out + n,
              [](const UntilResolved &a, const UntilResolved &b) { return a.checked < b.checked; });
    return n;
}

void checked(UntilResolvedTable &t, std::string_view id, bool failed, std::int64_t now)
{
    if (UntilResolved *e = find(t, id)) {
        e->checked = now;
        e->failures = failed ? e->failures + 1 : 0;
    }
}

void stored(UntilResolvedTable &t, std::string_view id)
{
    if (UntilResolved *e = find(t, id)) {
        e->stored = 1;
    }
}

std::size_t kept(const UntilResolvedTable &t)
{
    return static_cast<std::size_t>(
        std::count_if(std::begin(t.entries), std::end(t.entries), used));
}

Lift lift_if_resolved(const AlertmanagerApi &api, const UntilResolved &entry, std::int64_t now)
{
    Lift lift;
    const auto failed = [&lift](const SilenceResult &r) {
        lift.result = LiftResult::failed;
        lift.unreachable = r.unreachable;
        lift.error = r.error;
        return lift;
    };
    const SilenceResult silence = get_silence(api, entry.id);
    if (!silence.ok) {
        return failed(silence);
    }
    if (silence.silences.empty() || silence.silences.front().state == "expired") {
        lift.result = LiftResult::gone; // expired by hand, by its end, or by another instance
        return lift;
    }
    const SilenceResult alerts = alert_firing(api, silence.silences.front().filters);
    if (!alerts.ok) {
        return failed(alerts);
    }
    if (alerts.firing) {
        lift.result = LiftResult::firing;
        return lift;
    }
    const SilenceResult status = alertmanager_started(api);
    if (!status.ok && !status.too_large) {
        return failed(status); // not known whether it just started: asked again next round
    }
    const std::int64_t started = status.ok ? status.started : 0;
    if (started > entry.kept_at && now - started < kAlertsBackSeconds) {
        lift.result = LiftResult::firing; // not judged: the alert may not be back yet
        lift.error = "Alertmanager started " + std::to_string(now - started) + " s ago";
        return lift;
    }
    const SilenceResult expired = expire_silence(api, entry.id);
    if (!expired.ok) {
        return failed(expired);
    }
    lift.result = LiftResult::expired;
    return lift;
}

const char *to_string(LiftResult r)
{
    switch (r) {
    case LiftResult::firing:
        return "firing";
    case LiftResult::expired:
        return "expired";
    case LiftResult::gone:
        return "gone";
    case LiftResult::failed:
        break;
    }
    return "failed";
}

} // namespace dingtalk
