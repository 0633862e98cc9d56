// The request flow, all in the worker's event loop except Delivery::run():
//
//   POST -> read body -> body_handler: evaluate token/secret, build the Delivery
//        -> schedule: reserve a send slot in the robot's shared window
//             now:      post the task (parse, render, sign, send)
//             later:    wait on a timer (at most "hold"), then post
//             rejected: 503 + Retry-After (or, when retrying, the last failure)
//        -> thread_done: delivered -> 200; bad body -> 400 (slot given back);
//             130101 -> mark the robot throttled, 503; transient failure with time left ->
//             backoff timer -> schedule again; anything else -> 5xx
//
// One timer per request serves three purposes: a deadline while a task runs (so a worker that
// is shutting down waits for it), the hold before a send, and the backoff before a retry.
// Threads never sleep and never touch nginx; everything that waits, waits on a timer.

#include "ngx_http_dingtalk.hpp"

#include "delivery.hpp"
#include "sign.hpp"

#include <chrono>
#include <string>

namespace
{

// The thread may run a little past its budget (closing, DNS); the deadline only has to keep
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
    ngx_msec_t received;      // body read
    ngx_msec_t first_attempt; // first task posted; the delivery timeout counts from here
    uint64_t reserved_at;     // the rate slot of the attempt in flight
    bool has_reservation;
    bool counted_waiting; // in dingtalk_requests_waiting
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

} // namespace

ngx_int_t ngx_http_dingtalk_send_json(ngx_http_request_t *r, ngx_uint_t status,
                                      const std::string &body, ngx_uint_t retry_after, bool allow)
{
    static const ngx_str_t json = ngx_string("application/json");
    static const ngx_str_t allow_header = ngx_string("Allow"),
                           allow_value = ngx_string("GET, HEAD, POST"),
                           retry_header = ngx_string("Retry-After");
    if (allow) {
        return send_body(r, status, json, body, &allow_header, &allow_value);
    }
    if (retry_after > 0) {
        ngx_str_t value;
        value.data = static_cast<u_char *>(ngx_pnalloc(r->pool, NGX_INT_T_LEN));
        if (value.data == nullptr) {
            return NGX_ERROR;
        }
        value.len = ngx_sprintf(value.data, "%ui", retry_after) - value.data;
        return send_body(r, status, json, body, &retry_header, &value);
    }
    return send_body(r, status, json, body);
}

namespace
{

// An answer the glue gives on its own, before or instead of a delivery; counted in metrics.
void finish(ngx_http_request_t *r, ngx_uint_t status, const std::string &reason,
            dingtalk::Ending ending, ngx_uint_t retry_after = 0)
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
    if (mcf->zone != nullptr) {
        ngx_http_dingtalk_count_ending(mcf->zone, ending);
    }
    ngx_http_finalize_request(
        r, ngx_http_dingtalk_send_json(r, status, dingtalk::reply_json(status < 300, reason),
                                       retry_after));
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
    case dingtalk::Outcome::unreachable:
        return dingtalk::Ending::unreachable;
    case dingtalk::Outcome::timeout:
        return dingtalk::Ending::timeout;
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
                                           : 0;
        ngx_http_finalize_request(
            r, ngx_http_dingtalk_send_json(r, static_cast<ngx_uint_t>(rep.http_status),
                                           rep.reply_json(), retry_after));
    } catch (...) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

// The delivery is over: log it, and answer through r->write_event_handler, which is resume()
// or, when nginx terminated the request meanwhile, nginx's own finalizer.
void conclude(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_request_t *r = ctx->r;
    ngx_connection_t *c = r->connection;
    ctx->state = State::done;
    set_waiting(ctx, false);
    const ngx_msec_t took = ngx_current_msec - ctx->received;
    ctx->delivery->set_elapsed(std::chrono::milliseconds(took));
    const dingtalk::Report &rep = ctx->delivery->report();
    ngx_http_dingtalk_count_delivery(ctx->stats, ctx->robot, *ctx->robot_name, rep,
                                     ending_of(rep.outcome), took);
    log_outcome(r, *ctx->robot_name, rep);
    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}

// What a task carries into the thread: written before the post, read by the thread only.
struct task_data_t {
    dingtalk::Delivery *delivery;
    ngx_msec_t budget; // what is left of dingtalk_timeout for this attempt
};

void thread_handler(void *data, ngx_log_t *) noexcept
{
    // Only the Delivery's own memory is touched here: no pools, no logs, no request.
    auto *td = static_cast<task_data_t *>(data);
    td->delivery->run(std::chrono::milliseconds(td->budget));
}

void give_back_slot(ngx_http_dingtalk_ctx_t *ctx)
{
    if (ctx->has_reservation && ctx->zone != nullptr) {
        ngx_http_dingtalk_release(ctx->zone, ctx->robot, ctx->reserved_at);
    }
    ctx->has_reservation = false;
}

void schedule(ngx_http_dingtalk_ctx_t *ctx);

void post(ngx_http_dingtalk_ctx_t *ctx)
{
    ngx_http_request_t *r = ctx->r;
    ngx_http_dingtalk_loc_conf_t *lcf = ctx->lcf;

    if (ctx->first_attempt == 0) {
        ctx->first_attempt = ngx_current_msec ? ngx_current_msec : 1;
    }
    const ngx_msec_t spent = ngx_current_msec - ctx->first_attempt;
    auto *td = static_cast<task_data_t *>(ctx->task->ctx);
    const ngx_msec_t left = lcf->timeout > spent ? lcf->timeout - spent : 1;
    td->budget =
        static_cast<ngx_msec_t>(dingtalk::attempt_budget(std::chrono::milliseconds(left)).count());

    if (ngx_thread_task_post(lcf->thread_pool, ctx->task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: thread pool \"%V\" queue is full; raise max_queue (or threads) "
                      "in its \"thread_pool\" directive",
                      &lcf->thread_pool_name);
        give_back_slot(ctx);
        if (ctx->delivery->report().attempts > 0) {
            conclude(ctx); // a retry that cannot run: the last failure stands
            return;
        }
        ctx->state = State::done;
        set_waiting(ctx, false);
        finish(r, NGX_HTTP_SERVICE_UNAVAILABLE, "busy: the delivery queue is full, retry later",
               dingtalk::Ending::queue_full, 5);
        return;
    }

    // As nginx's own threaded I/O does: the request cannot be freed while the task runs.
    r->main->blocked++;
    r->aio = 1;
    ctx->state = State::running;
    set_waiting(ctx, false);
    ngx_http_dingtalk_gauge(ctx->stats, ngx_http_dingtalk_gauge_e::tasks_in_flight, 1);
    ngx_add_timer(&ctx->timer, td->budget + kDeadlineSlack);
}

void thread_done(ngx_event_t *ev) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(ev->data);
    ngx_http_request_t *r = ctx->r;

    r->main->blocked--;
    r->aio = 0;
    ngx_http_dingtalk_gauge(ctx->stats, ngx_http_dingtalk_gauge_e::tasks_in_flight, -1);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }

    const dingtalk::Report &rep = ctx->delivery->report();
    switch (rep.outcome) {
    case dingtalk::Outcome::bad_request:
        give_back_slot(ctx); // nothing was sent
        break;
    case dingtalk::Outcome::throttled:
        if (ctx->zone != nullptr) {
            ngx_http_dingtalk_throttle(ctx->zone, ctx->robot, ctx->lcf->rate);
        }
        break;
    default:
        break;
    }
    ctx->has_reservation = false;

    if (!r->connection->error) {
        const auto spent = std::chrono::milliseconds(ngx_current_msec - ctx->first_attempt);
        if (auto delay =
                dingtalk::retry_delay(rep, spent, std::chrono::milliseconds(ctx->lcf->timeout))) {
            ctx->state = State::backoff;
            set_waiting(ctx, true);
            ngx_http_dingtalk_count_retry(ctx->stats);
            ngx_add_timer(&ctx->timer, static_cast<ngx_msec_t>(delay->count()));
            return;
        }
    }
    conclude(ctx);
}

void timer_handler(ngx_event_t *ev) noexcept
{
    // ev->data is the connection (timer debug logging expects one); the event is ctx's first
    // member, so the event's address is the context's.
    auto *ctx = reinterpret_cast<ngx_http_dingtalk_ctx_t *>(ev);
    switch (ctx->state) {
    case State::running:
        // The curl call is bounded by its own timeout, so this means the pool is backed up.
        // Finalizing now would free memory the thread still uses: wait for it instead.
        ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                      "dingtalk: delivery still waiting for a thread past its deadline; is "
                      "thread pool \"%V\" too small?",
                      &ctx->lcf->thread_pool_name);
        ngx_add_timer(ev, 1000);
        return;
    case State::holding:
        post(ctx);
        return;
    case State::backoff:
        if (ctx->r->connection->error) {
            conclude(ctx);
            return;
        }
        schedule(ctx);
        return;
    case State::idle:
    case State::done:
        return;
    }
}

// Reserves a send slot, then sends now, later (holding), or not at all.
void schedule(ngx_http_dingtalk_ctx_t *ctx)
{
    if (ctx->zone == nullptr) {
        post(ctx);
        return;
    }
    const dingtalk::RateLimit &limit = ctx->lcf->rate;
    const dingtalk::Reservation res =
        ngx_http_dingtalk_reserve(ctx->zone, ctx->robot, limit, ctx->r->connection->log);

    switch (res.kind) {
    case dingtalk::Reservation::now:
    case dingtalk::Reservation::later:
        ctx->reserved_at = res.at_ms;
        ctx->has_reservation = true;
        if (ctx->first_attempt != 0 &&
            res.at_ms + 300 > ctx->first_attempt + static_cast<uint64_t>(ctx->lcf->timeout)) {
            give_back_slot(ctx); // a retry that would start too late to finish in time
            conclude(ctx);
            return;
        }
        if (res.kind == dingtalk::Reservation::now) {
            post(ctx);
        } else {
            ctx->state = State::holding;
            set_waiting(ctx, true);
            ngx_http_dingtalk_count_held(ctx->stats);
            ngx_add_timer(&ctx->timer, static_cast<ngx_msec_t>(
                                           res.at_ms - static_cast<uint64_t>(ngx_current_msec)));
        }
        return;
    case dingtalk::Reservation::rejected:
    case dingtalk::Reservation::throttled:
        break;
    }

    if (ctx->delivery->report().attempts > 0) {
        conclude(ctx); // no slot for a retry: the last failure stands
        return;
    }
    const bool throttled = res.kind == dingtalk::Reservation::throttled;
    ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                  throttled ? "dingtalk: robot is cooling down after DingTalk throttled it "
                              "(130101); answered 503, retry after %uL ms"
                            : "dingtalk: robot is over its rate limit of %uD messages per %uL ms; "
                              "answered 503, a slot frees in %uL ms",
                  throttled ? res.retry_after_ms : static_cast<uint64_t>(limit.count),
                  limit.window_ms, res.retry_after_ms);
    ctx->state = State::done;
    set_waiting(ctx, false);
    finish(ctx->r, NGX_HTTP_SERVICE_UNAVAILABLE,
           throttled
               ? "DingTalk throttled this robot recently (errcode 130101); retry later"
               : "over DingTalk's limit of " + std::to_string(limit.count) + " messages per " +
                     std::to_string(limit.window_ms / 1000) + " s for this robot; retry later",
           dingtalk::Ending::rate_limited, seconds_up(res.retry_after_ms));
}

// The request pool is freed: a timer still armed (a request terminated while holding or
// backing off) must not fire into freed memory.
void cleanup_timer(void *data) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(data);
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    if (ctx->stats != nullptr) {
        set_waiting(ctx, false);
    }
}

// ---------------------------------------------------------------------------------------------
// request handling

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

bool evaluate(ngx_http_request_t *r, ngx_http_complex_value_t *cv, std::string &out)
{
    ngx_str_t v;
    if (ngx_http_complex_value(r, cv, &v) != NGX_OK) {
        return false;
    }
    out.assign(reinterpret_cast<const char *>(v.data), v.len);
    return true;
}

void body_handler(ngx_http_request_t *r) noexcept
{
    try {
        auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
        auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
            ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));

        if (r->connection->error) {
            ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            return;
        }

        std::string body;
        if (!read_body(r, body)) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not read the request body",
                   dingtalk::Ending::internal);
            return;
        }

        dingtalk::Target target;
        if (lcf->token != nullptr) {
            if (!evaluate(r, lcf->token, target.token)) {
                finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_token",
                       dingtalk::Ending::internal);
                return;
            }
        } else {
            target.token.assign(ngx_http_dingtalk_view(lcf->env_token));
        }
        if (target.token.empty()) {
            finish(r, NGX_HTTP_NOT_FOUND,
                   "no DingTalk robot for this request (dingtalk_token is empty)",
                   dingtalk::Ending::no_robot);
            return;
        }
        if (!dingtalk::valid_token(target.token)) {
            // Never spliced into a URL, never logged: only that it was refused.
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: the token from dingtalk_token holds characters DingTalk "
                          "never issues (letters and digits only); refused");
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "dingtalk_token is not a valid robot token",
                   dingtalk::Ending::bad_token);
            return;
        }
        if (lcf->secret != nullptr && !evaluate(r, lcf->secret, target.secret)) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_secret",
                   dingtalk::Ending::internal);
            return;
        }
        if (!target.secret.empty() && !dingtalk::valid_secret(target.secret)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: the secret from dingtalk_secret is not \"SEC\" followed by "
                          "hex digits; refused");
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                   "dingtalk_secret is not a valid signing secret", dingtalk::Ending::bad_token);
            return;
        }

        const auto key = dingtalk::robot_key(target.token);
        ngx_memcpy(ctx->robot, key.data(), kRobotKeySize);
        target.api_url.assign(ngx_http_dingtalk_view(lcf->api_url));
        target.timeout = std::chrono::milliseconds(lcf->timeout);
        target.ssl_verify = lcf->ssl_verify != 0;
        if (lcf->ca_pem != nullptr) {
            target.ca_pem = *lcf->ca_pem;
        }
        target.zone = lcf->zone;
        if (lcf->mentions != nullptr) {
            target.mentions = *lcf->mentions;
        }
        if (lcf->text_template != nullptr) {
            target.text_template = *lcf->text_template;
        }
        if (lcf->title_template != nullptr) {
            target.title_template = *lcf->title_template;
        }

        std::string name;
        if (lcf->robot_name != nullptr && !evaluate(r, lcf->robot_name, name)) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_robot_name",
                   dingtalk::Ending::internal);
            return;
        }
        if (name.find(target.token) != std::string::npos ||
            (!target.secret.empty() && name.find(target.secret) != std::string::npos)) {
            name.clear(); // dingtalk_robot_name must never print the token: use the hash
        }
        if (name.empty()) {
            static const char hex[] = "0123456789abcdef";
            name = "robot-";
            for (std::size_t i = 0; i < 4; ++i) {
                name += hex[key[i] >> 4];
                name += hex[key[i] & 0xF];
            }
        }
        ctx->robot_name =
            ngx_http_dingtalk_pool_new<std::string>(r->pool, dingtalk::robot_name(name));

        ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(r->pool, 0);
        ctx->delivery = ngx_http_dingtalk_pool_new<dingtalk::Delivery>(r->pool, std::move(target),
                                                                       std::move(body));
        ctx->task = ngx_thread_task_alloc(r->pool, sizeof(task_data_t));
        if (cln == nullptr || ctx->delivery == nullptr || ctx->task == nullptr ||
            ctx->robot_name == nullptr) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "out of memory", dingtalk::Ending::internal);
            return;
        }
        cln->handler = cleanup_timer;
        cln->data = ctx;

        static_cast<task_data_t *>(ctx->task->ctx)->delivery = ctx->delivery;
        ctx->task->handler = thread_handler;
        ctx->task->event.handler = thread_done;
        ctx->task->event.data = ctx;

        ctx->timer.handler = timer_handler;
        ctx->timer.data = r->connection; // timer debug logging reads data as a connection
        ctx->timer.log = r->connection->log;

        ctx->lcf = lcf;
        ctx->zone = lcf->rate_limit ? mcf->zone : nullptr;
        ctx->stats = mcf->zone;
        ctx->received = ngx_current_msec;
        r->write_event_handler = resume;
        schedule(ctx);
    } catch (...) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal error", dingtalk::Ending::internal);
    }
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

        if (r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD)) {
            ngx_int_t rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
            return ngx_http_dingtalk_send_json(
                r, NGX_HTTP_OK,
                dingtalk::reply_json(true, "ngx_http_dingtalk_module is ready: POST "
                                           "Alertmanager webhooks here"));
        }

        if (!(r->method & NGX_HTTP_POST)) {
            ngx_int_t rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
            return ngx_http_dingtalk_send_json(
                r, NGX_HTTP_NOT_ALLOWED,
                dingtalk::reply_json(false, "method not allowed: POST Alertmanager "
                                            "webhooks, GET for health"),
                0, true);
        }

        // The timer event must be the first member: timer_handler gets back to ctx from it.
        static_assert(offsetof(ngx_http_dingtalk_ctx_t, timer) == 0, "timer first");
        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_pcalloc(r->pool, sizeof(ngx_http_dingtalk_ctx_t)));
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->r = r;
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
