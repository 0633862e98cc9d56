// A delivery's flow, all in the worker's event loop except Delivery::run():
//
//   start -> prepare (thread): parse, key the notification and its alerts, render
//         -> look the notification up in the shared zone's records:
//              all posted before: finish, 200 without a send
//              another request sends it now: follow (a timer), then look again
//              ours: render again without what was posted before (thread), then go
//         -> schedule: reserve send slots in the robot's shared window, with a hard deadline
//              now:      post the send (nothing sent past the deadline)
//              later:    wait on a timer (at most "hold"), then post
//              rejected: finish, 503 + Retry-After (or, when retrying, the last failure)
//         -> thread_done: the record learns what DingTalk took (or may have: a request that went
//              out whole and was never answered is sent once more at most); the next message,
//              a retry of what provably never arrived, or finish
//
// One timer per request serves several purposes: a deadline while a task runs (so a worker
// that is shutting down waits for it), the hold before a send, the backoff before a retry, and
// the wait for another request's delivery. Threads never sleep and never touch nginx;
// everything that waits, waits on a timer. A client that goes away is noticed while the
// request waits (ngx_http_test_reading, as the upstream module does). Every delivery ends in
// finish(), once: what it holds (slots, its record) goes back there. Every event handler of ours
// catches what the C++ below it throws, and runs the connection's posted requests before it
// returns, as nginx's own handlers do.

#include "ngx_http_dingtalk.hpp"

#include "delivery.hpp"

#include <algorithm>
#include <chrono>
#include <string>

namespace
{

// The thread may run a little past its deadline (closing, DNS); the timer only has to keep
// the worker alive until the completion event arrives.
const ngx_msec_t kDeadlineSlack = 5000;

// idle: between steps, nothing runs and no timer waits (while a run's end is handled).
// following: another request delivers the same notification; we look again on a timer.
// folding: in the robot's room, to go with other notifications in the next message (fold).
enum class State { idle, holding, running, backoff, following, folding, done };

// What the delivery's next (or running) thread task does. claim: asks dingtalk_store again
// whether another instance still delivers the notification.
enum class Step { prepare, render, send, claim };

// How often a request that follows another's delivery of its notification looks again.
const ngx_msec_t kFollowMs = 200;
// How often a request whose notification waits to be folded looks for a free slot.
const ngx_msec_t kFoldPollMs = 100;
// How long a record is kept after its delivery: after a 200 the client heard, for a second
// replica's copy of the notification (Alertmanager's peers wait 15 s each) and no longer, so
// that repeat_interval's reminders are posted again; otherwise for Alertmanager's retries.
const uint64_t kKeepAnsweredMs = 2 * 60 * 1000;
const uint64_t kKeepUnansweredMs = 60 * 60 * 1000;

// Send slots of the robot's window this delivery holds: the one of the attempt planned or in
// flight, and those of the messages after it when a notification is several.
struct slots_t {
    uint64_t send_id;       // 0: none
    uint64_t reserved_id;   // the first of the others
    uint32_t reserved_left; // ... and how many
};

// What a task asks dingtalk_store: nothing; the notification's record after the first run
// (prepare) or alone (Step::claim); a slot of the shared window before a send and its settling
// (with the records the message carried) after.
enum class store_job_e { none, claim, claim_only, send };

// A task's part in dingtalk_store, done by its thread. Written by the event loop before the
// post, by the thread after.
struct store_task_t {
    const dingtalk::Store *store;
    const u_char *robot;
    dingtalk::RateLimit limit;
    store_job_e job;
    bool fallback_held; // the local slot was taken under the fallback window
    bool cleared;       // the send went: the store gave a slot, or failed with fallback_held
    dingtalk::StoreReservation res;
    bool settle_failed;
    std::string settle_error;
    std::string owner;                     // this instance, as the records name it
    uint64_t lease_ms;                     // how long a claim of a record lasts
    dingtalk::StoreClaim claimed;          // the last claim's answer
    std::vector<dingtalk::StoreMark> fold; // a folded message's notifications and their alerts
};

struct ngx_http_dingtalk_ctx_t {
    ngx_event_t timer; // first: timer_handler gets back to the context from it
    ngx_http_request_t *r;
    const ngx_http_dingtalk_loc_conf_t *lcf;
    const dingtalk::Settings *settings;
    dingtalk::Delivery *delivery;
    ngx_thread_task_t *task;
    ngx_shm_zone_t *zone; // the shared zone: metrics, and the robot's window
    bool rate_limited;    // the window applies (dingtalk_rate_limit is not off)
    ngx_http_dingtalk_robot_t *robot;
    ngx_msec_t received;      // body read
    ngx_msec_t first_attempt; // first task posted; the delivery timeout counts from here
    slots_t slots;
    Step step;
    uint64_t owner;   // this delivery's id, while it owns its notification's record; 0: none
    uint32_t doubts;  // of the message being sent: times it went out whole, unanswered
    uint64_t group;   // dingtalk_fold: what may be folded together (one location's settings)
    bool in_room;     // the notification waits in the robot's room to be folded
    uint64_t fold_id; // the send that carries a folded message (its rate slot's id); 0: none
    std::vector<uint64_t> *folded; // the notifications in that message
    bool reserve_all;              // cleared to go: the next reservation is for all the messages
    uint64_t deadline;             // when the delivery must be over: no send starts that could end
                                   // later (monotonic ms)
    ngx_msec_t asked_since;        // waiting for sends under way to end, since; 0: not waiting
    bool counted_waiting;          // in dingtalk_requests_waiting
    bool warned_late;              // the deadline passed and was logged once
    store_task_t *store;           // dingtalk_store applies; nullptr: the shared zone only
    bool fallback_held;            // the last local reservation used the store's fallback window
    bool elsewhere;                // following another instance's delivery (dingtalk_store)
    State state;
};

// ---------------------------------------------------------------------------------------------
// the one way a delivery ends

// How it ends: DingTalk's answer (or the last attempt's failure) is the reply; or the glue
// refuses it before anything was sent; or the client is gone and nobody hears a reply.
struct end_t {
    enum Kind { answered, refused, abandoned } kind;
    dingtalk::Ending ending; // refused, abandoned: what the metrics count
    ngx_uint_t status;       // refused: the reply
    std::string reason;      // refused
    ngx_uint_t retry_after;  // refused: seconds, 0 for none
    bool wake;               // abandoned: resume the request (nginx finalizes it)
};

end_t answered()
{
    return {end_t::answered, dingtalk::Ending::internal, 0, {}, 0, false};
}

end_t refused(ngx_uint_t status, std::string reason, dingtalk::Ending ending,
              ngx_uint_t retry_after = 0)
{
    return {end_t::refused, ending, status, std::move(reason), retry_after, false};
}

end_t abandoned(bool wake)
{
    return {end_t::abandoned, dingtalk::Ending::client_closed, 0, {}, 0, wake};
}

dingtalk::Ending ending_of(dingtalk::Outcome o)
{
    switch (o) {
    case dingtalk::Outcome::delivered:
        return dingtalk::Ending::delivered;
    case dingtalk::Outcome::posted_before:
        return dingtalk::Ending::posted_before;
    case dingtalk::Outcome::bad_request:
        return dingtalk::Ending::bad_request;
    case dingtalk::Outcome::refused:
        return dingtalk::Ending::refused;
    case dingtalk::Outcome::throttled:
        return dingtalk::Ending::throttled;
    case dingtalk::Outcome::busy:
        return dingtalk::Ending::busy;
    case dingtalk::Outcome::unreachable:
        return dingtalk::Ending::unreachable;
    case dingtalk::Outcome::timeout:
    case dingtalk::Outcome::doubtful:
        return dingtalk::Ending::timeout;
    case dingtalk::Outcome::late: // the pool was too slow to start it in time: the same remedy
        return dingtalk::Ending::queue_full; // as a full queue, and the same series
                                             // (docs/operations.md)
    case dingtalk::Outcome::internal:
        break;
    }
    return dingtalk::Ending::internal;
}

// Waiting on a timer (hold or backoff) shows in dingtalk_requests_waiting.
void set_waiting(ngx_http_dingtalk_ctx_t *ctx, bool waiting)
{
    if (ctx->counted_waiting != waiting) {
        ngx_http_dingtalk_gauge(ctx->zone, ngx_http_dingtalk_gauge_e::waiting, waiting ? 1 : -1);
        ctx->counted_waiting = waiting;
    }
}

// Slots reserved but not (or no longer) used go back to the window.
void release_slots(ngx_http_dingtalk_ctx_t *ctx)
{
    slots_t &s = ctx->slots;
    if (ctx->rate_limited) {
        if (s.send_id != 0) {
            ngx_http_dingtalk_release(ctx->zone, ctx->robot->key, s.send_id);
        }
        for (uint32_t i = 0; i < s.reserved_left; ++i) {
            ngx_http_dingtalk_release(ctx->zone, ctx->robot->key, s.reserved_id + i);
        }
    }
    s = slots_t{0, 0, 0};
}

// The delivery is done with its notification's record: kept for a replica's copy when the client
// heard a 200, for Alertmanager's retry otherwise.
void release_record(ngx_http_dingtalk_ctx_t *ctx, bool answered) noexcept
{
    if (ctx->owner != 0) {
        const dingtalk::Delivery &d = *ctx->delivery;
        ngx_http_dingtalk_unclaim(ctx->zone, d.key(), d.record_keys(), ctx->owner,
                                  answered ? kKeepAnsweredMs : kKeepUnansweredMs);
        ctx->owner = 0;
    }
}

ngx_uint_t seconds_up(uint64_t ms)
{
    return static_cast<ngx_uint_t>((ms + 999) / 1000);
}

void log_outcome(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Report &rep)
{
    ngx_http_request_t *r = ctx->r;
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    const ngx_uint_t level = rep.outcome == dingtalk::Outcome::delivered     ? NGX_LOG_INFO
                             : rep.outcome == dingtalk::Outcome::bad_request ? NGX_LOG_WARN
                                                                             : NGX_LOG_ERR;
    const std::string &robot = ctx->robot->name;
    const std::string line = rep.summary(); // the core already removed token and secret
    ngx_log_error(level, r->connection->log, 0, "dingtalk \"%V\" robot %*s: %*s", &clcf->name,
                  robot.size(), robot.data(), line.size(), line.data());
}

// The delivery's report is the answer: counted, logged, and sent through
// r->write_event_handler, which is resume() or, when nginx terminated the request meanwhile,
// nginx's own finalizer.
void answer(ngx_http_dingtalk_ctx_t *ctx)
{
    ctx->delivery->stop_short(); // messages left unsent make it a 503, however many were taken
    const ngx_msec_t took = ngx_current_msec - ctx->received;
    ctx->delivery->set_elapsed(std::chrono::milliseconds(took));
    const dingtalk::Report &rep = ctx->delivery->report();
    ngx_http_dingtalk_count_delivery(ctx->zone, ctx->robot->key, ctx->robot->name,
                                     ctx->robot->static_name, rep, ending_of(rep.outcome), took);
    try {
        log_outcome(ctx, rep);
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0, "dingtalk: status %i (%s)",
                      static_cast<ngx_int_t>(rep.http_status),
                      ngx_http_dingtalk_what(std::current_exception()));
    }
    ctx->r->write_event_handler(ctx->r);
}

// Every delivery ends here, exactly once: its timer stops, its slots go back, the gauges and
// counters learn how it ended, and the client gets its answer (or nothing, when it left).
void finish(ngx_http_dingtalk_ctx_t *ctx, const end_t &how) noexcept
{
    if (ctx->state == State::done) {
        return;
    }
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    release_slots(ctx);
    set_waiting(ctx, false);
    if (ctx->in_room) {
        ngx_http_dingtalk_room_leave(ctx->zone, ctx->delivery->key(), ctx->owner);
    }
    release_record(ctx, how.kind == end_t::answered &&
                            ctx->delivery->report().outcome == dingtalk::Outcome::delivered &&
                            !ctx->r->connection->error);
    ctx->state = State::done;
    ngx_http_request_t *r = ctx->r;
    try {
        switch (how.kind) {
        case end_t::answered:
            answer(ctx);
            return;
        case end_t::refused:
            ngx_http_dingtalk_count_ending(ctx->zone, how.ending);
            ngx_http_finalize_request(
                r, ngx_http_dingtalk_send_json(
                       r, how.status, dingtalk::reply_json(false, how.reason), how.retry_after));
            return;
        case end_t::abandoned:
            ngx_http_dingtalk_count_ending(ctx->zone, how.ending);
            if (how.wake) {
                r->write_event_handler(r);
            }
            return;
        }
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: the reply could not be made: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

// Something our C++ threw in an event handler: logged with what it was; the delivery ends with
// a 500 unless a thread still runs it (its completion event comes back here, and ends it then).
void failed(ngx_http_dingtalk_ctx_t *ctx, const char *where) noexcept
{
    ngx_log_error(NGX_LOG_ALERT, ctx->r->connection->log, 0, "dingtalk: %s failed: %s", where,
                  ngx_http_dingtalk_what(std::current_exception()));
    if (ctx->state != State::running) {
        finish(ctx, refused(NGX_HTTP_INTERNAL_SERVER_ERROR, "internal error",
                            dingtalk::Ending::internal));
    }
}

// r->write_event_handler while the request waits; sends the reply once the delivery is done.
void resume(ngx_http_request_t *r) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
        ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
    if (ctx == nullptr || ctx->state != State::done) {
        return; // a write event while we wait: nothing to send yet
    }
    r->write_event_handler = ngx_http_request_empty_handler;
    try {
        const dingtalk::Report &rep = ctx->delivery->report();
        const ngx_uint_t retry_after =
            rep.outcome == dingtalk::Outcome::throttled
                ? seconds_up(ctx->settings->rate.value_or(dingtalk::RateLimit()).cooldown_ms)
            : rep.http_status == NGX_HTTP_SERVICE_UNAVAILABLE ? 5
                                                              : 0;
        ngx_http_finalize_request(
            r, ngx_http_dingtalk_send_json(r, static_cast<ngx_uint_t>(rep.http_status),
                                           rep.reply_json(ctx->settings->verbose_replies),
                                           retry_after));
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: the reply could not be made: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

// ---------------------------------------------------------------------------------------------
// the way out and back

// What a task carries into the thread: written before the post, read by the thread only.
struct task_data_t {
    dingtalk::Delivery *delivery;
    uint64_t deadline;   // monotonic ms: no send starts that could end after it
    store_task_t *store; // nullptr without dingtalk_store
};

// In the thread: a slot of the store's shared window; whether the send may go.
bool store_reserve(store_task_t &st, uint64_t deadline) noexcept
{
    const uint64_t now = dingtalk::monotonic_ms();
    st.res = st.store->reserve(st.robot, st.limit, deadline > now ? deadline - now : 0,
                               st.fallback_held);
    st.cleared = st.res.kind == dingtalk::StoreReservation::now ||
                 (st.res.kind == dingtalk::StoreReservation::failed && st.fallback_held);
    return st.cleared;
}

// In the thread: the store's window learns when the send ended, or that it never left, and the
// records what the message did to the alerts it carried.
void store_settle(store_task_t &st, const dingtalk::Delivery &d) noexcept
{
    if (st.res.kind != dingtalk::StoreReservation::now) {
        return;
    }
    const dingtalk::Report &rep = d.report();
    dingtalk::StoreMarks marks{dingtalk::StoreMarks::none, st.owner, st.lease_ms, {}};
    try {
        marks.kind = rep.outcome == dingtalk::Outcome::delivered  ? dingtalk::StoreMarks::taken
                     : rep.outcome == dingtalk::Outcome::doubtful ? dingtalk::StoreMarks::in_doubt
                                                                  : dingtalk::StoreMarks::none;
        if (!st.fold.empty()) {
            marks.records = st.fold;
        } else if (marks.kind != dingtalk::StoreMarks::none) {
            marks.records.push_back({d.key(), marks.kind == dingtalk::StoreMarks::taken
                                                  ? d.taken_alerts()
                                                  : d.current_alerts()});
        }
    } catch (const std::exception &e) {
        marks.kind = dingtalk::StoreMarks::none; // the window still learns; the record lapses
    }
    st.settle_failed = !st.store->settle(st.robot, st.res.member, rep.sent,
                                         rep.outcome == dingtalk::Outcome::throttled, st.limit,
                                         marks, st.settle_error);
}

// In the thread: the notification's record in the store, claimed for this instance.
void store_claim(store_task_t &st, const dingtalk::Delivery &d) noexcept
{
    st.claimed = dingtalk::StoreClaim{};
    if (d.key() == 0) {
        st.claimed.kind = dingtalk::StoreClaim::mine; // not a notification: nothing to claim
        return;
    }
    st.claimed = st.store->claim(st.robot, d.key(), d.record_keys(), st.owner, st.lease_ms);
}

void thread_handler(void *data, ngx_log_t *) noexcept
{
    // Only the task's own memory is touched here: no pools, no logs, no request.
    auto *td = static_cast<task_data_t *>(data);
    store_task_t *st = td->store;
    const store_job_e job = st != nullptr ? st->job : store_job_e::none;
    if (job == store_job_e::claim_only) {
        store_claim(*st, *td->delivery);
        return;
    }
    if (job == store_job_e::send && !store_reserve(*st, td->deadline)) {
        return; // the event loop schedules it again
    }
    td->delivery->run(td->deadline);
    if (job == store_job_e::claim) {
        store_claim(*st, *td->delivery);
    } else if (job == store_job_e::send) {
        store_settle(*st, *td->delivery);
    }
}

void schedule(ngx_http_dingtalk_ctx_t *ctx);
void fold_poll(ngx_http_dingtalk_ctx_t *ctx);
void hold(ngx_http_dingtalk_ctx_t *ctx, uint64_t ms);
void no_slot(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res);
dingtalk::RateLimit limit_now(ngx_http_dingtalk_ctx_t *ctx);

// The thread pool's queue is full: a 503, or the last failure when this was a retry (or a next
// message).
void queue_full(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0,
                  "dingtalk: thread pool \"%V\" queue is full; raise max_queue (or threads) in its "
                  "\"thread_pool\" directive",
                  &ctx->lcf->thread_pool_name);
    finish(ctx, ctx->delivery->report().attempts > 0
                    ? answered()
                    : refused(NGX_HTTP_SERVICE_UNAVAILABLE,
                              "busy: the delivery queue is full, retry later",
                              dingtalk::Ending::queue_full, 5));
}

// How long a delivery may own its notification's record without renewing it: a hold, then an
// attempt and its answer.
uint64_t lease_ms(const ngx_http_dingtalk_ctx_t *ctx)
{
    const dingtalk::Settings &s = *ctx->settings;
    return (s.rate ? s.rate->hold_ms : 0) + static_cast<uint64_t>(s.timeout.count()) +
           static_cast<uint64_t>(s.answer_timeout.count()) + kDeadlineSlack;
}

void post(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_request_t *r = ctx->r;
    const uint64_t now = ngx_current_msec;
    uint64_t waits = kDeadlineSlack; // past the deadline, before the timer says the task is late
    if (ctx->step != Step::send) {
        ctx->deadline = now + static_cast<uint64_t>(ctx->settings->timeout.count()); // no send
    } else {
        ctx->first_attempt = ctx->first_attempt ? ctx->first_attempt : (now ? now : 1);
        waits += static_cast<uint64_t>(ctx->settings->answer_timeout.count());
        if (ctx->owner != 0) { // the attempt may wait for its answer: the record stays ours
            const dingtalk::Delivery &d = *ctx->delivery;
            ngx_http_dingtalk_claim(ctx->zone, d.key(), d.record_keys(), {}, ctx->owner,
                                    now + lease_ms(ctx));
        }
    }
    static_cast<task_data_t *>(ctx->task->ctx)->deadline = ctx->deadline;
    if (ctx->store != nullptr) {
        store_task_t &st = *ctx->store;
        st.job = ctx->step == Step::send      ? store_job_e::send
                 : ctx->step == Step::prepare ? store_job_e::claim
                 : ctx->step == Step::claim   ? store_job_e::claim_only
                                              : store_job_e::none;
        st.lease_ms = lease_ms(ctx);
        st.limit = *ctx->settings->rate;
        st.fallback_held = ctx->fallback_held;
        st.settle_failed = false;
    }
    ctx->delivery->set_queued();
    if (ngx_thread_task_post(ctx->lcf->thread_pool, ctx->task) != NGX_OK) {
        queue_full(ctx);
        return;
    }

    // As nginx's own threaded I/O does: the request cannot be freed while the task runs.
    r->main->blocked++;
    r->aio = 1;
    ctx->state = State::running;
    set_waiting(ctx, false);
    ngx_http_dingtalk_gauge(ctx->zone, ngx_http_dingtalk_gauge_e::tasks_in_flight, 1);
    ngx_add_timer(&ctx->timer, (ctx->deadline > now ? ctx->deadline - now : 0) + waits);
}

// The window learns what the attempt did: when it ended, or that nothing left at all (an
// attempt that never connected never arrived, and costs no slot).
void settle_slot(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Report &rep)
{
    if (!ctx->rate_limited || ctx->slots.send_id == 0) {
        return;
    }
    if (rep.outcome == dingtalk::Outcome::bad_request) {
        release_slots(ctx); // nothing was sent, and the robot may be forgotten again
        return;
    }
    ngx_http_dingtalk_settle(ctx->zone, ctx->robot->key, ctx->slots.send_id, rep.sent,
                             rep.ended_ms);
    ctx->slots.send_id = 0;
    if (rep.outcome == dingtalk::Outcome::throttled) {
        ngx_http_dingtalk_throttle(ctx->zone, ctx->robot->key, *ctx->settings->rate);
    }
}

// A failed attempt that will be tried again: one line at info, so that every errcode DingTalk
// gave is in the log, not only the last.
void log_retry(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Report &rep, ngx_msec_t delay)
{
    const std::string line = rep.summary();
    const std::string &robot = ctx->robot->name;
    ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                  "dingtalk robot %*s: trying again in %M ms after %*s", robot.size(), robot.data(),
                  delay, line.size(), line.data());
}

// Cleared to send what is left: the slots of all its messages, then the first.
void go(ngx_http_dingtalk_ctx_t *ctx)
{
    ctx->delivery->go();
    ctx->step = Step::send;
    ctx->reserve_all = true;
    // the wait for their slots is what is left of "hold" since the webhook came
    ctx->asked_since = ctx->received ? ctx->received : 1;
    schedule(ctx);
}

// Another request delivers the same notification now (of this instance, or of another one that
// shares the store: elsewhere): wait for it (what it posts is not sent again), as long as this
// delivery's time lasts.
void follow(ngx_http_dingtalk_ctx_t *ctx, bool elsewhere)
{
    const char *who = elsewhere ? "another nginx instance (dingtalk_store)" : "another request";
    const ngx_msec_t waited = ngx_current_msec - ctx->received;
    if (waited >= static_cast<ngx_msec_t>(ctx->settings->timeout.count())) {
        ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                      "dingtalk: %s is still delivering this notification after %M ms; answered "
                      "503",
                      who, waited);
        finish(ctx, refused(NGX_HTTP_SERVICE_UNAVAILABLE,
                            "busy: another request is delivering this notification now; retry "
                            "later",
                            dingtalk::Ending::in_progress, 5));
        return;
    }
    if (ctx->state != State::following) {
        ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                      "dingtalk: %s is delivering this notification now: waiting for it, nothing "
                      "is sent beside it",
                      who);
        ctx->state = State::following;
        set_waiting(ctx, true);
    }
    ctx->elsewhere = elsewhere;
    ngx_add_timer(&ctx->timer, kFollowMs);
}

void store_failed(ngx_http_dingtalk_ctx_t *ctx, const std::string &why);
void store_answered(ngx_http_dingtalk_ctx_t *ctx, uint64_t warm_ms);

// What the instances sharing dingtalk_store did with the notification, merged into what this
// one's record says; false when that ends it here (posted elsewhere) or it follows another
// instance's delivery.
bool merge_store_record(ngx_http_dingtalk_ctx_t *ctx, ngx_http_dingtalk_claimed_t &claimed)
{
    if (ctx->store == nullptr) {
        return true;
    }
    const dingtalk::StoreClaim &c = ctx->store->claimed;
    dingtalk::Delivery &d = *ctx->delivery;
    const std::vector<uint64_t> &keys = d.record_keys();
    if (c.kind == dingtalk::StoreClaim::failed ||
        (c.kind != dingtalk::StoreClaim::taken && c.states.size() != keys.size())) {
        store_failed(ctx, c.error.empty() ? "an unexpected record" : c.error);
        return true; // this instance's record alone decides
    }
    store_answered(ctx, 0);
    if (c.kind == dingtalk::StoreClaim::taken) {
        follow(ctx, true);
        return false;
    }
    if (c.kind == dingtalk::StoreClaim::done) {
        d.posted_before();
        finish(ctx, answered());
        return false;
    }
    const std::vector<uint64_t> &alerts = d.alert_keys();
    for (std::size_t i = 0; i < alerts.size() && i < claimed.states.size(); ++i) {
        const auto j = std::lower_bound(keys.begin(), keys.end(), alerts[i]) - keys.begin();
        claimed.states[i] = std::max(claimed.states[i], c.states[static_cast<std::size_t>(j)]);
    }
    claimed.messages = std::max(claimed.messages, c.messages);
    return true;
}

// The notification's record: what of it was posted before, and whether another request
// delivers it now.
void look_up(ngx_http_dingtalk_ctx_t *ctx)
{
    dingtalk::Delivery &d = *ctx->delivery;
    if (d.key() == 0) {
        finish(ctx, answered()); // not a notification: 400
        return;
    }
    const uint64_t id = ctx->owner ? ctx->owner : ngx_http_dingtalk_new_id(ctx->zone);
    ngx_http_dingtalk_claimed_t claimed = ngx_http_dingtalk_claim(
        ctx->zone, d.key(), d.record_keys(), d.alert_keys(), id, ngx_current_msec + lease_ms(ctx));
    switch (claimed.claim) {
    case ngx_http_dingtalk_claim_e::done:
        d.posted_before();
        finish(ctx, answered());
        return;
    case ngx_http_dingtalk_claim_e::taken:
        follow(ctx, false);
        return;
    case ngx_http_dingtalk_claim_e::no_room:
        ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                      "dingtalk: no room in the shared zone to remember this notification: a "
                      "retry of it could post it again (raise dingtalk_zone_size)");
        go(ctx);
        return;
    case ngx_http_dingtalk_claim_e::mine:
        break;
    }
    ctx->owner = id;
    if (!merge_store_record(ctx, claimed)) {
        return;
    }
    const std::size_t posted = static_cast<std::size_t>(
        std::count(claimed.states.begin(), claimed.states.end(), dingtalk::Posted::yes));
    if (posted == 0 && claimed.messages == 0) {
        go(ctx);
        return;
    }
    ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                  "dingtalk: %uz of this notification's %uz alerts were posted before, in %uD "
                  "messages taken: sending the rest",
                  posted, claimed.states.size(), claimed.messages);
    d.resume(claimed.states, claimed.messages);
    ctx->step = Step::render;
    post(ctx);
}

// The record learns what a message's alerts went through (taken, or out whole unanswered).
// Whether they are all posted now; a message in doubt is, the second time (without a record:
// the second time this request sent it).
bool remember(ngx_http_dingtalk_ctx_t *ctx, const std::vector<uint64_t> &alerts, bool taken)
{
    ctx->doubts = taken ? 0 : ctx->doubts + 1;
    if (ctx->owner == 0) {
        return taken || ctx->doubts >= 2;
    }
    const dingtalk::Delivery &d = *ctx->delivery;
    return ngx_http_dingtalk_mark(ctx->zone, d.key(), d.record_keys(), alerts, taken);
}

// A message of several was taken: the next one goes out on its slot, unless the client left
// (nginx finalizes the request; its retry sends the messages not taken).
void next_message(ngx_http_dingtalk_ctx_t *ctx)
{
    if (ctx->r->connection->error) {
        const dingtalk::Report &rep = ctx->delivery->report();
        ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                      "dingtalk: the client closed the connection after %uz of %uz messages were "
                      "taken; its retry sends the rest",
                      rep.taken, rep.messages);
        finish(ctx, abandoned(true));
        return;
    }
    slots_t &s = ctx->slots;
    if (s.reserved_left == 0) {
        schedule(ctx); // no rate limit
        return;
    }
    s.send_id = s.reserved_id++;
    --s.reserved_left;
    post(ctx);
}

void after_fold(ngx_http_dingtalk_ctx_t *ctx);

void after_attempt(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_dingtalk_fault("after_attempt");
    if (ctx->fold_id != 0) {
        after_fold(ctx);
        return;
    }
    dingtalk::Delivery &d = *ctx->delivery;
    const dingtalk::Report &rep = d.report();
    if (rep.errcode) {
        ngx_http_dingtalk_count_answer(ctx->zone, *rep.errcode);
    }
    settle_slot(ctx, rep);
    if (d.in_doubt() && remember(ctx, d.current_alerts(), false)) {
        d.give_up_in_doubt(); // the log line of finish() says why
    }
    if (rep.outcome == dingtalk::Outcome::delivered) {
        remember(ctx, d.taken_alerts(), true);
        if (d.left() > 0) {
            next_message(ctx);
            return;
        }
    }
    if (!ctx->r->connection->error) {
        const auto spent = std::chrono::milliseconds(ngx_current_msec - ctx->first_attempt);
        if (auto delay = dingtalk::retry_delay(rep, spent, ctx->settings->timeout)) {
            const auto ms = static_cast<ngx_msec_t>(delay->count());
            log_retry(ctx, rep, ms);
            ctx->state = State::backoff;
            set_waiting(ctx, true);
            ngx_http_dingtalk_count_retry(ctx->zone);
            ngx_add_timer(&ctx->timer, ms);
            return;
        }
    }
    finish(ctx, answered());
}

// A dingtalk_store call failed: one warn line for the instance when the robots fall back.
void store_failed(ngx_http_dingtalk_ctx_t *ctx, const std::string &why)
{
    const dingtalk::StoreConfig &cfg = ctx->store->store->config();
    if (ngx_http_dingtalk_store_failed(ctx->zone)) {
        ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                      "dingtalk_store \"%s\" failed: %s; the robots fall back to %uD messages "
                      "per %uL ms on this instance, and its records alone keep what was posted, "
                      "until it answers",
                      cfg.shown.c_str(), why.c_str(), cfg.fallback_count, cfg.fallback_window_ms);
    }
}

// A dingtalk_store call worked (warm_ms: the store still warms that long): one warn line for
// the instance when it is back, or was emptied.
void store_answered(ngx_http_dingtalk_ctx_t *ctx, uint64_t warm_ms)
{
    const dingtalk::StoreConfig &cfg = ctx->store->store->config();
    const dingtalk::RateLimit &limit = *ctx->settings->rate;
    ngx_log_t *log = ctx->r->connection->log;
    switch (
        ngx_http_dingtalk_store_answered(ctx->zone, warm_ms, limit.window_ms + limit.guard_ms)) {
    case ngx_http_dingtalk_store_e::back:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk_store \"%s\" answers again; the robots keep their fallback "
                      "window for one more period, as the store does not know what was sent "
                      "meanwhile",
                      cfg.shown.c_str());
        break;
    case ngx_http_dingtalk_store_e::emptied:
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk_store \"%s\" was emptied (restarted?); the robots keep their "
                      "fallback window too until it has seen a whole period",
                      cfg.shown.c_str());
        break;
    case ngx_http_dingtalk_store_e::same:
        break;
    }
}

// What a send's task learned of dingtalk_store, for the whole instance.
void store_learn(ngx_http_dingtalk_ctx_t *ctx, const store_task_t &st)
{
    if (st.res.kind == dingtalk::StoreReservation::failed || st.settle_failed) {
        store_failed(ctx, st.settle_failed ? st.settle_error : st.res.error);
        return;
    }
    const bool warms = st.res.kind == dingtalk::StoreReservation::now ||
                       st.res.kind == dingtalk::StoreReservation::warming;
    store_answered(ctx, warms ? st.res.retry_after_ms : 0);
}

// The store did not clear the send: its slots go back, and it waits for the store's next free
// slot within what is left of "hold", or is scheduled again under the fallback window.
void store_refused(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::StoreReservation &res)
{
    if (ctx->fold_id != 0) {
        ngx_http_dingtalk_room_settle(ctx->zone, ctx->fold_id, {},
                                      ngx_http_dingtalk_sent_e::not_sent);
        ctx->fold_id = 0;
    }
    release_slots(ctx);
    if (ctx->delivery->report().attempts == 0) {
        ctx->first_attempt = 0; // nothing was sent: the delivery's time starts with its send
    }
    if (res.kind != dingtalk::StoreReservation::full &&
        res.kind != dingtalk::StoreReservation::throttled) {
        schedule(ctx); // failed or warming: the fallback window applies now
        return;
    }
    ctx->asked_since = ctx->asked_since ? ctx->asked_since : ctx->received;
    const uint64_t wait = res.under_way ? dingtalk::kRateRecheckMs : res.retry_after_ms;
    if (res.kind == dingtalk::StoreReservation::full && wait <= limit_now(ctx).hold_ms) {
        hold(ctx, wait);
        return;
    }
    no_slot(ctx, {res.kind == dingtalk::StoreReservation::full ? dingtalk::Reservation::rejected
                                                               : dingtalk::Reservation::throttled,
                  0, 0, res.retry_after_ms});
}

// After a send's task: whether it went (after_attempt() follows), else handled here.
bool store_cleared(ngx_http_dingtalk_ctx_t *ctx)
{
    if (ctx->store == nullptr || ctx->store->job != store_job_e::send) {
        return true;
    }
    store_task_t &st = *ctx->store;
    st.job = store_job_e::none;
    st.fold.clear();
    store_learn(ctx, st);
    if (st.cleared) {
        return true;
    }
    store_refused(ctx, st.res);
    return false;
}

void thread_done(ngx_event_t *ev) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(ev->data);
    ngx_http_request_t *r = ctx->r;
    ngx_connection_t *c = r->connection;

    r->main->blocked--;
    r->aio = 0;
    ngx_http_dingtalk_gauge(ctx->zone, ngx_http_dingtalk_gauge_e::tasks_in_flight, -1);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    ctx->state = State::idle;
    ngx_http_dingtalk_watch_idle(static_cast<time_t>(ctx->settings->keepalive.count()));
    try {
        switch (ctx->step) {
        case Step::prepare:
        case Step::claim:
            look_up(ctx);
            break;
        case Step::render:
            go(ctx);
            break;
        case Step::send:
            if (store_cleared(ctx)) {
                after_attempt(ctx);
            }
            break;
        }
    } catch (...) {
        failed(ctx, "the end of an attempt");
    }
    ngx_http_run_posted_requests(c);
}

// ---------------------------------------------------------------------------------------------
// waiting: for a slot, for a retry, for a thread past its deadline

void timer_fired(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_dingtalk_fault("timer");
    switch (ctx->state) {
    case State::running: {
        // The thread ends its attempt by the deadline, so this means the task waits in a full
        // pool, or is still parsing: say which. Finalizing now would free memory the thread
        // may still use: wait for it instead.
        const ngx_uint_t level = ctx->warned_late ? NGX_LOG_INFO : NGX_LOG_WARN;
        ngx_log_error(level, ctx->r->connection->log, 0,
                      "dingtalk: delivery %s %ui ms past its deadline (thread pool \"%V\")",
                      dingtalk::to_string(ctx->delivery->phase()),
                      static_cast<ngx_uint_t>(ngx_current_msec - ctx->deadline),
                      &ctx->lcf->thread_pool_name);
        ctx->warned_late = true;
        ngx_add_timer(&ctx->timer, 1000);
        return;
    }
    case State::holding:
        if (ctx->slots.send_id == 0) {
            schedule(ctx); // waited for sends under way: ask again
        } else {
            post(ctx);
        }
        return;
    case State::backoff:
        schedule(ctx);
        return;
    case State::following:
        if (ctx->elsewhere) { // ask the store again
            ctx->step = Step::claim;
            post(ctx);
        } else {
            look_up(ctx);
        }
        return;
    case State::folding:
        fold_poll(ctx);
        return;
    case State::idle:
    case State::done:
        return;
    }
}

void timer_handler(ngx_event_t *ev) noexcept
{
    // ev->data is the connection (timer debug logging expects one); the event is ctx's first
    // member, so the event's address is the context's.
    auto *ctx = reinterpret_cast<ngx_http_dingtalk_ctx_t *>(ev);
    ngx_connection_t *c = ctx->r->connection;
    try {
        timer_fired(ctx);
    } catch (...) {
        failed(ctx, "a delivery's timer");
    }
    ngx_http_run_posted_requests(c);
}

// No slot (over the limit, cooling down, or no room in the zone): 503, or the last failure of
// a retry.
void no_slot(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res)
{
    if (ctx->delivery->report().attempts > 0) {
        finish(ctx, answered()); // no slot for a retry: the last failure stands
        return;
    }
    const dingtalk::RateLimit &limit = *ctx->settings->rate;
    ngx_log_t *log = ctx->r->connection->log;
    const ngx_uint_t retry_after = seconds_up(res.retry_after_ms);
    if (res.kind == dingtalk::Reservation::throttled) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk: robot is cooling down after DingTalk throttled it (130101); "
                      "answered 503, retry after %uL ms",
                      res.retry_after_ms);
        finish(ctx, refused(NGX_HTTP_SERVICE_UNAVAILABLE,
                            "DingTalk throttled this robot recently (errcode 130101); retry later",
                            dingtalk::Ending::rate_limited, retry_after));
    } else if (res.kind == dingtalk::Reservation::full) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dingtalk: no room for this robot's rate window in the shared zone; "
                      "answered 503 (raise dingtalk_zone_size)");
        finish(ctx, refused(NGX_HTTP_SERVICE_UNAVAILABLE,
                            "busy: no room to track this robot's rate limit, retry later",
                            dingtalk::Ending::zone_full, retry_after));
    } else {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk: robot is over its rate limit of %uD messages per %uL ms; "
                      "answered 503, a slot frees in %uL ms",
                      limit.count, limit.window_ms, res.retry_after_ms);
        finish(ctx, refused(NGX_HTTP_SERVICE_UNAVAILABLE,
                            "over DingTalk's limit of " + std::to_string(limit.count) +
                                " messages per " + std::to_string(limit.window_ms / 1000) +
                                " s for this robot; retry later",
                            dingtalk::Ending::rate_limited, retry_after));
    }
}

// When the delivery must be over: dingtalk_timeout after its first attempt (from now for the
// first one). No attempt is started that could end later, so the rate window can count on it.
uint64_t delivery_end(ngx_http_dingtalk_ctx_t *ctx, uint64_t first_send)
{
    const uint64_t start = ctx->first_attempt ? ctx->first_attempt : first_send;
    return start + static_cast<uint64_t>(ctx->settings->timeout.count());
}

// Holds the webhook on a timer: until its slot's time (send_id set), or to ask again.
void hold(ngx_http_dingtalk_ctx_t *ctx, uint64_t ms)
{
    if (ctx->state != State::holding) {
        ctx->state = State::holding;
        set_waiting(ctx, true);
        ngx_http_dingtalk_count_held(ctx->zone);
    }
    ngx_add_timer(&ctx->timer, static_cast<ngx_msec_t>(ms));
}

// The rate limit, with what is left of "hold" for a webhook that already waited.
dingtalk::RateLimit limit_now(ngx_http_dingtalk_ctx_t *ctx)
{
    dingtalk::RateLimit limit = *ctx->settings->rate;
    ctx->fallback_held = ctx->store != nullptr && ngx_http_dingtalk_store_fallback(ctx->zone);
    if (ctx->fallback_held) { // this instance's share of the robot, while the store cannot say
        const dingtalk::StoreConfig &cfg = ctx->store->store->config();
        limit.count = cfg.fallback_count;
        limit.window_ms = cfg.fallback_window_ms;
        limit.guard_ms = std::min<uint64_t>(limit.guard_ms, limit.window_ms / 60);
    }
    if (ctx->asked_since != 0) {
        const uint64_t waited = ngx_current_msec - ctx->asked_since;
        limit.hold_ms = limit.hold_ms > waited ? limit.hold_ms - waited : 0;
    }
    return limit;
}

// Reserves a send slot, then sends now, later (holding), or not at all.
// Reserves send slots (all the messages' when cleared to go), then sends now, later (holding),
// or not at all.
void reserve_and_send(ngx_http_dingtalk_ctx_t *ctx)
{
    const uint64_t now = ngx_current_msec;
    // the send may end as late as the delivery (the window learns the real end when it comes);
    // several messages need all their slots
    const uint32_t n = ctx->reserve_all ? static_cast<uint32_t>(ctx->delivery->left()) : 1;
    const uint64_t attempt_ms = delivery_end(ctx, now) - now;
    const dingtalk::Reservation res =
        n > 1 ? ngx_http_dingtalk_reserve_all(ctx->zone, ctx->robot->key, limit_now(ctx),
                                              attempt_ms, n)
              : ngx_http_dingtalk_reserve(ctx->zone, ctx->robot->key, limit_now(ctx), attempt_ms);
    if (res.kind == dingtalk::Reservation::wait) {
        ctx->asked_since = ctx->asked_since ? ctx->asked_since : (now ? now : 1);
        hold(ctx, res.retry_after_ms);
        return;
    }
    if (res.kind != dingtalk::Reservation::now && res.kind != dingtalk::Reservation::later) {
        no_slot(ctx, res);
        return;
    }
    ctx->asked_since = 0;
    ctx->slots.send_id = res.id;
    ctx->reserve_all = false;
    if (n > 1) { // the slots of the messages after this one (a retry's slot is one more)
        ctx->slots.reserved_id = res.id + 1;
        ctx->slots.reserved_left = n - 1;
    }
    ctx->deadline = delivery_end(ctx, res.at_ms);
    if (ctx->first_attempt != 0 && res.at_ms + dingtalk::kShortestAttempt.count() > ctx->deadline) {
        finish(ctx, answered()); // a retry that would start too late to finish in time
        return;
    }
    if (res.kind == dingtalk::Reservation::now) {
        post(ctx);
    } else {
        hold(ctx, res.at_ms - now);
    }
}

// ---------------------------------------------------------------------------------------------
// folding: notifications that wait for the robot's next slot go out together

void send_fold(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res);

// A slot now; or whether one frees within what is left of "hold" (a slot later is not kept:
// whichever request of the robot finds the next one free sends what waits in the room).
dingtalk::Reservation slot_now(ngx_http_dingtalk_ctx_t *ctx)
{
    const uint64_t now = ngx_current_msec;
    dingtalk::Reservation res = ngx_http_dingtalk_reserve(
        ctx->zone, ctx->robot->key, limit_now(ctx), delivery_end(ctx, now) - now);
    if (res.kind == dingtalk::Reservation::later) {
        ngx_http_dingtalk_release(ctx->zone, ctx->robot->key, res.id);
        res.kind = dingtalk::Reservation::wait;
    }
    return res;
}

// Waits in the robot's room, or a 503 when no slot frees within "hold" (the notification stays
// in the room: the next message of the robot may still carry it).
void wait_or_refuse(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res)
{
    if (res.kind != dingtalk::Reservation::wait) {
        no_slot(ctx, res);
        return;
    }
    if (ctx->state != State::folding) {
        ctx->state = State::folding;
        set_waiting(ctx, true);
        ngx_http_dingtalk_count_held(ctx->zone);
    }
    ngx_add_timer(&ctx->timer, kFoldPollMs);
}

// Puts the notification in the robot's room, unless a slot is free now and nothing else waits
// (then it goes as its own message, as without folding).
void enter_room(ngx_http_dingtalk_ctx_t *ctx)
{
    dingtalk::Delivery &d = *ctx->delivery;
    ctx->asked_since = ctx->asked_since ? ctx->asked_since : ctx->received;
    bool others = false;
    const ngx_http_dingtalk_room_e before =
        ngx_http_dingtalk_room_state(ctx->zone, d.key(), &others, ctx->robot->key, ctx->group);
    const dingtalk::Reservation res = slot_now(ctx);
    // an earlier request of it left it in the room: it goes from there, never beside it
    if (before == ngx_http_dingtalk_room_e::none && !others &&
        res.kind == dingtalk::Reservation::now) {
        ctx->slots.send_id = res.id;
        ctx->reserve_all = false;
        ctx->asked_since = 0;
        ctx->deadline = delivery_end(ctx, res.at_ms);
        post(ctx);
        return;
    }
    const ngx_http_dingtalk_waiting_t w{ctx->robot->key, ctx->group,    d.key(),
                                        ctx->owner,      &*d.section(), &d.current_alerts()};
    if (ngx_http_dingtalk_room_enter(ctx->zone, w) == ngx_http_dingtalk_room_e::none) {
        if (res.kind == dingtalk::Reservation::now) {
            ngx_http_dingtalk_release(ctx->zone, ctx->robot->key, res.id);
        }
        reserve_and_send(ctx); // no room in the zone to wait in: its own slot, as without it
        return;
    }
    ctx->in_room = true;
    if (res.kind == dingtalk::Reservation::now) {
        if (before == ngx_http_dingtalk_room_e::none ||
            before == ngx_http_dingtalk_room_e::waiting) {
            send_fold(ctx, res); // others wait with it: they go together
            return;
        }
        ngx_http_dingtalk_release(ctx->zone, ctx->robot->key, res.id);
        fold_poll(ctx); // carried by a message under way, or posted: fold_poll says which
        return;
    }
    ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                  "dingtalk: no slot free for the robot now: the notification waits to go with "
                  "the others in its next message");
    wait_or_refuse(ctx, res);
}

// The notifications a send took from the room go as one message: this one's own when it took
// only itself (as without folding), else the fold of those that fit (false: none did).
bool fold_message(ngx_http_dingtalk_ctx_t *ctx, std::vector<ngx_http_dingtalk_folded_t> &taken)
{
    dingtalk::Delivery &d = *ctx->delivery;
    ctx->folded->clear();
    if (taken.size() == 1 && taken[0].key == d.key()) {
        ctx->folded->push_back(d.key());
        return true;
    }
    std::vector<dingtalk::Section> sections;
    sections.reserve(taken.size());
    for (ngx_http_dingtalk_folded_t &f : taken) {
        sections.push_back(std::move(f.section));
    }
    dingtalk::RenderOptions opt; // bounded: one message, composed of texts rendered before
    opt.settings = ctx->settings;
    std::size_t k = 0;
    dingtalk::Message m = dingtalk::render_fold(sections, opt, k);
    for (std::size_t i = 0; i < k; ++i) {
        ctx->folded->push_back(taken[i].key);
    }
    if (k > 0) {
        d.send_fold(std::move(m.request_body));
    }
    return k > 0;
}

// A slot is free now: this request sends what waits in the room for it.
void send_fold(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res)
{
    const uint64_t lease = res.at_ms + static_cast<uint64_t>(ctx->settings->timeout.count()) +
                           static_cast<uint64_t>(ctx->settings->answer_timeout.count()) +
                           kDeadlineSlack;
    std::vector<ngx_http_dingtalk_folded_t> taken =
        ngx_http_dingtalk_room_take(ctx->zone, ctx->robot->key, ctx->group, res.id, lease);
    ctx->slots.send_id = res.id;
    if (!fold_message(ctx, taken)) { // not even one fits as a fold: each goes on its own later
        ngx_http_dingtalk_room_settle(ctx->zone, res.id, {}, ngx_http_dingtalk_sent_e::not_sent);
        release_slots(ctx);
        ngx_add_timer(&ctx->timer, kFoldPollMs);
        return;
    }
    ctx->fold_id = res.id;
    ctx->reserve_all = false;
    if (ctx->store != nullptr) { // the records the message carries, for the store's settle
        ctx->store->fold.clear();
        for (std::size_t i = 0; i < ctx->folded->size(); ++i) {
            ctx->store->fold.push_back({taken[i].key, std::move(taken[i].covers)});
        }
    }
    ctx->deadline = delivery_end(ctx, res.at_ms);
    if (ctx->folded->size() > 1) {
        ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                      "dingtalk: one message for %uz notifications waiting for the robot",
                      ctx->folded->size());
    }
    post(ctx);
}

// What became of the notification in the room: posted by a message of any request, waiting
// (a free slot: send what waits), or carried by a message under way.
void fold_poll(ngx_http_dingtalk_ctx_t *ctx)
{
    dingtalk::Delivery &d = *ctx->delivery;
    switch (ngx_http_dingtalk_room_state(ctx->zone, d.key(), nullptr, nullptr, 0)) {
    case ngx_http_dingtalk_room_e::posted:
        if (d.left() > 0) { // another request's message carried it
            d.posted_in_fold();
        }
        finish(ctx, answered());
        return;
    case ngx_http_dingtalk_room_e::none: // forgotten (a zone of another size): its own slot
        ctx->in_room = false;
        reserve_and_send(ctx);
        return;
    case ngx_http_dingtalk_room_e::sending:
        wait_or_refuse(ctx, dingtalk::Reservation{dingtalk::Reservation::wait, 0, 0, 0});
        return;
    case ngx_http_dingtalk_room_e::waiting:
        break;
    }
    const dingtalk::Reservation res = slot_now(ctx);
    if (res.kind == dingtalk::Reservation::now) {
        send_fold(ctx, res);
    } else {
        wait_or_refuse(ctx, res);
    }
}

// A send from the room ended: every notification it carried learns what DingTalk did.
void after_fold(ngx_http_dingtalk_ctx_t *ctx)
{
    const dingtalk::Report &rep = ctx->delivery->report();
    if (rep.errcode) {
        ngx_http_dingtalk_count_answer(ctx->zone, *rep.errcode);
    }
    settle_slot(ctx, rep);
    const ngx_http_dingtalk_sent_e sent =
        rep.outcome == dingtalk::Outcome::delivered  ? ngx_http_dingtalk_sent_e::taken
        : rep.outcome == dingtalk::Outcome::doubtful ? ngx_http_dingtalk_sent_e::in_doubt
                                                     : ngx_http_dingtalk_sent_e::not_sent;
    ngx_http_dingtalk_room_settle(ctx->zone, ctx->fold_id, *ctx->folded, sent);
    ctx->fold_id = 0;
    if (sent == ngx_http_dingtalk_sent_e::not_sent) {
        log_retry(ctx, rep, kFoldPollMs);
    }
    fold_poll(ctx);
}

// Reserves what the delivery needs, or waits in the robot's room to be folded.
void schedule(ngx_http_dingtalk_ctx_t *ctx)
{
    if (!ctx->rate_limited) {
        ctx->deadline = delivery_end(ctx, ngx_current_msec);
        post(ctx);
        return;
    }
    const dingtalk::Delivery &d = *ctx->delivery;
    if (ctx->folded != nullptr && d.section() && d.left() == 1) {
        ctx->in_room ? fold_poll(ctx) : enter_room(ctx);
        return;
    }
    reserve_and_send(ctx);
}

// ---------------------------------------------------------------------------------------------
// the request around the delivery

// The request pool is freed: a timer still armed (a request nginx terminated while it waited)
// must not fire into freed memory, and slots it held go back.
void cleanup(void *data) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(data);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    if (ctx->state != State::running) {
        release_slots(ctx);
        release_record(ctx, false);
    }
    set_waiting(ctx, false);
}

// r->read_event_handler once the body is read: notices a client that went away. A request
// waiting on a timer stops (its slots go back); a running one stops after this attempt.
void check_broken(ngx_http_request_t *r) noexcept
{
    ngx_http_test_reading(r);
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
        ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
    if (!r->connection->error || ctx == nullptr ||
        (ctx->state != State::holding && ctx->state != State::backoff &&
         ctx->state != State::following && ctx->state != State::folding)) {
        return;
    }
    try {
        ngx_http_dingtalk_fault("check_broken");
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "dingtalk: the client closed the connection while the delivery waited%s",
                      ctx->state == State::holding || ctx->state == State::folding
                          ? " for a rate-limit slot; nothing sent"
                      : ctx->state == State::following ? " for another request of the same "
                                                         "notification"
                                                       : " to retry; no more attempts");
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "dingtalk: %s failed: %s",
                      "noticing a client that left",
                      ngx_http_dingtalk_what(std::current_exception()));
    }
    finish(ctx, abandoned(false)); // nginx finalizes the request itself
}

// This nginx instance, as dingtalk_store's records name their owner: the host and the master
// process, which a reload keeps (a worker's parent; the process itself without a master).
const std::string &instance_name()
{
    static const std::string name = [] {
        char host[256] = {};
        gethostname(host, sizeof(host) - 1);
        const ngx_pid_t master = ngx_process == NGX_PROCESS_WORKER ? ngx_parent : ngx_pid;
        return std::string(host) + ":" + std::to_string(master);
    }();
    return name;
}

// The task, the timer and the cleanup that ties them to the request's pool.
bool prepare_task(ngx_http_dingtalk_ctx_t *ctx, dingtalk::Target target, std::string body)
{
    ngx_http_request_t *r = ctx->r;
    // the delivery first: cleanups run last first, and ours reads the delivery
    ctx->delivery =
        ngx_http_dingtalk_pool_new<dingtalk::Delivery>(r->pool, std::move(target), std::move(body));
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, 0);
    ctx->task = ngx_thread_task_alloc(r->pool, sizeof(task_data_t));
    if (cln == nullptr || ctx->delivery == nullptr || ctx->task == nullptr) {
        return false;
    }
    cln->handler = cleanup;
    cln->data = ctx;

    static_cast<task_data_t *>(ctx->task->ctx)->delivery = ctx->delivery;
    static_cast<task_data_t *>(ctx->task->ctx)->store = nullptr; // deliver() sets it
    ctx->task->handler = thread_handler;
    ctx->task->event.handler = thread_done;
    ctx->task->event.data = ctx;

    ctx->timer.handler = timer_handler;
    ctx->timer.data = r->connection; // timer debug logging reads data as a connection
    ctx->timer.log = r->connection->log;
    return true;
}

} // namespace

bool ngx_http_dingtalk_deliver(ngx_http_request_t *r, ngx_http_dingtalk_robot_t *robot,
                               dingtalk::Target target, std::string body)
{
    static_assert(offsetof(ngx_http_dingtalk_ctx_t, timer) == 0, "timer first");
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
        ngx_pcalloc(r->pool, sizeof(ngx_http_dingtalk_ctx_t)));
    if (ctx == nullptr) {
        return false;
    }
    auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
    ctx->r = r;
    ctx->lcf = lcf;
    ctx->settings = target.settings.get();
    ctx->robot = robot;
    ctx->state = State::idle;
    ctx->step = Step::prepare;
    if (!prepare_task(ctx, std::move(target), std::move(body))) {
        return false;
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
    ctx->zone = mcf->zone;
    ctx->rate_limited = ctx->settings->rate.has_value();
    if (ctx->rate_limited && ctx->settings->store != nullptr) {
        ctx->store = ngx_http_dingtalk_pool_new<store_task_t>(r->pool);
        if (ctx->store == nullptr) {
            return false;
        }
        ctx->store->store = ctx->settings->store.get();
        ctx->store->robot = robot->key;
        ctx->store->owner = instance_name();
        static_cast<task_data_t *>(ctx->task->ctx)->store = ctx->store;
    }
    if (ctx->settings->fold && ctx->rate_limited) {
        // sections of one location of one configuration (forked workers share its address)
        ctx->group = reinterpret_cast<uintptr_t>(ctx->settings) ^
                     (reinterpret_cast<uintptr_t>(ngx_cycle) << 1);
        ctx->folded = ngx_http_dingtalk_pool_new<std::vector<uint64_t>>(r->pool);
        if (ctx->folded == nullptr) {
            return false;
        }
    }
    ctx->received = ngx_current_msec;
    ngx_http_set_ctx(r, ctx, ngx_http_dingtalk_module);
    r->write_event_handler = resume;
    r->read_event_handler = check_broken;
    try {
        post(ctx);
    } catch (...) {
        failed(ctx, "starting a delivery");
    }
    return true;
}
