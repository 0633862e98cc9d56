// The action location (dingtalk_action;, issue #25), in the worker's event loop. A link's GET
// answers the confirmation page, or a page saying why the link is refused; a GET never acts.
// The page's form POSTs back here: the request is checked (same site, the form's type and
// size), the form read, the link and the form token verified, then silence_from_link() runs in
// a task of the location's thread pool (dingtalk_thread_pool) and its page is the answer. As a
// delivery's tasks do, the task keeps the request blocked and a timer armed (a worker that is
// shutting down waits for it); the thread touches only the job's own memory. Every POST is one
// log line and one count of dingtalk_actions_total{action="silence",result}.

#include "ngx_http_dingtalk.hpp"

#include "action.hpp"
#include "page.hpp"
#include "silence.hpp"
#include "silencer.hpp"
#include "text.hpp"

#include <string>

namespace
{

ngx_str_t str_of(std::string_view s)
{
    return {s.size(), reinterpret_cast<u_char *>(const_cast<char *>(s.data()))};
}

bool add_header(ngx_http_request_t *r, std::string_view name, std::string_view value)
{
    auto *h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
    if (h == nullptr) {
        return false;
    }
    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = nullptr;
#endif
    h->key = str_of(name);
    h->value = str_of(value);
    return true;
}

// One page, with the headers every page goes with (page.hpp).
ngx_int_t send_page(ngx_http_request_t *r, ngx_uint_t status, const std::string &page)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(page.size());
    r->headers_out.content_type = str_of(dingtalk::kPageContentType);
    r->headers_out.content_type_len = dingtalk::kPageContentType.size();
    r->headers_out.content_type_lowcase = nullptr;
    if (!add_header(r, "Content-Security-Policy", dingtalk::kPageSecurityPolicy) ||
        !add_header(r, "Referrer-Policy", dingtalk::kPageReferrerPolicy) ||
        !add_header(r, "Cache-Control", dingtalk::kPageCacheControl) ||
        !add_header(r, "X-Content-Type-Options", "nosniff")) {
        return NGX_ERROR;
    }
    ngx_int_t rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    ngx_buf_t *b = ngx_create_temp_buf(r->pool, page.size());
    if (b == nullptr) {
        return NGX_ERROR;
    }
    b->last = ngx_cpymem(b->last, page.data(), page.size());
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    ngx_chain_t out{b, nullptr};
    return ngx_http_output_filter(r, &out);
}

std::string refusal(const char *heading, const char *why)
{
    dingtalk::ResultPage p;
    p.heading = heading;
    p.message = why;
    return dingtalk::result_page(p);
}

// The confirmation page of a verified link.
std::string confirmation(const dingtalk::ActionLink &link, std::string_view token,
                         const dingtalk::ActionKeys &keys, std::int64_t now,
                         const dingtalk::TimeZone &zone)
{
    dingtalk::ConfirmPage p;
    p.labels = link.matchers;
    p.duration = dingtalk::silence_duration_text(link.seconds, link.until_resolved);
    p.ends = dingtalk::page_time(zone, now + link.seconds);
    p.link_token = std::string(token);
    p.form_token = dingtalk::form_token(token, keys, now);
    return dingtalk::confirm_page(p);
}

ngx_int_t answer_link(ngx_http_request_t *r, const dingtalk::Settings &s)
{
    ngx_str_t arg = ngx_null_string;
    if (ngx_http_arg(r, reinterpret_cast<u_char *>(const_cast<char *>("l")), 1, &arg) != NGX_OK) {
        return send_page(r, NGX_HTTP_BAD_REQUEST,
                         refusal("链接无效", "这个地址不是完整的操作链接。"));
    }
    const std::string_view token = ngx_http_dingtalk_view(arg);
    const std::int64_t now = ngx_time();
    const dingtalk::VerifiedLink v = dingtalk::verify_link(token, *s.action_keys, now);
    if (v.error != dingtalk::LinkError::none) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "dingtalk: action link refused: %s",
                      dingtalk::to_string(v.error));
        return send_page(r, NGX_HTTP_FORBIDDEN, refusal("链接无效", dingtalk::page_text(v.error)));
    }
    return send_page(r, NGX_HTTP_OK, confirmation(v.link, token, *s.action_keys, now, *s.timezone));
}

// ---------------------------------------------------------------------------------------------
// the POST

// How long after the confirmation page was served its form may be posted.
constexpr std::int64_t kFormTokenSeconds = 15 * 60;
// Past the Alertmanager calls' own timeouts, before the timer says the task is late.
constexpr ngx_msec_t kTaskSlack = 5000;
// The keep-alive of silence.cpp's requests (the sender's default): the worker's sweep closes
// the connection to Alertmanager once it was idle that long.
constexpr time_t kAlertmanagerKeepalive = 60;

// What the thread needs and what it answers: constructed in the request's pool, destroyed
// with it (never while the task runs: the request is blocked until the task is done).
struct action_job_t {
    dingtalk::AlertmanagerApi api;
    dingtalk::ActionLink link;
    dingtalk::ActionForm form;
    std::int64_t now = 0;
    std::shared_ptr<const dingtalk::Store> store;   // dingtalk_store, or null
    std::shared_ptr<const dingtalk::TimeZone> zone; // the pages' times (dingtalk_timezone)
    dingtalk::ActionOutcome outcome;                // written by the thread
    bool stored = false;       // an "until resolved" silence kept in the store too
    std::string store_error;   // ... or why not
    std::exception_ptr thrown; // ... or this
};

struct action_ctx_t {
    ngx_event_t timer; // first (silence_late): the task's deadline; a worker that is shutting
                       // down waits for it
    ngx_http_request_t *r;
    const dingtalk::Settings *settings;
    ngx_shm_zone_t *zone;
    action_job_t *job;
    bool done;        // the outcome is known: resume() sends its page
    bool warned_late; // the task's lateness was logged at warn once
};

// The alert's name for the log, from the link's (signed) labels.
std::string alert_name(const dingtalk::ActionLink &link)
{
    for (const auto &[name, value] : link.matchers) {
        if (name == "alertname") {
            return dingtalk::plain_line(value, 128);
        }
    }
    return "";
}

// The one log line and the one count of a POST. Never the link, the form token or a
// credential: the alert's name, the result, the silence's id, and why it failed.
void account(ngx_http_request_t *r, ngx_shm_zone_t *zone, dingtalk::ActionResult result,
             const std::string &alert, const std::string &id, const std::string &why)
{
    ngx_http_dingtalk_count_action(zone, result);
    const ngx_uint_t level = result == dingtalk::ActionResult::failed    ? NGX_LOG_WARN
                             : result == dingtalk::ActionResult::refused ? NGX_LOG_INFO
                                                                         : NGX_LOG_NOTICE;
    ngx_log_error(level, r->connection->log, 0, "dingtalk: action silence %s: alert \"%s\"%s%s%s%s",
                  dingtalk::to_string(result), alert.c_str(), id.empty() ? "" : ", silence ",
                  id.c_str(), why.empty() ? "" : ": ", why.c_str());
}

ngx_shm_zone_t *zone_of(ngx_http_request_t *r)
{
    return static_cast<ngx_http_dingtalk_main_conf_t *>(
               ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module))
        ->zone;
}

// A POST refused before Alertmanager was asked: its page, logged and counted.
ngx_int_t refuse(ngx_http_request_t *r, ngx_uint_t status, const char *heading, const char *why,
                 const std::string &alert = "")
{
    account(r, zone_of(r), dingtalk::ActionResult::refused, alert, "", why);
    return send_page(r, status, refusal(heading, why));
}

// The task's page: what silence_from_link() said, or a 500 when it threw.
ngx_int_t send_outcome(ngx_http_request_t *r, const action_job_t &job)
{
    if (job.thrown) {
        return send_page(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                         refusal("未静默", "这里出了问题：请在 Alertmanager 中查看这条告警"
                                           "是否已静默。"));
    }
    const bool failed = job.outcome.result == dingtalk::ActionResult::failed;
    return send_page(r, failed ? NGX_HTTP_BAD_GATEWAY : NGX_HTTP_OK,
                     dingtalk::result_page(job.outcome.page));
}

// r->write_event_handler while the task runs; sends the page once the outcome is known.
void resume(ngx_http_request_t *r) noexcept
{
    auto *ctx = static_cast<action_ctx_t *>(ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
    if (ctx == nullptr || !ctx->done) {
        return; // a write event while the task runs: nothing to send yet
    }
    r->write_event_handler = ngx_http_request_empty_handler;
    try {
        ngx_http_finalize_request(r, send_outcome(r, *ctx->job));
    } catch (...) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: the action's page could not be made: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

// An "until resolved" silence is kept, to be expired once its alert resolves; when the table
// is full, the log and the page say it ends at its hard end instead.
void keep_until_resolved(action_ctx_t *ctx)
{
    action_job_t &job = *ctx->job;
    const dingtalk::KeepResult kept = ngx_http_dingtalk_keep_until_resolved(
        ctx->zone, job.outcome.silence_id, job.link, *ctx->settings, job.now, job.stored);
    if (job.store && !job.stored) {
        ngx_http_dingtalk_store_failed(ctx->zone);
        ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                      "dingtalk_store \"%s\" failed: %s; the \"until resolved\" silence %s is "
                      "kept here, copied to the store at the next check",
                      job.store->config().shown.c_str(), job.store_error.c_str(),
                      job.outcome.silence_id.c_str());
    }
    if (kept == dingtalk::KeepResult::kept || kept == dingtalk::KeepResult::again) {
        return;
    }
    const std::string end =
        dingtalk::page_time(*ctx->settings->timezone, job.now + job.link.seconds);
    ngx_log_error(NGX_LOG_WARN, ctx->r->connection->log, 0,
                  "dingtalk: action silence %s is not kept to be expired when its alert resolves "
                  "(%s, %uz at most): it ends at its hard end, %s",
                  job.outcome.silence_id.c_str(),
                  kept == dingtalk::KeepResult::full ? "the table is full"
                                                     : "its id or fingerprint cannot be kept",
                  dingtalk::kMaxUntilResolved, end.c_str());
    job.outcome.page.message +=
        "本服务器现在无法跟踪更多告警：告警恢复时不会解除这个静默，它将在 " + end + " 结束。";
}

// The outcome is known (or the pool was full): logged, counted, and the page sent through
// r->write_event_handler, which is resume() or, when nginx terminated the request meanwhile
// (the client left), nginx's own finalizer.
void conclude(action_ctx_t *ctx)
{
    action_job_t &job = *ctx->job;
    const std::string alert = alert_name(job.link);
    if (job.thrown) {
        ngx_log_error(NGX_LOG_ALERT, ctx->r->connection->log, 0,
                      "dingtalk: the action's task failed: %s", ngx_http_dingtalk_what(job.thrown));
        account(ctx->r, ctx->zone, dingtalk::ActionResult::failed, alert, "", "internal error");
    } else {
        const dingtalk::ActionOutcome &o = job.outcome;
        account(ctx->r, ctx->zone, o.result, alert, o.silence_id, o.error);
        if (o.until_resolved) {
            keep_until_resolved(ctx);
        }
    }
    ctx->done = true;
    ctx->r->write_event_handler(ctx->r);
}

void silence_task(void *data, ngx_log_t *) noexcept
{
    // Only the job's own memory is touched here: no pools, no logs, no request.
    action_job_t *job = *static_cast<action_job_t **>(data);
    try {
        job->outcome =
            dingtalk::silence_from_link(job->api, job->link, job->form, job->now, *job->zone);
        if (job->outcome.until_resolved && job->store) { // for the instances sharing it
            const dingtalk::StoredSilence s{job->outcome.silence_id, job->link.fingerprint,
                                            job->now + job->link.seconds, job->now};
            job->stored = job->store->keep_silence(dingtalk::alertmanager_identity(job->api.url), s,
                                                   job->store_error);
        }
    } catch (...) {
        job->thrown = std::current_exception();
    }
}

void silence_done(ngx_event_t *ev) noexcept
{
    auto *ctx = static_cast<action_ctx_t *>(ev->data);
    ngx_http_request_t *r = ctx->r;
    ngx_connection_t *c = r->connection;
    r->main->blocked--;
    r->aio = 0;
    if (ctx->timer.timer_set) {
        ngx_del_timer(&ctx->timer);
    }
    ngx_http_dingtalk_watch_idle(kAlertmanagerKeepalive);
    try {
        conclude(ctx);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0, "dingtalk: the end of an action failed: %s",
                      ngx_http_dingtalk_what(std::current_exception()));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
    ngx_http_run_posted_requests(c);
}

// The task is past its deadline: the thread ends its calls by their timeouts, so it waits in a
// full pool. Finalizing now would free the job the thread may still use: wait for it instead.
void silence_late(ngx_event_t *ev) noexcept
{
    auto *ctx = reinterpret_cast<action_ctx_t *>(ev); // the timer is the context's first member
    const ngx_uint_t level = ctx->warned_late ? NGX_LOG_INFO : NGX_LOG_WARN;
    ngx_log_error(level, ctx->r->connection->log, 0,
                  "dingtalk: an action's task is late (its thread pool is busy)");
    ctx->warned_late = true;
    ngx_add_timer(&ctx->timer, 1000);
}

// How long the task may take: two calls to Alertmanager (find, then create), each bounded.
ngx_msec_t task_deadline(const dingtalk::AlertmanagerApi &api)
{
    return static_cast<ngx_msec_t>(2 * (api.timeout + api.answer_timeout).count()) + kTaskSlack;
}

// Posts the job to the location's thread pool: NGX_DONE, or the page that says why not.
ngx_int_t start_task(ngx_http_request_t *r, action_ctx_t *ctx, ngx_thread_pool_t *pool)
{
    ngx_thread_task_t *task = ngx_thread_task_alloc(r->pool, sizeof(action_job_t *));
    if (task == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    *static_cast<action_job_t **>(task->ctx) = ctx->job;
    task->handler = silence_task;
    task->event.handler = silence_done;
    task->event.data = ctx;
    ctx->timer.handler = silence_late;
    ctx->timer.data = r->connection; // timer debug logging reads data as a connection
    ctx->timer.log = r->connection->log;
    if (ngx_thread_task_post(pool, task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: thread pool queue is full; raise max_queue (or threads) in its "
                      "\"thread_pool\" directive");
        ctx->job->outcome.error = "the thread pool's queue is full";
        ctx->job->outcome.page = {false, "未静默", "服务器繁忙：没有做任何更改。请稍后再试。", {}};
        account(r, ctx->zone, dingtalk::ActionResult::failed, alert_name(ctx->job->link), "",
                ctx->job->outcome.error);
        return send_page(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                         dingtalk::result_page(ctx->job->outcome.page));
    }
    // As nginx's own threaded I/O does: the request cannot be freed while the task runs.
    r->main->blocked++;
    r->aio = 1;
    ngx_add_timer(&ctx->timer, task_deadline(ctx->job->api));
    r->write_event_handler = resume;
    r->read_event_handler = ngx_http_test_reading; // a client that leaves is noticed
    return NGX_DONE;
}

// The verified form of a link: its silence made (or found) by a pool task.
ngx_int_t silence(ngx_http_request_t *r, const ngx_http_dingtalk_loc_conf_t *lcf,
                  dingtalk::ActionLink link, dingtalk::ActionForm form, std::int64_t now)
{
    static_assert(offsetof(action_ctx_t, timer) == 0, "timer first");
    auto *ctx = static_cast<action_ctx_t *>(ngx_pcalloc(r->pool, sizeof(action_ctx_t)));
    if (ctx == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ctx->job = ngx_http_dingtalk_pool_new<action_job_t>(r->pool);
    if (ctx->job == nullptr) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ctx->r = r;
    ctx->settings = lcf->settings->get();
    ctx->zone = zone_of(r);
    ctx->job->api = ngx_http_dingtalk_alertmanager_api(**lcf->settings);
    ctx->job->link = std::move(link);
    ctx->job->form = std::move(form);
    ctx->job->now = now;
    ctx->job->store = (*lcf->settings)->store;
    ctx->job->zone = (*lcf->settings)->timezone;
    ngx_http_set_ctx(r, ctx, ngx_http_dingtalk_module);
    return start_task(r, ctx, lcf->thread_pool);
}

// The body is read: the form, its link and its token checked, then the task.
ngx_int_t on_form(ngx_http_request_t *r)
{
    auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
    const dingtalk::ActionKeys &keys = *(*lcf->settings)->action_keys;
    std::string body;
    if (ngx_http_dingtalk_body_size(r) > static_cast<off_t>(dingtalk::kMaxActionForm)) {
        return refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "表单无效",
                      "表单超出了本页表单的大小。");
    }
    if (!ngx_http_dingtalk_read_body(r, body)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    dingtalk::ActionForm form;
    std::string error;
    if (!dingtalk::parse_action_form(body, form, error)) {
        return refuse(r, NGX_HTTP_BAD_REQUEST, "表单无效", (error + "。").c_str());
    }
    const std::int64_t now = ngx_time();
    dingtalk::VerifiedLink v = dingtalk::verify_link(form.link, keys, now);
    if (v.error != dingtalk::LinkError::none) {
        return refuse(r, NGX_HTTP_FORBIDDEN, "链接无效", dingtalk::page_text(v.error));
    }
    if (!dingtalk::verify_form_token(form.token, form.link, keys, now, kFormTokenSeconds)) {
        return refuse(r, NGX_HTTP_FORBIDDEN, "表单无效",
                      "这个表单不是该链接的页面，或已打开太久：请重新打开链接。",
                      alert_name(v.link));
    }
    return silence(r, lcf, std::move(v.link), std::move(form), now);
}

void form_read(ngx_http_request_t *r) noexcept
{
    try {
        if (r->connection->error) {
            ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            return;
        }
        const ngx_int_t rc = on_form(r);
        if (rc != NGX_DONE) {
            ngx_http_finalize_request(r, rc);
        }
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: the action's form failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

std::string_view header_value(ngx_http_request_t *r, std::string_view name)
{
    const ngx_table_elt_t *h = ngx_http_dingtalk_request_header(r, name);
    return h != nullptr ? ngx_http_dingtalk_view(h->value) : std::string_view();
}

// A POST: what its headers say is checked before its body is read.
ngx_int_t post_form(ngx_http_request_t *r)
{
    const std::string_view host =
        r->headers_in.host ? ngx_http_dingtalk_view(r->headers_in.host->value) : "";
    const char *cross =
        dingtalk::cross_site(header_value(r, "Origin"), header_value(r, "Sec-Fetch-Site"), host);
    const ngx_table_elt_t *type = r->headers_in.content_type;
    const bool form =
        type != nullptr && dingtalk::is_form_type(ngx_http_dingtalk_view(type->value));
    const bool large =
        r->headers_in.content_length_n > static_cast<off_t>(dingtalk::kMaxActionForm);
    if (cross != nullptr || !form || large) {
        const ngx_int_t rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
        return cross  ? refuse(r, NGX_HTTP_FORBIDDEN, "表单无效", cross)
               : form ? refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "表单无效",
                               "表单超出了本页表单的大小。")
                      : refuse(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "表单无效",
                               "这里只接受本页的表单。");
    }
    const ngx_int_t rc = ngx_http_read_client_request_body(r, form_read);
    return rc >= NGX_HTTP_SPECIAL_RESPONSE ? rc : NGX_DONE;
}

} // namespace

dingtalk::AlertmanagerApi ngx_http_dingtalk_alertmanager_api(const dingtalk::Settings &s)
{
    // dingtalk_proxy and dingtalk_ssl_trusted_certificate are DingTalk's way out: Alertmanager
    // is reached directly, verified against the system's CAs (docs/design.md).
    dingtalk::AlertmanagerApi api;
    api.url = s.alertmanager_url;
    api.authorization = s.alertmanager_authorization;
    return api;
}

ngx_int_t ngx_http_dingtalk_action_handler(ngx_http_request_t *r) noexcept
{
    try {
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD | NGX_HTTP_POST))) {
            return NGX_HTTP_NOT_ALLOWED;
        }
        if (r != r->main) {
            return NGX_HTTP_NOT_ALLOWED; // a subrequest neither acts nor shows the page
        }
        auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
        const dingtalk::Settings &s = **lcf->settings;
        if (!s.action_keys || s.action_keys->empty()) { // nginx -t refuses it (check_action)
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: dingtalk_action without dingtalk_action_key_file");
            return send_page(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             refusal("未配置", "这个地址没有配置操作密钥。"));
        }
        if (r->method & NGX_HTTP_POST) {
            return post_form(r);
        }
        const ngx_int_t rc = ngx_http_discard_request_body(r);
        return rc != NGX_OK ? rc : answer_link(r, s);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: the action page failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
