#include "ratelimit.hpp"

#include <algorithm>
#include <iterator>

namespace dingtalk
{

namespace
{

std::uint64_t &at(RateWindow &w, std::uint32_t i)
{
    return w.times[(w.head + i) % kMaxRateCount];
}

std::uint64_t at(const RateWindow &w, std::uint32_t i)
{
    return w.times[(w.head + i) % kMaxRateCount];
}

void push(RateWindow &w, std::uint64_t t)
{
    if (w.count < kMaxRateCount) {
        at(w, w.count) = t;
        ++w.count;
    } else {
        w.times[w.head] = t;
        w.head = (w.head + 1) % kMaxRateCount;
    }
}

} // namespace

void init(RateWindow &w)
{
    std::fill(std::begin(w.times), std::end(w.times), 0);
    w.head = 0;
    w.count = 0;
    w.throttled_until = 0;
}

Reservation reserve(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms)
{
    if (w.throttled_until > now_ms) {
        return {Reservation::throttled, 0, w.throttled_until - now_ms};
    }

    const std::uint32_t n = std::min(std::max<std::uint32_t>(limit.count, 1), kMaxRateCount);
    std::uint64_t t = now_ms;
    if (w.count >= n) {
        // the n-th most recent send must be a whole window (plus guard) before this one
        t = std::max(t, at(w, w.count - n) + limit.window_ms + limit.guard_ms);
    }
    if (t > now_ms && w.count > 0) {
        // waiting anyway: queue behind those already waiting, first come, first served (when
        // there is room, now is taken as is: another worker's clock may lag a millisecond)
        t = std::max(t, at(w, w.count - 1));
    }
    if (t - now_ms > limit.hold_ms) {
        return {Reservation::rejected, 0, t - now_ms};
    }
    push(w, t);
    return {t == now_ms ? Reservation::now : Reservation::later, t, 0};
}

void release(RateWindow &w, std::uint64_t at_ms)
{
    for (std::uint32_t i = w.count; i-- > 0;) {
        if (at(w, i) == at_ms) {
            for (std::uint32_t j = i; j + 1 < w.count; ++j) {
                at(w, j) = at(w, j + 1);
            }
            --w.count;
            return;
        }
    }
}

void throttle(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms)
{
    w.throttled_until = std::max(w.throttled_until, now_ms + limit.cooldown_ms);
}

std::uint32_t in_window(const RateWindow &w, const RateLimit &limit, std::uint64_t now_ms)
{
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < w.count; ++i) {
        const std::uint64_t t = at(w, i);
        n += t + limit.window_ms > now_ms && t <= now_ms + limit.hold_ms;
    }
    return n;
}

} // namespace dingtalk
