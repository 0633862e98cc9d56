// nginx glue: directives, the content handler, the hand-off to nginx's thread pool, and the reply.
// Everything DingTalk- or Alertmanager-specific lives in the C++ core (delivery.hpp and below).
//
// Request flow: handler -> read body -> body handler (evaluate variables, copy what the thread
// needs into a Delivery, post a task; request marked blocked with a deadline timer) -> pool
// thread runs Delivery::run() -> completion event in this worker's loop -> reply, finalize.

#include "ngx.hpp"

#include "delivery.hpp"
#include "zone.hpp"

#include <cstring>
#include <memory>
#include <new>
#include <string>

extern "C" {
extern ngx_module_t ngx_http_dingtalk_module;
}

namespace
{

const char *const kDefaultZone = "Asia/Shanghai";

// The thread may run a little past the delivery timeout (DNS, closing); the deadline timer only
// has to keep the worker alive until the completion event arrives.
const ngx_msec_t kDeadlineSlack = 5000;

struct ngx_http_dingtalk_loc_conf_t {
    ngx_flag_t enable;
    ngx_http_complex_value_t *token;
    ngx_http_complex_value_t *secret;
    ngx_str_t env_token; // ROBOT_TOKEN, when no dingtalk_token applies
    ngx_str_t api_url;
    ngx_str_t thread_pool_name;
    ngx_thread_pool_t *thread_pool;
    ngx_msec_t timeout;
    const dingtalk::Zone *zone;
    ngx_flag_t ssl_verify;
    ngx_str_t ssl_trusted_certificate;
    std::shared_ptr<const std::string> *ca_pem; // the CA file, read at configuration time

    // where "dingtalk;" stands, for errors found when the whole configuration is known
    ngx_str_t file;
    ngx_uint_t line;
};

struct ngx_http_dingtalk_ctx_t {
    ngx_event_t deadline; // keeps a shutting-down worker alive while the thread works
    ngx_http_request_t *r;
    dingtalk::Delivery *delivery;
    unsigned done : 1;
};

// ---------------------------------------------------------------------------------------------
// helpers

std::string_view view(const ngx_str_t &s)
{
    return std::string_view(reinterpret_cast<const char *>(s.data), s.len);
}

bool is_token(std::string_view t)
{
    if (t.empty()) {
        return false;
    }
    for (const char c : t) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

bool is_secret(std::string_view s)
{
    if (s.size() < 4 || s.substr(0, 3) != "SEC") {
        return false;
    }
    for (const char c : s.substr(3)) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

template <class T> void destroy_object(void *data) noexcept
{
    static_cast<T *>(data)->~T();
}

// A C++ object whose lifetime is the pool's: constructed in pool-cleanup storage, destroyed when
// the pool is. For a request pool that is after the thread is done: `blocked` keeps it alive.
template <class T, class... Args> T *pool_new(ngx_pool_t *pool, Args &&...args)
{
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(pool, sizeof(T));
    if (cln == nullptr) {
        return nullptr;
    }
    T *obj = new (cln->data) T(std::forward<Args>(args)...);
    cln->handler = destroy_object<T>;
    return obj;
}

ngx_int_t send_json(ngx_http_request_t *r, ngx_uint_t status, const std::string &body,
                    ngx_uint_t retry_after = 0, bool allow = false)
{
    r->headers_out.status = status;
    r->headers_out.content_length_n = static_cast<off_t>(body.size());
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = nullptr;

    if (retry_after > 0 || allow) {
        ngx_table_elt_t *h = static_cast<ngx_table_elt_t *>(ngx_list_push(&r->headers_out.headers));
        if (h == nullptr) {
            return NGX_ERROR;
        }
        h->hash = 1;
#if (nginx_version >= 1023000)
        h->next = nullptr;
#endif
        if (allow) {
            ngx_str_set(&h->key, "Allow");
            ngx_str_set(&h->value, "GET, HEAD, POST");
        } else {
            ngx_str_set(&h->key, "Retry-After");
            h->value.data = static_cast<u_char *>(ngx_pnalloc(r->pool, NGX_INT_T_LEN));
            if (h->value.data == nullptr) {
                return NGX_ERROR;
            }
            h->value.len = ngx_sprintf(h->value.data, "%ui", retry_after) - h->value.data;
        }
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

void finish(ngx_http_request_t *r, ngx_uint_t status, const std::string &reason,
            ngx_uint_t retry_after = 0)
{
    ngx_http_finalize_request(
        r, send_json(r, status, dingtalk::reply_json(status < 300, reason), retry_after));
}

// The whole body as one string, from memory buffers and from the temp file nginx spilled it to.
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

// ---------------------------------------------------------------------------------------------
// the thread and the way back

void thread_handler(void *data, ngx_log_t *) noexcept
{
    // Only the Delivery's own memory is touched here: no pools, no logs, no request.
    (*static_cast<dingtalk::Delivery **>(data))->run();
}

void log_outcome(ngx_http_request_t *r, const dingtalk::Report &rep) noexcept
{
    ngx_http_core_loc_conf_t *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    const ngx_uint_t level = rep.outcome == dingtalk::Outcome::delivered     ? NGX_LOG_INFO
                             : rep.outcome == dingtalk::Outcome::bad_request ? NGX_LOG_WARN
                                                                             : NGX_LOG_ERR;
    try {
        const std::string line = rep.summary(); // the core already removed token and secret
        ngx_log_error(level, r->connection->log, 0, "dingtalk \"%V\": %*s", &clcf->name,
                      line.size(), line.data());
    } catch (...) {
        ngx_log_error(level, r->connection->log, 0, "dingtalk \"%V\": status %i", &clcf->name,
                      static_cast<ngx_int_t>(rep.http_status));
    }
}

void resume(ngx_http_request_t *r) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
        ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));
    if (ctx == nullptr || !ctx->done) {
        return; // a write event while the thread still works: nothing to send yet
    }
    r->write_event_handler = ngx_http_request_empty_handler;

    try {
        const dingtalk::Report &rep = ctx->delivery->report();
        const ngx_uint_t retry_after = rep.outcome == dingtalk::Outcome::throttled ? 60 : 0;
        ngx_http_finalize_request(r, send_json(r, static_cast<ngx_uint_t>(rep.http_status),
                                               rep.reply_json(), retry_after));
    } catch (...) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}

void thread_done(ngx_event_t *ev) noexcept
{
    auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(ev->data);
    ngx_http_request_t *r = ctx->r;
    ngx_connection_t *c = r->connection;

    r->main->blocked--;
    r->aio = 0;
    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }
    ctx->done = 1;
    log_outcome(r, ctx->delivery->report());

    // Either our resume(), or nginx's finalizer if the request was terminated meanwhile.
    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}

void deadline_handler(ngx_event_t *ev) noexcept
{
    // A curl call is bounded by its own timeout, so this only fires if the pool is backed up.
    // Finalizing here would free memory the thread still uses: wait for it instead.
    ngx_log_error(NGX_LOG_WARN, ev->log, 0,
                  "dingtalk: delivery still waiting for a thread past its deadline; "
                  "is the thread pool too small?");
    ngx_add_timer(ev, 1000);
}

// ---------------------------------------------------------------------------------------------
// request handling

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
        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_http_get_module_ctx(r, ngx_http_dingtalk_module));

        if (r->connection->error) {
            ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            return;
        }

        std::string body;
        if (!read_body(r, body)) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not read the request body");
            return;
        }

        dingtalk::Target target;
        if (lcf->token != nullptr) {
            if (!evaluate(r, lcf->token, target.token)) {
                finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_token");
                return;
            }
        } else {
            target.token.assign(view(lcf->env_token));
        }
        if (target.token.empty()) {
            finish(r, NGX_HTTP_NOT_FOUND,
                   "no DingTalk robot for this request (dingtalk_token is empty)");
            return;
        }
        if (!is_token(target.token)) {
            // Never spliced into a URL, never logged: only that it was refused.
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: the token from dingtalk_token holds characters DingTalk "
                          "never issues (letters and digits only); refused");
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "dingtalk_token is not a valid robot token");
            return;
        }
        if (lcf->secret != nullptr && !evaluate(r, lcf->secret, target.secret)) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_secret");
            return;
        }
        if (!target.secret.empty() && !is_secret(target.secret)) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: the secret from dingtalk_secret is not \"SEC\" followed by "
                          "hex digits; refused");
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                   "dingtalk_secret is not a valid signing secret");
            return;
        }

        target.api_url.assign(view(lcf->api_url));
        target.timeout = std::chrono::milliseconds(lcf->timeout);
        target.ssl_verify = lcf->ssl_verify != 0;
        if (lcf->ca_pem != nullptr) {
            target.ca_pem = *lcf->ca_pem;
        }
        target.zone = lcf->zone;

        ctx->delivery = pool_new<dingtalk::Delivery>(r->pool, std::move(target), std::move(body));
        ngx_thread_task_t *task = ngx_thread_task_alloc(r->pool, sizeof(dingtalk::Delivery *));
        if (ctx->delivery == nullptr || task == nullptr) {
            finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
            return;
        }
        *static_cast<dingtalk::Delivery **>(task->ctx) = ctx->delivery;
        task->handler = thread_handler;
        task->event.handler = thread_done;
        task->event.data = ctx;

        if (ngx_thread_task_post(lcf->thread_pool, task) != NGX_OK) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: thread pool \"%V\" queue is full; raise max_queue (or "
                          "threads) in its \"thread_pool\" directive",
                          &lcf->thread_pool_name);
            finish(r, NGX_HTTP_SERVICE_UNAVAILABLE, "busy: the delivery queue is full, retry later",
                   5);
            return;
        }

        // As nginx's own threaded I/O does: the request cannot be freed while the task runs.
        r->main->blocked++;
        r->aio = 1;
        r->write_event_handler = resume;

        ctx->deadline.handler = deadline_handler;
        ctx->deadline.data = r->connection; // timer debug logging reads data as a connection
        ctx->deadline.log = r->connection->log;
        ngx_add_timer(&ctx->deadline, lcf->timeout + kDeadlineSlack);
    } catch (...) {
        finish(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal error");
    }
}

ngx_int_t content_handler(ngx_http_request_t *r) noexcept
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
            return send_json(r, NGX_HTTP_OK,
                             dingtalk::reply_json(true, "ngx_http_dingtalk_module is ready: POST "
                                                        "Alertmanager webhooks here"));
        }

        if (!(r->method & NGX_HTTP_POST)) {
            ngx_int_t rc = ngx_http_discard_request_body(r);
            if (rc != NGX_OK) {
                return rc;
            }
            return send_json(r, NGX_HTTP_NOT_ALLOWED,
                             dingtalk::reply_json(false, "method not allowed: POST Alertmanager "
                                                         "webhooks, GET for health"),
                             0, true);
        }

        auto *ctx = static_cast<ngx_http_dingtalk_ctx_t *>(
            ngx_pcalloc(r->pool, sizeof(ngx_http_dingtalk_ctx_t)));
        if (ctx == nullptr) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
        ctx->r = r;
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

// ---------------------------------------------------------------------------------------------
// configuration

char *set_dingtalk(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->enable != NGX_CONF_UNSET) {
        return const_cast<char *>("is duplicate");
    }
    dlcf->enable = 1;
    dlcf->file = cf->conf_file->file.name;
    dlcf->line = cf->conf_file->line;

    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = content_handler;
    return NGX_CONF_OK;
}

char *set_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->token->lengths != nullptr) {
        return NGX_CONF_OK; // variables: checked per request
    }
    const std::string_view t = view(dlcf->token->value);
    if (t.find("access_token=") != std::string_view::npos ||
        t.find("://") != std::string_view::npos) {
        return const_cast<char *>("takes the access_token value from the robot's webhook URL, "
                                  "not the whole URL");
    }
    if (!is_token(t)) {
        return const_cast<char *>("is not a DingTalk robot token (letters and digits only)");
    }
    return NGX_CONF_OK;
}

char *set_secret(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->secret->lengths == nullptr && !is_secret(view(dlcf->secret->value))) {
        return const_cast<char *>("is not a DingTalk signing secret (\"SEC\" followed by hex "
                                  "digits, as the robot's security settings show it)");
    }
    return NGX_CONF_OK;
}

char *set_api_url(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    std::string_view url = view(dlcf->api_url);
    std::size_t host_at;
    if (url.size() > 7 && ngx_strncasecmp(dlcf->api_url.data, (u_char *)"http://", 7) == 0) {
        host_at = 7;
    } else if (url.size() > 8 &&
               ngx_strncasecmp(dlcf->api_url.data, (u_char *)"https://", 8) == 0) {
        host_at = 8;
    } else {
        return const_cast<char *>("must be an http:// or https:// URL");
    }
    for (const char c : url) {
        if (static_cast<unsigned char>(c) <= 0x20 || c == '#' ||
            static_cast<unsigned char>(c) >= 0x7F) {
            return const_cast<char *>("must be a URL without spaces, fragments or non-ASCII bytes");
        }
    }
    if (url[host_at] == '/' || url[host_at] == '?' || url[host_at] == ':') {
        return const_cast<char *>("has no host name");
    }
    if (url.find("access_token=") != std::string_view::npos) {
        return const_cast<char *>("must not hold the access token: use dingtalk_token");
    }
    return NGX_CONF_OK;
}

char *set_timezone(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->zone != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    ngx_str_t *value = static_cast<ngx_str_t *>(cf->args->elts);
    try {
        std::string error;
        auto zone = dingtalk::Zone::find(view(value[1]), error);
        if (!zone) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_timezone: %s", error.c_str());
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        dlcf->zone = pool_new<dingtalk::Zone>(cf->pool, *zone);
        return dlcf->zone ? NGX_CONF_OK : static_cast<char *>(NGX_CONF_ERROR);
    } catch (...) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
}

char *set_ssl_verify(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_flag_slot(cf, cmd, conf);
    if (rv == NGX_CONF_OK && static_cast<ngx_http_dingtalk_loc_conf_t *>(conf)->ssl_verify == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "dingtalk_ssl_verify is off: DingTalk's certificate and host name "
                           "will not be checked, and the robot token can be intercepted");
    }
    return rv;
}

// The CA bundle is read here, by the master (usually root), not by workers at send time: a file
// only root can read works, and a missing one fails "nginx -t" rather than every delivery.
char *set_trusted_certificate(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (ngx_conf_full_name(cf->cycle, &dlcf->ssl_trusted_certificate, 1) != NGX_OK) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    try {
        std::string path(view(dlcf->ssl_trusted_certificate));
        std::FILE *f = std::fopen(path.c_str(), "rb");
        if (f == nullptr) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                               "dingtalk_ssl_trusted_certificate: cannot open \"%s\"",
                               path.c_str());
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        std::string pem;
        char buf[8192];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) {
            pem.append(buf, n);
        }
        std::fclose(f);
        if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "dingtalk_ssl_trusted_certificate: no PEM certificate in \"%s\"",
                               path.c_str());
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        dlcf->ca_pem = pool_new<std::shared_ptr<const std::string>>(
            cf->pool, std::make_shared<const std::string>(std::move(pem)));
        return dlcf->ca_pem ? NGX_CONF_OK : static_cast<char *>(NGX_CONF_ERROR);
    } catch (...) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
}

void *create_loc_conf(ngx_conf_t *cf) noexcept
{
    auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_dingtalk_loc_conf_t)));
    if (conf == nullptr) {
        return nullptr;
    }
    // ngx_pcalloc set: env_token, api_url, thread_pool_name, ssl_trusted_certificate, file = {},
    // thread_pool, zone, ca_pem = NULL
    conf->enable = NGX_CONF_UNSET;
    conf->token = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
    conf->secret = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->ssl_verify = NGX_CONF_UNSET;
    return conf;
}

// ROBOT_TOKEN as the seed used it. Workers only see variables passed with "env", so it must be
// declared; the value is taken now, so "nginx -t" already knows whether there is one.
char *resolve_env_token(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *ccf =
        reinterpret_cast<ngx_core_conf_t *>(ngx_get_conf(cf->cycle->conf_ctx, ngx_core_module));
    const std::string_view name = "ROBOT_TOKEN";
    bool declared = false;
    std::string value;
    auto *vars = static_cast<ngx_str_t *>(ccf->env.elts);
    for (ngx_uint_t i = 0; i < ccf->env.nelts; ++i) {
        // "env NAME=value;" is stored as the name, with "=value" still after it in memory
        if (view(vars[i]) != name) {
            continue;
        }
        declared = true;
        if (vars[i].data[vars[i].len] == '=') {
            value = reinterpret_cast<const char *>(vars[i].data + vars[i].len + 1);
        } else {
            const char *v = std::getenv("ROBOT_TOKEN");
            value = v ? v : "";
        }
    }

    const char *problem = nullptr;
    if (!declared) {
        problem = "no robot token: set \"dingtalk_token\", or pass ROBOT_TOKEN from the "
                  "environment with \"env ROBOT_TOKEN;\" before the http block";
    } else if (value.empty()) {
        problem = "no robot token: \"dingtalk_token\" is not set and ROBOT_TOKEN is empty or "
                  "not in nginx's environment";
    } else if (!is_token(value)) {
        problem = "ROBOT_TOKEN is not a DingTalk robot token (letters and digits only); "
                  "set the access_token value from the robot's webhook URL";
    }
    if (problem != nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk\" in %V:%ui: %s", &conf->file,
                      conf->line, problem);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    conf->env_token.len = value.size();
    conf->env_token.data = static_cast<u_char *>(ngx_pnalloc(cf->pool, value.size()));
    if (conf->env_token.data == nullptr) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    ngx_memcpy(conf->env_token.data, value.data(), value.size());
    return NGX_CONF_OK;
}

char *merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) noexcept
{
    auto *prev = static_cast<ngx_http_dingtalk_loc_conf_t *>(parent);
    auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(child);
    try {
        ngx_conf_merge_value(conf->enable, NGX_CONF_UNSET, 0);
        ngx_conf_merge_ptr_value(conf->token, prev->token, nullptr);
        ngx_conf_merge_ptr_value(conf->secret, prev->secret, nullptr);
        ngx_conf_merge_str_value(conf->api_url, prev->api_url,
                                 "https://oapi.dingtalk.com/robot/send");
        ngx_conf_merge_str_value(conf->thread_pool_name, prev->thread_pool_name, "default");
        ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 10000);
        ngx_conf_merge_value(conf->ssl_verify, prev->ssl_verify, 1);
        ngx_conf_merge_str_value(conf->ssl_trusted_certificate, prev->ssl_trusted_certificate, "");
        if (conf->ca_pem == nullptr) {
            conf->ca_pem = prev->ca_pem;
        }
        if (conf->zone == nullptr) {
            conf->zone = prev->zone;
        }

        if (!conf->enable) {
            return NGX_CONF_OK;
        }

        if (conf->timeout == 0) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"dingtalk\" in %V:%ui: dingtalk_timeout must be more than 0",
                          &conf->file, conf->line);
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        if (conf->zone == nullptr) {
            std::string error;
            auto zone = dingtalk::Zone::find(kDefaultZone, error);
            if (!zone) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk\" in %V:%ui: %s", &conf->file,
                              conf->line, error.c_str());
                return static_cast<char *>(NGX_CONF_ERROR);
            }
            conf->zone = pool_new<dingtalk::Zone>(cf->pool, *zone);
            if (conf->zone == nullptr) {
                return static_cast<char *>(NGX_CONF_ERROR);
            }
        }
        if (conf->token == nullptr) {
            char *rv = resolve_env_token(cf, conf);
            if (rv != NGX_CONF_OK) {
                return rv;
            }
        }
        conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
        if (conf->thread_pool == nullptr) {
            return static_cast<char *>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    } catch (...) {
        return static_cast<char *>(NGX_CONF_ERROR);
    }
}

ngx_int_t init_process(ngx_cycle_t *) noexcept
{
    // Before any task runs in this worker: neither call is safe to race with a sending thread.
    if (!dingtalk::global_init()) {
        return NGX_ERROR;
    }
    return NGX_OK;
}

void exit_process(ngx_cycle_t *) noexcept
{
    // nginx's thread pools (a core module) are already torn down by now.
    dingtalk::global_cleanup();
}

ngx_command_t ngx_http_dingtalk_commands[] = {
    {ngx_string("dingtalk"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, set_dingtalk,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_token"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_token,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, token), nullptr},
    {ngx_string("dingtalk_secret"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_secret,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, secret), nullptr},
    {ngx_string("dingtalk_api_url"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_api_url,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, api_url), nullptr},
    {ngx_string("dingtalk_thread_pool"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, thread_pool_name), nullptr},
    {ngx_string("dingtalk_timeout"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, timeout), nullptr},
    {ngx_string("dingtalk_timezone"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_timezone,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_ssl_verify"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG, set_ssl_verify,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, ssl_verify), nullptr},
    {ngx_string("dingtalk_ssl_trusted_certificate"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_trusted_certificate, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, ssl_trusted_certificate), nullptr},
    ngx_null_command};

ngx_http_module_t ngx_http_dingtalk_module_ctx = {
    nullptr,         // preconfiguration
    nullptr,         // postconfiguration
    nullptr,         // create main configuration
    nullptr,         // init main configuration
    nullptr,         // create server configuration
    nullptr,         // merge server configuration
    create_loc_conf, // create location configuration
    merge_loc_conf,  // merge location configuration
};

} // namespace

ngx_module_t ngx_http_dingtalk_module = {NGX_MODULE_V1,
                                         &ngx_http_dingtalk_module_ctx, // module context
                                         ngx_http_dingtalk_commands,    // module directives
                                         NGX_HTTP_MODULE,               // module type
                                         nullptr,                       // init master
                                         nullptr,                       // init module
                                         init_process,                  // init process
                                         nullptr,                       // init thread
                                         nullptr,                       // exit thread
                                         exit_process,                  // exit process
                                         nullptr,                       // exit master
                                         NGX_MODULE_V1_PADDING};
