// The per-robot send window: DingTalk counts arrivals, so no PERIOD may ever hold more than
// COUNT of them, however late a send leaves or however long it takes.
#include "ratelimit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

using namespace dingtalk;

namespace
{

RateLimit limit(std::uint32_t count, std::uint64_t window_ms, std::uint64_t guard_ms = 0)
{
    RateLimit l;
    l.count = count;
    l.window_ms = window_ms;
    l.guard_ms = guard_ms;
    l.hold_ms = 1000000;
    return l;
}

struct Window {
    RateWindow w;
    std::uint64_t next = 1;
    Window() { init(w); }
    Reservation reserve(const RateLimit &l, std::uint64_t now, std::uint64_t attempt)
    {
        return dingtalk::reserve(w, l, now, attempt, next++);
    }
};

} // namespace

TEST(RateLimit, SendsAtOnceWhileThereIsRoom)
{
    Window win;
    const RateLimit l = limit(3, 60000);
    for (int i = 0; i < 3; ++i) {
        const Reservation r = win.reserve(l, 1000, 5000);
        EXPECT_EQ(r.kind, Reservation::now);
        EXPECT_EQ(r.at_ms, 1000u);
        correct(win.w, r.id, 1100);
    }
    const Reservation fourth = win.reserve(l, 1200, 5000);
    EXPECT_EQ(fourth.kind, Reservation::later);
    EXPECT_EQ(fourth.at_ms, 1100u + 60000) << "a PERIOD after the first one could have arrived";
}

// Finding 3 of the bounds issue: two sends reserved at 0.2 s reached DingTalk at 2.5 s (a busy
// pool); a third at 6.6 s was over DingTalk's limit of 2 per 6 s.
TEST(RateLimit, LateArrivalsMoveTheWindow)
{
    Window win;
    const RateLimit l = limit(2, 6000, 100);
    const Reservation a = win.reserve(l, 200, 5000), b = win.reserve(l, 200, 5000);
    ASSERT_EQ(a.kind, Reservation::now);
    ASSERT_EQ(b.kind, Reservation::now);
    // while both may still be on their way, the next send waits for their deadlines
    const Reservation early = win.reserve(l, 1000, 5000);
    EXPECT_EQ(early.kind, Reservation::later);
    EXPECT_GE(early.at_ms, 5200u + 6000);
    release(win.w, early.id);
    // both ended at 2.5 s: the next send goes a PERIOD after that, not after 0.2 s
    correct(win.w, a.id, 2500);
    correct(win.w, b.id, 2500);
    const Reservation c = win.reserve(l, 6600, 5000);
    EXPECT_EQ(c.kind, Reservation::later);
    EXPECT_EQ(c.at_ms, 2500u + 6000 + 100);
}

// A burst: the sends under way count until their deadlines, which would turn the next webhook
// away; they usually end in milliseconds, so it is told to ask again soon instead.
TEST(RateLimit, WaitsForSendsUnderWayRatherThanRefusing)
{
    Window win;
    RateLimit l = limit(2, 6000);
    l.hold_ms = 10000;
    const Reservation a = win.reserve(l, 200, 5000), b = win.reserve(l, 200, 5000);
    const Reservation c = win.reserve(l, 300, 5000);
    EXPECT_EQ(c.kind, Reservation::wait);
    EXPECT_EQ(c.retry_after_ms, kRateRecheckMs);
    correct(win.w, a.id, 400);
    correct(win.w, b.id, 450);
    const Reservation again = win.reserve(l, 500, 5000);
    EXPECT_EQ(again.kind, Reservation::later);
    EXPECT_EQ(again.at_ms, 6400u);
    // once both have ended, no hope within hold is a plain refusal
    l.hold_ms = 1000;
    const Reservation no = win.reserve(l, 600, 5000);
    EXPECT_EQ(no.kind, Reservation::rejected);
}

TEST(RateLimit, ASendThatNeverLeftCostsNothing)
{
    Window win;
    const RateLimit l = limit(1, 60000);
    const Reservation a = win.reserve(l, 0, 5000);
    release(win.w, a.id); // connection refused: nothing arrived
    EXPECT_EQ(win.reserve(l, 10, 5000).kind, Reservation::now);
}

TEST(RateLimit, CorrectionNeverExtendsADeadline)
{
    Window win;
    const RateLimit l = limit(1, 1000);
    const Reservation a = win.reserve(l, 0, 500);
    correct(win.w, a.id, 9000); // a late completion event cannot make the send count longer
    const Reservation b = win.reserve(l, 600, 500);
    EXPECT_EQ(b.at_ms, 1500u);
}

TEST(RateLimit, RejectsBeyondHoldAndSaysWhenToRetry)
{
    Window win;
    RateLimit l = limit(1, 60000);
    l.hold_ms = 10000;
    correct(win.w, win.reserve(l, 0, 5000).id, 100);
    const Reservation r = win.reserve(l, 1000, 5000);
    EXPECT_EQ(r.kind, Reservation::rejected);
    EXPECT_EQ(r.retry_after_ms, 100u + 60000 - 1000);
}

TEST(RateLimit, ThrottledForTenMinutesByDefault)
{
    Window win;
    const RateLimit l;
    EXPECT_EQ(l.cooldown_ms, 600000u) << "DingTalk throttles a robot for 10 minutes";
    throttle(win.w, l, 1000);
    const Reservation r = win.reserve(l, 2000, 5000);
    EXPECT_EQ(r.kind, Reservation::throttled);
    EXPECT_EQ(r.retry_after_ms, 599000u);
    EXPECT_FALSE(idle(win.w, 2000));
    EXPECT_EQ(win.reserve(l, 601000, 5000).kind, Reservation::now);
}

TEST(RateLimit, FullWindowRefusesInsteadOfForgetting)
{
    Window win;
    RateLimit l = limit(kMaxRateCount, 60000);
    std::vector<Reservation> all;
    for (std::uint32_t i = 0; i < kRateSlots; ++i) {
        all.push_back(win.reserve(l, 0, 1000));
        ASSERT_TRUE(all.back().kind == Reservation::now || all.back().kind == Reservation::later)
            << i;
    }
    EXPECT_EQ(win.reserve(l, 0, 1000).kind, Reservation::full);
}

TEST(RateLimit, IdleOnceNothingCounts)
{
    Window win;
    const RateLimit l = limit(5, 1000, 10);
    EXPECT_TRUE(idle(win.w, 0));
    const Reservation a = win.reserve(l, 0, 300);
    EXPECT_FALSE(idle(win.w, 100));
    correct(win.w, a.id, 200);
    EXPECT_FALSE(idle(win.w, 1209));
    EXPECT_TRUE(idle(win.w, 1210));
}

// The promise itself, against an adversary: sends wait in a queue for a random time, take a
// random time, may fail to connect (never arrive), and each may arrive at any moment between
// leaving and its end. Checked for the worst choice of those moments: no PERIOD can ever hold
// more than COUNT arrivals.
TEST(RateLimit, NoPeriodEverHoldsMoreThanCountArrivals)
{
    std::mt19937_64 rng(20261130);
    struct Send {
        std::uint64_t id, start, end;
        bool sent;
    };
    for (int round = 0; round < 300; ++round) {
        Window win;
        const std::uint32_t count = 1 + rng() % 6;
        const RateLimit l = limit(count, 1000 + rng() % 5000);
        std::vector<Send> pending, done;
        std::uint64_t now = 0;
        for (int step = 0; step < 200; ++step) {
            now += rng() % 400;
            // completions that are due tell the window what happened
            for (auto it = pending.begin(); it != pending.end();) {
                if (it->end > now) {
                    ++it;
                    continue;
                }
                if (it->sent) {
                    correct(win.w, it->id, it->end);
                    done.push_back(*it);
                } else {
                    release(win.w, it->id);
                }
                it = pending.erase(it);
            }
            const std::uint64_t attempt = 100 + rng() % 3000;
            const Reservation r = win.reserve(l, now, attempt);
            if (r.kind != Reservation::now && r.kind != Reservation::later) {
                continue;
            }
            const std::uint64_t wait = rng() % 2 ? 0 : rng() % (attempt + 1); // in the queue
            const std::uint64_t start = r.at_ms + wait, deadline = r.at_ms + attempt;
            const std::uint64_t end =
                rng() % 2 ? deadline : std::min(deadline, start + rng() % 2000);
            pending.push_back({r.id, start, end, rng() % 5 != 0});
        }
        // The most arrivals one PERIOD can hold: a PERIOD ending at x holds every send that
        // left by x and had not ended by x - PERIOD; the worst x is a moment a send left.
        for (const Send &s : pending) {
            if (s.sent) {
                done.push_back(s); // still to come, as planned
            }
        }
        ASSERT_GT(done.size(), 3 * count) << "round " << round << " sent too little to tell";
        for (const Send &last : done) {
            std::uint32_t in_period = 0;
            for (const Send &s : done) {
                in_period += s.start <= last.start && s.end + l.window_ms > last.start;
            }
            ASSERT_LE(in_period, count) << "round " << round;
        }
    }
}

TEST(RateLimit, SeveralMessagesGetAllTheirSlotsOrNone)
{
    Window x;
    RateLimit l = limit(3, 60000);
    l.hold_ms = 0;
    ASSERT_EQ(x.reserve(l, 0, 100).kind, Reservation::now);
    // two left: three cannot be had, and the two that could are not kept
    const Reservation no = reserve_all(x.w, l, 10, 100, 3, 100);
    EXPECT_EQ(no.kind, Reservation::rejected);
    EXPECT_GT(no.retry_after_ms, 0u);
    const Reservation yes = reserve_all(x.w, l, 10, 100, 2, 200);
    EXPECT_EQ(yes.kind, Reservation::now);
    EXPECT_EQ(yes.id, 200u);
    EXPECT_EQ(x.reserve(l, 20, 100).kind, Reservation::rejected) << "both were taken";
    release(x.w, 201);
    EXPECT_EQ(x.reserve(l, 30, 100).kind, Reservation::now) << "ids 200 and 201 are theirs";
}

TEST(RateLimit, SeveralMessagesWaitForTheLatestSlotWithinHold)
{
    Window x;
    RateLimit l = limit(2, 1000);
    l.hold_ms = 5000;
    for (const std::uint64_t t : {0, 10}) {
        const Reservation r = x.reserve(l, t, 100);
        ASSERT_EQ(r.kind, Reservation::now);
        correct(x.w, r.id, t + 50);
    }
    const Reservation r = reserve_all(x.w, l, 100, 100, 2, 50);
    EXPECT_EQ(r.kind, Reservation::later);
    EXPECT_EQ(r.at_ms, 1060u) << "the second earlier send leaves the window at 60 + 1000";
    // both leave at 1060 at the earliest, so both may arrive until 1060 + 100: a third send
    // must wait for that, not for the first slot's own time
    const Reservation third = x.reserve(l, 200, 100);
    EXPECT_EQ(third.kind, Reservation::later);
    EXPECT_EQ(third.at_ms, 1160u + 1000u);
}
