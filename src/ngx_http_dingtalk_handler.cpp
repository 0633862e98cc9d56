// The request flow, all in the worker's event loop except Delivery::run():
//
//   POST -> too large? 413 -> read body -> body_handler: evaluate token/secret, build the Delivery
//        -> schedule: reserve a send slot in the robot's shared window, with a hard deadline
//             now:      post the task (parse, render, sign, send; nothing sent past the deadline)
//             later:    wait on a timer (at most "hold"), then post
//             rejected: 503 + Retry-After (or, when retrying, the last failure)
//        -> thread_done: the slot keeps the time the send really ended, or is given back when
//             nothing left; delivered -> 200; bad body -> 400; 130101 -> mark the robot
//             throttled, 503; transient failure with time left -> backoff timer -> schedule
//             again; anything else -> 5xx
//
// One timer per request serves three purposes: a deadline while a task runs (so a worker that
// is shutting down waits for it), the hold before a send, and the backoff before a retry.
// Threads never sleep and never touch nginx; everything that waits, waits on a timer. A client
// that goes away is noticed while the request waits (ngx_http_test_reading, as the upstream
// module does): a waiting request stops and gives its slot back. Every event handler of ours
// runs the connection's posted requests before it returns, as nginx's own handlers do.

#include "ngx_http_dingtalk.hpp"

#include "delivery.hpp"
#include "sign.hpp"

#include <chrono>
#include <string>

namespace
{

// The thread may run a little past its deadline (closing, DNS); the timer only has to keep
// the worker alive until the completion event arrives.
const ngx_msec_t kDeadlineSlack = 5000;

enum class State { idle, holding, running, backoff, done };

struct ngx_http_dingtalk_ctx_t {
    ngx_event_t timer;
    ngx_http_request_t *r;
    ngx_http_dingtalk_loc_conf_t *lcf;
    dingtalk::Delivery *delivery;
    ngx_thread_task_t *task;
    ngx_shm_zone_t *zone;  // null: rate limiting off
    ngx_shm_zone_t *stats; // metrics (the same zone, always there)
    u_char robot[kRobotKeySize];
    std::string *robot_name;  // dingtalk_robot_name, or a hash of the token
    bool static_name;         // named in the configuration, without variables
    ngx_msec_t received;      // body read
    ngx_msec_t first_attempt; // first task posted; the delivery timeout counts from here
    uint64_t send_id;         // the rate slot of the attempt planned or in flight; 0: none
    uint64_t reserved_id;     // several messages: the slots of those after it, from this id
    uint32_t reserved_left;   // ... this many
    bool reserve_all;         // several messages, cleared to go: the next reservation is theirs
    uint64_t deadline;        // when the delivery must be over: no send starts that could end
                              // later (monotonic ms)
    ngx_msec_t asked_since;   // waiting for sends under way to end, since; 0: not waiting
    bool counted_waiting;     // in dingtalk_requests_waiting
    bool warned_late;         // the deadline passed and was logged once
    State state;
};

// ---------------------------------------------------------------------------------------------
// replies

// Sends a whole small response: status, Content-Type, optional extra header, body.
ngx_int_t send_body(ngx_http_request_t *r, ngx_uint_t status, const ngx_str_t &type,
                    const std::string &body, const ngx_str_t *header = nullptr,
                    const ngx_str_t *value = nullptr)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    r->headers_out.content_type = type;
    r->headers_out.content_type_len = type.len;
    r->headers_out.content_type_lowcase = nullptr;

    if (header != nullptr) {
        auto *h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
        if (h == nullptr) {
            return NGX_ERROR;
        }
        h->hash = 1;
#if (nginx_version >= 1023000)
        h->next = nullptr;
#endif
        h->key = *header;
        h->value = *value;
    }

    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    ngx_buf_t *b = ngx_create_temp_buf(r->pool, body.size());
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->last = ngx_cpymem(b->last, body.data(), body.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_chain_t out;
    out.buf = b;
    out.next = nullptr;
    return ngx_http_output_filter(r, &out);
}

const ngx_str_t kJson = ngx_string("application/json");

ngx_int_t send_json(ngx_http_request_t *r, ngx_uint_t status, const std::string &body,
                    const ngx_str_t *header = nullptr, const ngx_str_t *value = nullptr)
{
    return send_body(r, status, kJson, body, header, value);
}

// With Retry-After when retry_after is more than 0 (seconds).
ngx_int_t send_json_retry(ngx_http_request_t *r, ngx_uint_t status, const std::string &body,
                          ngx_uint_t retry_after)
{
    static const ngx_str_t retry_header = ngx_string("Retry-After");
    if (retry_after == 0) {
        return send_json(r, status, body);
    }
    ngx_str_t value;
    value.data = static_cast<u_char *>(ngx_pnalloc(r->pool, NGX_INT_T_LEN));
    if (value.data == nullptr) {
        return NGX_ERROR;
    }
    value.len = ngx_sprintf(value.data, "%ui", retry_after) - value.data;
    return send_json(r, status, body, &retry_header, &value);
}

ngx_http_dingtalk_main_conf_t *main_conf(ngx_http_request_t *r)
{
    return static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
}

// An answer the glue gives on its own, before or instead of a delivery; counted in metrics.
void finish(ngx_http_request_t *r, ngx_uint_t status, const std::string &reason,
            dingtalk::Ending ending, ngx_uint_t retry_after = 0)
{
    ngx_http_dingtalk_main_conf_t *mcf = main_conf(r);
    if (mcf->zone != nullptr) {
        ngx_http_dingtalk_count_ending(mcf->zone, ending);
    }
    ngx_http_finalize_request(
        r, send_json_retry(r, status, dingtalk::reply_json(status < 300, reason), retry_after));
}

dingtalk::Ending ending_of(dingtalk::Outcome o)
{
    switch (o) {
    case dingtalk::Outcome::delivered:
        return dingtalk::Ending::delivered;
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
        return dingtalk::Ending::timeout;
    case dingtalk::Outcome::late:
        return dingtalk::Ending::queue_full;
    case dingtalk::Outcome::internal:
        break;
    }
    return dingtalk::Ending::internal;
}

// Waiting on a timer (hold or backoff) shows in dingtalk_requests_waiting.
void set_waiting(ngx_http_dingtalk_ctx_t *ctx, bool waiting)
{
    if (ctx->counted_waiting != waiting) {
        ngx_http_dingtalk_gauge(ctx->stats, ngx_http_dingtalk_gauge_e::waiting, waiting ? 1 : -1);
        ctx->counted_waiting = waiting;
    }
}

ngx_uint_t seconds_up(uint64_t ms)
{
    return static_cast<ngx_uint_t>((ms + 999) / 1000);
}

// Slots reserved but not (or no longer) used go back to the window.
void give_back_slot(ngx_http_dingtalk_ctx_t *ctx)
{
    if (ctx->zone != nullptr) {
        if (ctx->send_id != 0) {
            ngx_http_dingtalk_release(ctx->zone, ctx->robot, ctx->send_id);
        }
        for (uint32_t i = 0; i < ctx->reserved_left; ++i) {
            ngx_http_dingtalk_release(ctx->zone, ctx->robot, ctx->reserved_id + i);
        }
    }
    ctx->send_id = 0;
    ctx->reserved_left = 0;
}

// ---------------------------------------------------------------------------------------------
// the way back

void log_outcome(ngx_http_request_t *r, const std::string &robot,
                 const dingtalk::Report &rep) noexcept
{
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    const ngx_uint_t level = rep.outcome == dingtalk::Outcome::delivered     ? NGX_LOG_INFO
                             : rep.outcome == dingtalk::Outcome::bad_request ? NGX_LOG_WARN
                                                                             : NGX_LOG_ERR;
    try {
        const std::string line = rep.summary(); // the core already removed token and secret
        ngx_log_error(level, r->connection->log, 0, "dingtalk \"%V\" robot %*s: %*s", &clcf->name,
                      robot.size(), robot.data(), line.size(), line.data());
    } catch (...) {
        ngx_log_error(level, r->connection->log, 0, "dingtalk \"%V\": status %i", &clcf->name,
                      static_cast<ngx_int_t>(rep.http_status));
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
        const ngx_uint_t retry_after = rep.outcome == dingtalk::Outcome::throttled
                                           ? seconds_up(ctx->lcf->rate.cooldown_ms)
                                       : rep.http_status == NGX_HTTP_SERVICE_UNAVAILABLE ? 5
                                                                                         : 0;
        ngx_http_finalize_request(r, send_json_retry(r, static_cast<ngx_uint_t>(rep.http_status),
                                                     rep.reply_json(ctx->lcf->verbose_replies != 0),
                                                     retry_after));
    } catch (...) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

// The delivery is over: log it, and answer through r->write_event_handler, which is resume()
// or, when nginx terminated the request meanwhile, nginx's own finalizer.
void conclude(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_request_t *r = ctx->r;
    give_back_slot(ctx);         // those of messages that will not be sent now
    ctx->delivery->stop_short(); // which then makes it a 503, however many were taken
    ctx->state = State::done;
    set_waiting(ctx, false);
    const ngx_msec_t took = ngx_current_msec - ctx->received;
    ctx->delivery->set_elapsed(std::chrono::milliseconds(took));
    const dingtalk::Report &rep = ctx->delivery->report();
    ngx_http_dingtalk_count_delivery(ctx->stats, ctx->robot, *ctx->robot_name, ctx->static_name,
                                     rep, ending_of(rep.outcome), took);
    log_outcome(r, *ctx->robot_name, rep);
    r->write_event_handler(r);
}

// What a task carries into the thread: written before the post, read by the thread only.
struct task_data_t {
    dingtalk::Delivery *delivery;
    uint64_t deadline; // monotonic ms: no send starts that could end after it
};

void thread_handler(void *data, ngx_log_t *) noexcept
{
    // Only the Delivery's own memory is touched here: no pools, no logs, no request.
    auto *td = static_cast<task_data_t *>(data);
    td->delivery->run(td->deadline);
}

void schedule(ngx_http_dingtalk_ctx_t *ctx);

// The thread pool's queue is full: the slot goes back, and the webhook gets a 503.
void queue_full(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_log_error(NGX_LOG_ERR, ctx->r->connection->log, 0,
                  "dingtalk: thread pool \"%V\" queue is full; raise max_queue (or threads) in its "
                  "\"thread_pool\" directive",
                  &ctx->lcf->thread_pool_name);
    give_back_slot(ctx);
    if (ctx->delivery->report().attempts > 0) {
        conclude(ctx); // a retry (or a next message) that cannot run: the last report stands
        return;
    }
    ctx->state = State::done;
    set_waiting(ctx, false);
    finish(ctx->r, NGX_HTTP_SERVICE_UNAVAILABLE, "busy: the delivery queue is full, retry later",
           dingtalk::Ending::queue_full, 5);
}

void post(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_request_t *r = ctx->r;
    if (ctx->first_attempt == 0) {
        ctx->first_attempt = ngx_current_msec ? ngx_current_msec : 1;
    }
    static_cast<task_data_t *>(ctx->task->ctx)->deadline = ctx->deadline;
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
    ngx_http_dingtalk_gauge(ctx->stats, ngx_http_dingtalk_gauge_e::tasks_in_flight, 1);
    const uint64_t now = ngx_current_msec;
    ngx_add_timer(&ctx->timer, (ctx->deadline > now ? ctx->deadline - now : 0) + kDeadlineSlack);
}

// The window learns what the attempt did: when it ended, or that nothing left at all (an
// attempt that never connected never arrived, and costs no slot).
void settle_slot(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Report &rep)
{
    if (ctx->zone == nullptr || ctx->send_id == 0) {
        return;
    }
    if (rep.outcome == dingtalk::Outcome::bad_request) {
        give_back_slot(ctx); // nothing was sent, and the robot may be forgotten again
        return;
    }
    ngx_http_dingtalk_settle(ctx->zone, ctx->robot, ctx->send_id, rep.sent, rep.ended_ms);
    ctx->send_id = 0;
    if (rep.outcome == dingtalk::Outcome::throttled) {
        ngx_http_dingtalk_throttle(ctx->zone, ctx->robot, ctx->lcf->rate);
    }
}

// A failed attempt that will be tried again: one line at info, so that every errcode DingTalk
// gave is in the log, not only the last.
void log_retry(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Report &rep, ngx_msec_t delay)
{
    try {
        const std::string line = rep.summary();
        ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                      "dingtalk robot %*s: trying again in %M ms after %*s",
                      ctx->robot_name->size(), ctx->robot_name->data(), delay, line.size(),
                      line.data());
    } catch (...) {
    }
}

// Between two steps of a delivery of several messages: a client that went away stops it there
// (nginx finalizes the request); its retry sends the messages not taken.
bool client_gone(ngx_http_dingtalk_ctx_t *ctx)
{
    if (!ctx->r->connection->error) {
        return false;
    }
    const dingtalk::Report &rep = ctx->delivery->report();
    ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                  "dingtalk: the client closed the connection after %uz of %uz messages were "
                  "taken; its retry sends the rest",
                  rep.taken, rep.messages);
    give_back_slot(ctx);
    ctx->state = State::done;
    set_waiting(ctx, false);
    ngx_http_dingtalk_count_ending(ctx->stats, dingtalk::Ending::client_closed);
    ctx->r->write_event_handler(ctx->r);
    return true;
}

// The notification is several messages and the first run only rendered them: a retry of one
// that went out in part resumes after the messages taken; then the slots of all the others, or
// none (schedule).
void plan_messages(ngx_http_dingtalk_ctx_t *ctx)
{
    give_back_slot(ctx); // the run sent nothing
    if (client_gone(ctx)) {
        return;
    }
    dingtalk::Delivery &d = *ctx->delivery;
    const auto total = static_cast<uint32_t>(d.left());
    const uint32_t taken =
        ngx_http_dingtalk_taken_before(ctx->stats, ctx->robot, d.digest(), total);
    if (taken > 0) {
        ngx_log_error(NGX_LOG_INFO, ctx->r->connection->log, 0,
                      "dingtalk: an earlier request got %uD of this notification's %uD messages "
                      "taken: sending the rest",
                      taken, total);
    }
    d.send_from(taken);
    ctx->reserve_all = true;
    ctx->first_attempt = 0; // the delivery's time counts from its first send
    // the wait for their slots is what is left of "hold" since the webhook came
    ctx->asked_since = ctx->received ? ctx->received : 1;
    schedule(ctx);
}

// A message of several was taken: the next one goes out on its slot, unless the client left.
void next_message(ngx_http_dingtalk_ctx_t *ctx)
{
    if (client_gone(ctx)) {
        return;
    }
    if (ctx->reserved_left == 0) {
        schedule(ctx); // no rate limit
        return;
    }
    ctx->send_id = ctx->reserved_id++;
    --ctx->reserved_left;
    post(ctx);
}

void after_attempt(ngx_http_dingtalk_ctx_t *ctx)
{
    const dingtalk::Report &rep = ctx->delivery->report();
    if (ctx->delivery->needs_go_ahead()) {
        plan_messages(ctx);
        return;
    }
    if (rep.errcode) {
        ngx_http_dingtalk_count_answer(ctx->stats, *rep.errcode);
    }
    settle_slot(ctx, rep);
    if (rep.messages > 1 && rep.outcome == dingtalk::Outcome::delivered) {
        ngx_http_dingtalk_remember_taken(ctx->stats, ctx->robot, ctx->delivery->digest(),
                                         static_cast<uint32_t>(rep.taken),
                                         static_cast<uint32_t>(rep.messages));
        if (ctx->delivery->left() > 0) {
            next_message(ctx);
            return;
        }
    }
    if (!ctx->r->connection->error) {
        const auto spent = std::chrono::milliseconds(ngx_current_msec - ctx->first_attempt);
        if (auto delay =
                dingtalk::retry_delay(rep, spent, std::chrono::milliseconds(ctx->lcf->timeout))) {
            const auto ms = static_cast<ngx_msec_t>(delay->count());
            log_retry(ctx, rep, ms);
            ctx->state = State::backoff;
            set_waiting(ctx, true);
            ngx_http_dingtalk_count_retry(ctx->stats);
            ngx_add_timer(&ctx->timer, ms);
            return;
        }
    }
    conclude(ctx);
}

void thread_done(ngx_event_t *ev) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(ev->data);
    ngx_http_request_t *r = ctx->r;
    ngx_connection_t *c = r->connection;

    r->main->blocked--;
    r->aio = 0;
    ngx_http_dingtalk_gauge(ctx->stats, ngx_http_dingtalk_gauge_e::tasks_in_flight, -1);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    ngx_http_dingtalk_watch_idle(ctx->lcf->keepalive_timeout);
    after_attempt(ctx);
    ngx_http_run_posted_requests(c);
}

void timer_fired(ngx_http_dingtalk_ctx_t *ctx)
{
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
        if (ctx->send_id == 0) {
            schedule(ctx); // waited for sends under way: ask again
        } else {
            post(ctx);
        }
        return;
    case State::backoff:
        schedule(ctx);
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
    timer_fired(ctx);
    ngx_http_run_posted_requests(c);
}

// No slot (over the limit, cooling down, or no room in the zone): 503, or the last failure of
// a retry.
void refuse(ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Reservation &res)
{
    if (ctx->delivery->report().attempts > 0) {
        conclude(ctx); // no slot for a retry: the last failure stands
        return;
    }
    const dingtalk::RateLimit &limit = ctx->lcf->rate;
    ctx->asked_since = 0;
    ngx_log_t *log = ctx->r->connection->log;
    std::string reason;
    dingtalk::Ending ending = dingtalk::Ending::rate_limited;
    if (res.kind == dingtalk::Reservation::throttled) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk: robot is cooling down after DingTalk throttled it (130101); "
                      "answered 503, retry after %uL ms",
                      res.retry_after_ms);
        reason = "DingTalk throttled this robot recently (errcode 130101); retry later";
    } else if (res.kind == dingtalk::Reservation::full) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dingtalk: no room for this robot's rate window in the shared zone; "
                      "answered 503 (raise dingtalk_zone_size)");
        reason = "busy: no room to track this robot's rate limit, retry later";
        ending = dingtalk::Ending::zone_full;
    } else {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "dingtalk: robot is over its rate limit of %uD messages per %uL ms; "
                      "answered 503, a slot frees in %uL ms",
                      limit.count, limit.window_ms, res.retry_after_ms);
        reason = "over DingTalk's limit of " + std::to_string(limit.count) + " messages per " +
                 std::to_string(limit.window_ms / 1000) + " s for this robot; retry later";
    }
    ctx->state = State::done;
    set_waiting(ctx, false);
    finish(ctx->r, NGX_HTTP_SERVICE_UNAVAILABLE, reason, ending, seconds_up(res.retry_after_ms));
}

// When the delivery must be over: dingtalk_timeout after its first attempt (from now for the
// first one). No attempt is started that could end later, so the rate window can count on it.
uint64_t delivery_end(ngx_http_dingtalk_ctx_t *ctx, uint64_t first_send)
{
    const uint64_t start = ctx->first_attempt ? ctx->first_attempt : first_send;
    return start + static_cast<uint64_t>(ctx->lcf->timeout);
}

// Holds the webhook on a timer: until its slot's time (send_id set), or to ask again.
void hold(ngx_http_dingtalk_ctx_t *ctx, uint64_t ms)
{
    if (ctx->state != State::holding) {
        ctx->state = State::holding;
        set_waiting(ctx, true);
        ngx_http_dingtalk_count_held(ctx->stats);
    }
    ngx_add_timer(&ctx->timer, static_cast<ngx_msec_t>(ms));
}

// The rate limit, with what is left of "hold" for a webhook that already waited.
dingtalk::RateLimit limit_now(ngx_http_dingtalk_ctx_t *ctx)
{
    dingtalk::RateLimit limit = ctx->lcf->rate;
    if (ctx->asked_since != 0) {
        const uint64_t waited = ngx_current_msec - ctx->asked_since;
        limit.hold_ms = limit.hold_ms > waited ? limit.hold_ms - waited : 0;
    }
    return limit;
}

// Reserves a send slot, then sends now, later (holding), or not at all.
void schedule(ngx_http_dingtalk_ctx_t *ctx)
{
    const uint64_t now = ngx_current_msec;
    if (ctx->zone == nullptr) {
        ctx->deadline = delivery_end(ctx, now);
        post(ctx);
        return;
    }
    // the send may end as late as the delivery (the window learns the real end when it comes);
    // several messages need all their slots
    const uint32_t n = ctx->reserve_all ? static_cast<uint32_t>(ctx->delivery->left()) : 1;
    const dingtalk::Reservation res =
        n > 1 ? ngx_http_dingtalk_reserve_all(ctx->zone, ctx->robot, limit_now(ctx),
                                              delivery_end(ctx, now) - now, n)
              : ngx_http_dingtalk_reserve(ctx->zone, ctx->robot, limit_now(ctx),
                                          delivery_end(ctx, now) - now);
    if (res.kind == dingtalk::Reservation::wait) {
        ctx->asked_since = ctx->asked_since ? ctx->asked_since : (now ? now : 1);
        hold(ctx, res.retry_after_ms);
        return;
    }
    if (res.kind != dingtalk::Reservation::now && res.kind != dingtalk::Reservation::later) {
        refuse(ctx, res);
        return;
    }
    ctx->asked_since = 0;
    ctx->send_id = res.id;
    ctx->reserve_all = false;
    if (n > 1) { // the slots of the messages after this one (a retry's slot is one more)
        ctx->reserved_id = res.id + 1;
        ctx->reserved_left = n - 1;
    }
    ctx->deadline = delivery_end(ctx, res.at_ms);
    if (ctx->first_attempt != 0 && res.at_ms + dingtalk::kShortestAttempt.count() > ctx->deadline) {
        give_back_slot(ctx); // a retry that would start too late to finish in time
        conclude(ctx);
        return;
    }
    if (res.kind == dingtalk::Reservation::now) {
        post(ctx);
    } else {
        hold(ctx, res.at_ms - now);
    }
}

// The request pool is freed: a timer still armed (a request terminated while holding or
// backing off) must not fire into freed memory, and a slot it held goes back.
void cleanup(void *data) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(data);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    if (ctx->state != State::running) {
        give_back_slot(ctx);
    }
    if (ctx->stats != nullptr) {
        set_waiting(ctx, false);
    }
}

// r->read_event_handler once the body is read: notices a client that went away. A request
// waiting on a timer stops (its slot goes back); a running one stops after this attempt.
void check_broken(ngx_http_request_t *r) noexcept
{
    ngx_http_test_reading(r);
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
        ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
    if (!r->connection->error || ctx == nullptr ||
        (ctx->state != State::holding && ctx->state != State::backoff)) {
        return;
    }
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "dingtalk: the client closed the connection while the delivery waited%s",
                  ctx->state == State::holding ? " for a rate-limit slot; nothing sent"
                                               : " to retry; no more attempts");
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    give_back_slot(ctx);
    ctx->state = State::done;
    set_waiting(ctx, false);
    ngx_http_dingtalk_count_ending(ctx->stats, dingtalk::Ending::client_closed);
}

// ---------------------------------------------------------------------------------------------
// request handling

// The whole body, from memory or the temp file. Its size was checked against
// dingtalk_max_body_size before.
bool read_body(ngx_http_request_t *r, std::string &out)
{
    if (r->request_body == nullptr) {
        return true;
    }
    for (ngx_chain_t *cl = r->request_body->bufs; cl != nullptr; cl = cl->next) {
        ngx_buf_t *b = cl->buf;
        if (b->in_file) {
            const off_t size = b->file_last - b->file_pos;
            const std::size_t at = out.size();
            out.resize(at + static_cast<std::size_t>(size));
            ssize_t n = ngx_read_file(b->file, reinterpret_cast<u_char *>(&out[at]),
                                      static_cast<size_t>(size), b->file_pos);
            if (n != static_cast<ssize_t>(size)) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "dingtalk: short read of the request body temp file \"%V\"",
                              &b->file->name);
                return false;
            }
        } else {
            out.append(reinterpret_cast<const char *>(b->pos), b->last - b->pos);
        }
    }
    return true;
}

off_t body_size(ngx_http_request_t *r)
{
    off_t size = 0;
    for (ngx_chain_t *cl = r->request_body ? r->request_body->bufs : nullptr; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }
    return size;
}

// 413 for a body over dingtalk_max_body_size, before any of it is copied or parsed.
ngx_int_t too_large(ngx_http_request_t *r, off_t size, size_t max)
{
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "dingtalk: body of %O bytes is over dingtalk_max_body_size (%uz); refused", size,
                  max);
    const std::string reason =
        "body of " + std::to_string(size) + " bytes is over dingtalk_max_body_size (" +
        std::to_string(max) +
        " bytes): set max_alerts in Alertmanager's webhook_config to send smaller groups";
    ngx_http_dingtalk_main_conf_t *mcf = main_conf(r);
    if (mcf->zone != nullptr) {
        ngx_http_dingtalk_count_ending(mcf->zone, dingtalk::Ending::bad_request);
    }
    return send_json(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, dingtalk::reply_json(false, reason));
}

bool evaluate(ngx_http_request_t *r, ngx_http_complex_value_t *cv, std::string &out)
{
    ngx_str_t v;
    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        return false;
    }
    out.assign(reinterpret_cast<const char *>(v.data), v.len);
    return true;
}

// Why a request cannot be sent, before anything is reserved or posted.
struct refusal_t {
    ngx_uint_t status;
    const char *reason;
    dingtalk::Ending ending;
};

// Token and secret for this request. Never spliced into a URL or logged when refused.
const refusal_t *credentials(ngx_http_request_t *r, ngx_http_dingtalk_loc_conf_t *lcf,
                             dingtalk::Target &t)
{
    static const refusal_t eval_token{NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "could not evaluate dingtalk_token",
                                      dingtalk::Ending::internal},
        no_robot{NGX_HTTP_NOT_FOUND, "no DingTalk robot for this request (dingtalk_token is empty)",
                 dingtalk::Ending::no_robot},
        bad_token{NGX_HTTP_INTERNAL_SERVER_ERROR, "dingtalk_token is not a valid robot token",
                  dingtalk::Ending::bad_token},
        eval_secret{NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_secret",
                    dingtalk::Ending::internal},
        bad_secret{NGX_HTTP_INTERNAL_SERVER_ERROR, "dingtalk_secret is not a valid signing secret",
                   dingtalk::Ending::bad_token};
    if (lcf->token == nullptr) {
        t.token.assign(ngx_http_dingtalk_view(lcf->env_token));
    } else if (!evaluate(r, lcf->token, t.token)) {
        return &eval_token;
    }
    if (t.token.empty()) {
        // an unknown target of a map: the request line in this line says which
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "dingtalk: dingtalk_token is empty for this request: no robot, answered 404");
        return &no_robot;
    }
    if (!dingtalk::valid_token(t.token)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: the token from dingtalk_token holds characters DingTalk never "
                      "issues (letters and digits only); refused");
        return &bad_token;
    }
    if (lcf->secret != nullptr && !evaluate(r, lcf->secret, t.secret)) {
        return &eval_secret;
    }
    if (!t.secret.empty() && !dingtalk::valid_secret(t.secret)) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: the secret from dingtalk_secret is not \"SEC\" followed by 64 hex "
                      "digits; refused");
        return &bad_secret;
    }
    return nullptr;
}

// Everything else the thread needs, from the location's configuration.
void configure(dingtalk::Target &t, const ngx_http_dingtalk_loc_conf_t *lcf)
{
    t.api_url.assign(ngx_http_dingtalk_view(lcf->api_url));
    t.timeout = std::chrono::milliseconds(lcf->timeout);
    t.keepalive = std::chrono::seconds(lcf->keepalive_timeout);
    t.ssl_verify = lcf->ssl_verify != 0;
    if (lcf->ca_pem != nullptr) {
        t.ca_pem = *lcf->ca_pem;
    }
    if (lcf->proxy != nullptr) {
        t.proxy = *lcf->proxy;
    }
    t.zone = lcf->zone;
    if (lcf->mentions != nullptr) {
        t.mentions = *lcf->mentions;
    }
    if (lcf->text_template != nullptr) {
        t.text_template = *lcf->text_template;
    }
    if (lcf->title_template != nullptr) {
        t.title_template = *lcf->title_template;
    }
    if (lcf->styles != nullptr) {
        t.styles = *lcf->styles;
    }
    t.keyword.assign(ngx_http_dingtalk_view(lcf->keyword));
    t.mentions_from.mobiles_from.assign(ngx_http_dingtalk_view(lcf->at_mobiles_from));
    t.mentions_from.user_ids_from.assign(ngx_http_dingtalk_view(lcf->at_user_ids_from));
    if (lcf->hidden_labels != nullptr) {
        t.hidden_labels = *lcf->hidden_labels;
    }
    t.silence_link = lcf->silence_link != 0;
    t.limits.max_body_bytes = lcf->max_body_size;
    t.limits.max_alerts = lcf->max_alerts;
    t.max_messages = lcf->max_messages;
}

// dingtalk_robot_name, or "robot-" and 8 hex digits of the token's hash; never the token.
bool robot_name(ngx_http_request_t *r, ngx_http_dingtalk_ctx_t *ctx, const dingtalk::Target &t)
{
    std::string name;
    ngx_http_complex_value_t *cv = ctx->lcf->robot_name;
    if (cv != nullptr && !evaluate(r, cv, name)) {
        return false;
    }
    ctx->static_name = cv != nullptr && cv->lengths == nullptr;
    if (name.find(t.token) != std::string::npos ||
        (!t.secret.empty() && name.find(t.secret) != std::string::npos)) {
        name.clear();
        ctx->static_name = false;
    }
    if (name.empty()) {
        static const char hex[] = "0123456789abcdef";
        name = "robot-";
        for (std::size_t i = 0; i < 4; ++i) {
            name += hex[ctx->robot[i] >> 4];
            name += hex[ctx->robot[i] & 0xF];
        }
    }
    ctx->robot_name = ngx_http_dingtalk_pool_new<std::string>(r->pool, dingtalk::robot_name(name));
    return ctx->robot_name != nullptr;
}

// The task, the timer and the cleanup that ties them to the request's pool.
bool prepare_task(ngx_http_request_t *r, ngx_http_dingtalk_ctx_t *ctx, dingtalk::Target target,
                  std::string body)
{
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, 0);
    ctx->delivery =
        ngx_http_dingtalk_pool_new<dingtalk::Delivery>(r->pool, std::move(target), std::move(body));
    ctx->task = ngx_thread_task_alloc(r->pool, sizeof(task_data_t));
    if (cln == nullptr || ctx->delivery == nullptr || ctx->task == nullptr) {
        return false;
    }
    cln->handler = cleanup;
    cln->data = ctx;

    static_cast<task_data_t *>(ctx->task->ctx)->delivery = ctx->delivery;
    ctx->task->handler = thread_handler;
    ctx->task->event.handler = thread_done;
    ctx->task->event.data = ctx;

    ctx->timer.handler = timer_handler;
    ctx->timer.data = r->connection; // timer debug logging reads data as a connection
    ctx->timer.log = r->connection->log;
    return true;
}

void start_delivery(ngx_http_request_t *r, ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_dingtalk_loc_conf_t *lcf = ctx->lcf;
    std::string body;
    if (!read_body(r, body)) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not read the request body",
               dingtalk::Ending::internal);
        return;
    }
    dingtalk::Target target;
    if (const refusal_t *no = credentials(r, lcf, target)) {
        finish(r, no->status, no->reason, no->ending);
        return;
    }
    configure(target, lcf);
    const auto key = dingtalk::robot_key(target.token);
    ngx_memcpy(ctx->robot, key.data(), kRobotKeySize);
    if (!robot_name(r, ctx, target)) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_robot_name",
               dingtalk::Ending::internal);
        return;
    }
    if (!prepare_task(r, ctx, std::move(target), std::move(body))) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "out of memory", dingtalk::Ending::internal);
        return;
    }
    ngx_http_dingtalk_main_conf_t *mcf = main_conf(r);
    ctx->zone = lcf->rate_limit ? mcf->zone : nullptr;
    ctx->stats = mcf->zone;
    ctx->received = ngx_current_msec;
    r->write_event_handler = resume;
    r->read_event_handler = check_broken;
    schedule(ctx);
}

void body_handler(ngx_http_request_t *r) noexcept
{
    try {
        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
        if (r->connection->error) {
            ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            return;
        }
        const off_t size = body_size(r);
        if (size > static_cast<off_t>(ctx->lcf->max_body_size)) {
            ngx_http_finalize_request(r, too_large(r, size, ctx->lcf->max_body_size));
            return;
        }
        start_delivery(r, ctx);
    } catch (...) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal error", dingtalk::Ending::internal);
    }
}

} // namespace

namespace
{

// A header of the request by name (nginx 1.22 keeps no field for Origin).
const ngx_table_elt_t *request_header(ngx_http_request_t *r, std::string_view name)
{
    const ngx_list_part_t *part = &r->headers_in.headers.part;
    for (; part != nullptr; part = part->next) {
        const auto *h = static_cast<const ngx_table_elt_t *>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            if (h[i].key.len == name.size() &&
                ngx_strncasecmp(h[i].key.data, (u_char *)name.data(), name.size()) == 0) {
                return &h[i];
            }
        }
    }
    return nullptr;
}

bool is_json(const ngx_table_elt_t *type)
{
    static const std::string_view json = "application/json";
    if (type == nullptr || type->value.len < json.size() ||
        ngx_strncasecmp(type->value.data, (u_char *)json.data(), json.size()) != 0) {
        return false;
    }
    const u_char next = type->value.len == json.size() ? ';' : type->value.data[json.size()];
    return next == ';' || next == ' ';
}

// A refusal before the body is read: the body is discarded, nothing is sent to DingTalk.
ngx_int_t refuse_early(ngx_http_request_t *r, ngx_uint_t status, const char *reason,
                       dingtalk::Ending ending, const ngx_str_t *header = nullptr,
                       const ngx_str_t *value = nullptr)
{
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    ngx_http_dingtalk_main_conf_t *mcf = main_conf(r);
    if (mcf->zone != nullptr) {
        ngx_http_dingtalk_count_ending(mcf->zone, ending);
    }
    return send_json(r, status, dingtalk::reply_json(false, reason), header, value);
}

// Who may post, and from where: credentials when the location asks for them (every method:
// strangers learn nothing, not even that this is a webhook), never from a browser page.
ngx_int_t gatekeeper(ngx_http_request_t *r, const ngx_http_dingtalk_loc_conf_t *lcf)
{
    static const ngx_str_t challenge = ngx_string("WWW-Authenticate"),
                           bearer = ngx_string("Bearer realm=\"dingtalk\""),
                           basic = ngx_string("Basic realm=\"dingtalk\", charset=\"UTF-8\"");
    if (lcf->auth != nullptr) {
        const ngx_table_elt_t *h = r->headers_in.authorization;
        const std::string_view given = h ? ngx_http_dingtalk_view(h->value) : "";
        if (!(*lcf->auth)->allows(given)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "dingtalk: %s credentials; answered 401",
                          h ? "wrong" : "no"); // never the credentials themselves
            return refuse_early(r, NGX_HTTP_UNAUTHORIZED,
                                "authorization required: the credentials Alertmanager's "
                                "http_config sends (authorization or basic_auth)",
                                dingtalk::Ending::unauthorized, &challenge,
                                (*lcf->auth)->wants_basic() ? &basic : &bearer);
        }
    }
    if (request_header(r, "Origin") != nullptr) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "dingtalk: a request with an Origin header (a web page); answered 403");
        return refuse_early(r, NGX_HTTP_FORBIDDEN,
                            "web pages may not post here: Alertmanager sends no Origin header",
                            dingtalk::Ending::unauthorized);
    }
    return NGX_DECLINED;
}

// GET and HEAD: a health check. Anything but POST: 405.
ngx_int_t not_a_post(ngx_http_request_t *r)
{
    static const ngx_str_t allow = ngx_string("Allow"), methods = ngx_string("GET, HEAD, POST");
    ngx_int_t rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }
    if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
        return send_json(r, NGX_HTTP_OK,
                         dingtalk::reply_json(true, "ngx_http_dingtalk_module is ready: POST "
                                                    "Alertmanager webhooks here"));
    }
    return send_json(r, NGX_HTTP_NOT_ALLOWED,
                     dingtalk::reply_json(false, "method not allowed: POST Alertmanager "
                                                 "webhooks, GET for health"),
                     &allow, &methods);
}

} // namespace

ngx_int_t ngx_http_dingtalk_handler(ngx_http_request_t *r) noexcept
{
    try {
        if (r != r->main) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: a webhook location cannot serve a subrequest");
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
        if (ngx_int_t rc = gatekeeper(r, lcf); rc != NGX_DECLINED) {
            return rc;
        }
        if (!(r->method & NGX_HTTP_POST)) {
            return not_a_post(r);
        }
        if (!is_json(r->headers_in.content_type)) {
            return refuse_early(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                "Content-Type must be application/json, as Alertmanager sends",
                                dingtalk::Ending::bad_request);
        }
        const off_t declared = r->headers_in.content_length_n;
        if (declared > static_cast<off_t>(lcf->max_body_size)) {
            ngx_int_t rc = ngx_http_discard_request_body(r);
            return rc != NGX_OK ? rc : too_large(r, declared, lcf->max_body_size);
        }

        // The timer event must be the first member: timer_handler gets back to ctx from it.
        static_assert(offsetof(ngx_http_dingtalk_ctx_t, timer) == 0, "timer first");
        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_pcalloc(r->pool, sizeof(ngx_http_dingtalk_ctx_t)));
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->r = r;
        ctx->lcf = lcf;
        ctx->state = State::idle;
        ngx_http_set_ctx(r, ctx, ngx_http_dingtalk_module);

        ngx_int_t rc = ngx_http_read_client_request_body(r, body_handler);
        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }
        return NGX_DONE;
    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}

// dingtalk_metrics: Prometheus text format, from the shared zone (all workers).
ngx_int_t ngx_http_dingtalk_metrics_handler(ngx_http_request_t *r) noexcept
{
    try {
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return NGX_HTTP_NOT_ALLOWED;
        }
        ngx_int_t rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
        auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
        const std::string text = dingtalk::to_prometheus(
            mcf->zone ? ngx_http_dingtalk_snapshot(mcf->zone) : dingtalk::MetricsSnapshot());
        static const ngx_str_t type = ngx_string("text/plain; version=0.0.4; charset=utf-8");
        return send_body(r, NGX_HTTP_OK, type, text);
    } catch (...) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
