// DingTalk allows a robot 20 messages a minute, counted when they arrive. This is the
// bookkeeping for one robot: the sends that may still count, in nginx's shared memory (so it is
// plain data), shared by every worker and every location that uses the robot. Callers hold the
// zone's lock.
//
// Each send is known by the latest time its message can reach DingTalk: while it is planned or
// under way, the hard deadline of its attempt (the thread does not send after it); once the
// thread reports, the time the exchange ended. A send that never left (nothing connected) is
// removed. A new send may start at t only while fewer than COUNT sends can still arrive after
// t - PERIOD: then no PERIOD ever holds more than COUNT arrivals, however long a send waited
// in a queue or took to connect.
#pragma once

#include <cstdint>

namespace dingtalk
{

constexpr std::uint32_t kMaxRateCount = 64;
// Sends that may count at once: up to COUNT done or under way, and those waiting behind them.
constexpr std::uint32_t kRateSlots = 2 * kMaxRateCount;

struct RateLimit {
    std::uint32_t count = 20;           // messages ...
    std::uint64_t window_ms = 60000;    // ... per this many milliseconds
    std::uint64_t hold_ms = 10000;      // wait at most this long for a free slot, else reject
    std::uint64_t cooldown_ms = 600000; // after 130101, refuse this long (DingTalk: 10 minutes)
    // Bytes sent just before the deadline may still be on their way: a small margin for them.
    std::uint64_t guard_ms = 1000;
};

struct RateSend {
    std::uint64_t id;    // 0: free; unique in the zone (a forgotten robot's ids are never reused)
    std::uint64_t until; // the latest this message can arrive at DingTalk
    bool settled;        // until is when the send ended, no longer its deadline
};

struct RateWindow { // plain data: lives in shared memory
    RateSend sends[kRateSlots];
    std::uint64_t span_ms; // the longest PERIOD + guard reserved with: how long a send counts
    std::uint64_t throttled_until; // 130101 cool-down end; 0 = none
};

struct Reservation {
    // wait: no slot within hold while sends under way count until their deadlines, but there
    // would be one if they ended now (they usually end in well under a second): ask again in
    // retry_after_ms.
    enum Kind { now, later, wait, rejected, throttled, full } kind;
    std::uint64_t id;             // now or later: the send, for correct() and release()
    std::uint64_t at_ms;          // now or later: when to send
    std::uint64_t retry_after_ms; // wait, rejected or throttled: when to ask again
};

// How often a webhook that waits on sends under way asks again.
constexpr std::uint64_t kRateRecheckMs = 100;

void init(RateWindow &w);

// Reserves the earliest send time, if it is no more than hold_ms away, for a send (known as
// `id`, never 0) whose attempt takes at most attempt_ms from then. Times are milliseconds of a
// clock shared by all workers (monotonic).
Reservation reserve(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms,
                    std::uint64_t attempt_ms, std::uint64_t id);

// The send ended at ended_ms: its message cannot arrive later than that.
void correct(RateWindow &w, std::uint64_t id, std::uint64_t ended_ms);

// The send never left (nothing connected, the body was invalid, the client went away first).
void release(RateWindow &w, std::uint64_t id);

// Reserves n sends for the messages of one notification, known as first_id, first_id + 1, ...:
// all of them or none. now or later (at_ms: when the last may be sent; id: first_id), else the
// answer the first send that could not be had got.
Reservation reserve_all(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms,
                        std::uint64_t attempt_ms, std::uint32_t n, std::uint64_t first_id);

// DingTalk answered 130101 anyway (another sender shares the robot): stop sending for a while.
void throttle(RateWindow &w, const RateLimit &limit, std::uint64_t now_ms);

// Nothing in the window can count any more and no cool-down runs: the robot may be forgotten.
bool idle(const RateWindow &w, std::uint64_t now_ms);

} // namespace dingtalk
