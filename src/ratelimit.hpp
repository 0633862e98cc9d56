// DingTalk allows a robot 20 messages a minute. This is the bookkeeping for one robot: a window
// of reserved send times that lives in nginx's shared memory (so it is plain data), shared by
// every worker and every location that uses the robot. Callers hold the zone's lock.
#pragma once

#include <cstdint>

namespace dingtalk
{

constexpr std::uint32_t kMaxRateCount = 64;

struct RateLimit {
    std::uint32_t count = 20;          // messages ...
    std::uint64_t window_ms = 60000;   // ... per this many milliseconds
    std::uint64_t hold_ms = 10000;     // wait at most this long for a free slot, else reject
    std::uint64_t cooldown_ms = 60000; // after DingTalk says 130101, refuse this long
    // Sends are reserved when decided, but reach DingTalk a little later (a busy pool, a slow
    // connect). A small guard keeps two sends a window apart as DingTalk sees them too.
    std::uint64_t guard_ms = 1000;
};

struct RateWindow {                     // plain data: lives in shared memory
    std::uint64_t times[kMaxRateCount]; // reserved send times, oldest first (ring)
    std::uint32_t head;                 // index of the oldest
    std::uint32_t count;                // entries in use
    std::uint64_t throttled_until;      // 130101 cool-down end; 0 = none
};

struct Reservation {
    enum Kind { now, later, rejected, throttled } kind;
    std::uint64_t at_ms;          // when to send (now or later)
    std::uint64_t retry_after_ms; // rejected/throttled: when a retry could pass
};

void init(RateWindow &w);

// Reserves the earliest send time that keeps every window within the limit, if it is no more
// than hold_ms away. Times are milliseconds of a clock shared by all workers (monotonic).
Reservation reserve(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms);

// Gives back a reservation that was never sent (a body that turned out invalid).
void release(RateWindow &w, std::uint64_t at_ms);

// DingTalk answered 130101 anyway (another sender shares the robot): stop sending for a while.
void throttle(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms);

// Messages reserved in the window ending at now_ms (for tests and metrics).
std::uint32_t in_window(const RateWindow &w, const RateLimit &limit, std::uint64_t now_ms);

} // namespace dingtalk
