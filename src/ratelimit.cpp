#include "ratelimit.hpp"

#include <algorithm>
#include <functional>
#include <iterator>

namespace dingtalk
{

namespace
{

bool counts(const RateSend &s, std::uint64_t span_ms, std::uint64_t now_ms)
{
    return s.id != 0 && s.until + span_ms > now_ms;
}

RateSend *find(RateWindow &w, std::uint64_t id)
{
    for (RateSend &s : w.sends) {
        if (s.id == id && id != 0) {
            return &s;
        }
    }
    return nullptr;
}

// The earliest send time at or after now_ms with fewer than n of these possible arrivals after
// it minus span.
std::uint64_t earliest(std::uint64_t *until, std::uint32_t active, std::uint32_t n,
                       std::uint64_t span, std::uint64_t now_ms)
{
    if (active < n) {
        return now_ms;
    }
    // the n-th latest possible arrival must be a whole PERIOD (plus guard) before this send
    std::nth_element(until, until + (n - 1), until + active, std::greater<>());
    return std::max(now_ms, until[n - 1] + span);
}

} // namespace

void init(RateWindow &w)
{
    std::fill(std::begin(w.sends), std::end(w.sends), RateSend{0, 0, false});
    w.span_ms = 0;
    w.throttled_until = 0;
}

Reservation reserve(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms,
                    std::uint64_t attempt_ms, std::uint64_t id)
{
    if (w.throttled_until > now_ms) {
        return {Reservation::throttled, 0, 0, w.throttled_until - now_ms};
    }
    const std::uint64_t span = limit.window_ms + limit.guard_ms;
    w.span_ms = std::max(w.span_ms, span);

    // The sends that may still arrive after now - PERIOD (those kept for a longer PERIOD of
    // another location do not count here); and the same if those under way ended now.
    std::uint64_t until[kRateSlots], if_ended[kRateSlots];
    std::uint32_t active = 0;
    RateSend *free = nullptr;
    for (RateSend &s : w.sends) {
        if (!counts(s, w.span_ms, now_ms)) {
            s.id = 0;
            free = free ? free : &s;
        } else if (s.until + span > now_ms) {
            if_ended[active] = s.settled ? s.until : std::min(s.until, now_ms);
            until[active++] = s.until;
        }
    }
    const std::uint32_t n = std::min(std::max<std::uint32_t>(limit.count, 1), kMaxRateCount);
    const std::uint64_t t = earliest(until, active, n, span, now_ms);
    if (t - now_ms > limit.hold_ms) {
        const std::uint64_t hope = earliest(if_ended, active, n, span, now_ms);
        return hope - now_ms <= limit.hold_ms
                   ? Reservation{Reservation::wait, 0, 0, kRateRecheckMs}
                   : Reservation{Reservation::rejected, 0, 0, hope - now_ms};
    }
    if (free == nullptr) {
        return {Reservation::full, 0, 0, limit.window_ms};
    }
    *free = RateSend{id, t + attempt_ms, false};
    return {t == now_ms ? Reservation::now : Reservation::later, id, t, 0};
}

Reservation reserve_all(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms,
                        std::uint64_t attempt_ms, std::uint32_t n, std::uint64_t first_id)
{
    Reservation all{Reservation::now, first_id, now_ms, 0};
    for (std::uint32_t i = 0; i < n; ++i) {
        const Reservation r = reserve(w, limit, now_ms, attempt_ms, first_id + i);
        if (r.kind != Reservation::now && r.kind != Reservation::later) {
            for (std::uint32_t j = 0; j < i; ++j) {
                release(w, first_id + j);
            }
            return r;
        }
        all.at_ms = std::max(all.at_ms, r.at_ms);
    }
    // every message leaves after the last slot's time: each may arrive until its attempt's end
    for (std::uint32_t i = 0; i < n; ++i) {
        RateSend *s = find(w, first_id + i);
        s->until = std::max(s->until, all.at_ms + attempt_ms);
    }
    all.kind = all.at_ms == now_ms ? Reservation::now : Reservation::later;
    return all;
}

void correct(RateWindow &w, std::uint64_t id, std::uint64_t ended_ms)
{
    if (RateSend *s = find(w, id)) {
        s->until = std::min(s->until, ended_ms);
        s->settled = true;
    }
}

void release(RateWindow &w, std::uint64_t id)
{
    if (RateSend *s = find(w, id)) {
        s->id = 0;
    }
}

void throttle(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms)
{
    w.throttled_until = std::max(w.throttled_until, now_ms + limit.cooldown_ms);
}

bool idle(const RateWindow &w, std::uint64_t now_ms)
{
    return w.throttled_until <= now_ms &&
           std::none_of(std::begin(w.sends), std::end(w.sends),
                        [&](const RateSend &s) { return counts(s, w.span_ms, now_ms); });
}

} // namespace dingtalk
