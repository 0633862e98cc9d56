// A webhook request until its delivery starts, in the worker's event loop:
//
//   credentials? origin? (401, 403) -> GET: health; not POST: 405 -> not JSON: 415
//     -> declared too large: 413 -> read the body -> read too large: 413
//     -> token, secret, robot name (404, 500 when they cannot be) -> ngx_http_dingtalk_deliver
//
// Everything refused here is refused before anything is sent, with a JSON reason. The replies
// of the whole module are made here too, and the metrics page.

#include "ngx_http_dingtalk.hpp"

#include "delivery.hpp"
#include "sign.hpp"

#include <string>

namespace
{

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

void count_ending(ngx_http_request_t *r, dingtalk::Ending ending)
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_get_module_main_conf(r, ngx_http_dingtalk_module));
    if (mcf->zone != nullptr) {
        ngx_http_dingtalk_count_ending(mcf->zone, ending);
    }
}

// A request refused after its body was read, before a delivery started.
void refuse(ngx_http_request_t *r, ngx_uint_t status, const std::string &reason,
            dingtalk::Ending ending)
{
    count_ending(r, ending);
    ngx_http_finalize_request(
        r, ngx_http_dingtalk_send_json(r, status, dingtalk::reply_json(false, reason)));
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
    count_ending(r, ending);
    return send_json(r, status, dingtalk::reply_json(false, reason), header, value);
}

} // namespace

bool ngx_http_dingtalk_read_body(ngx_http_request_t *r, std::string &out)
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

off_t ngx_http_dingtalk_body_size(ngx_http_request_t *r)
{
    off_t size = 0;
    for (ngx_chain_t *cl = r->request_body ? r->request_body->bufs : nullptr; cl; cl = cl->next) {
        size += ngx_buf_size(cl->buf);
    }
    return size;
}

namespace
{

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
    count_ending(r, dingtalk::Ending::bad_request);
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
const refusal_t *credentials(ngx_http_request_t *r, const ngx_http_dingtalk_loc_conf_t *lcf,
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

// The robot by its token's key, named by dingtalk_robot_name or "robot-" and 8 hex digits of
// the token's hash; never by the token.
ngx_http_dingtalk_robot_t *robot_of(ngx_http_request_t *r, const ngx_http_dingtalk_loc_conf_t *lcf,
                                    const dingtalk::Target &t)
{
    auto *robot = ngx_http_dingtalk_pool_new<ngx_http_dingtalk_robot_t>(r->pool);
    ngx_http_complex_value_t *cv = lcf->robot_name;
    std::string name;
    if (robot == nullptr || (cv != nullptr && !evaluate(r, cv, name))) {
        return nullptr;
    }
    const auto key = dingtalk::robot_key(t.token);
    ngx_memcpy(robot->key, key.data(), kRobotKeySize);
    robot->static_name = cv != nullptr && cv->lengths == nullptr;
    if (name.find(t.token) != std::string::npos ||
        (!t.secret.empty() && name.find(t.secret) != std::string::npos)) {
        name.clear();
        robot->static_name = false;
    }
    if (name.empty()) {
        static const char hex[] = "0123456789abcdef";
        name = "robot-";
        for (std::size_t i = 0; i < 4; ++i) {
            name += hex[robot->key[i] >> 4];
            name += hex[robot->key[i] & 0xF];
        }
    }
    robot->name = dingtalk::robot_name(name);
    return robot;
}

void start_delivery(ngx_http_request_t *r, const ngx_http_dingtalk_loc_conf_t *lcf)
{
    std::string body;
    if (!ngx_http_dingtalk_read_body(r, body)) {
        refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not read the request body",
               dingtalk::Ending::internal);
        return;
    }
    dingtalk::Target target;
    if (const refusal_t *no = credentials(r, lcf, target)) {
        refuse(r, no->status, no->reason, no->ending);
        return;
    }
    target.settings = *lcf->settings;
    ngx_http_dingtalk_robot_t *robot = robot_of(r, lcf, target);
    if (robot == nullptr) {
        refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "could not evaluate dingtalk_robot_name",
               dingtalk::Ending::internal);
        return;
    }
    if (!ngx_http_dingtalk_deliver(r, robot, std::move(target), std::move(body))) {
        refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "out of memory", dingtalk::Ending::internal);
    }
}

void body_handler(ngx_http_request_t *r) noexcept
{
    try {
        ngx_http_dingtalk_fault("body");
        auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
        if (r->connection->error) {
            ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
            return;
        }
        const std::size_t max = (*lcf->settings)->limits.max_body_bytes;
        const off_t size = ngx_http_dingtalk_body_size(r);
        if (size > static_cast<off_t>(max)) {
            ngx_http_finalize_request(r, too_large(r, size, max));
            return;
        }
        start_delivery(r, lcf);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: reading the webhook failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        try {
            refuse(r, NGX_HTTP_INTERNAL_SERVER_ERROR, "internal error", dingtalk::Ending::internal);
        } catch (...) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }
    }
}

} // namespace

const ngx_table_elt_t *ngx_http_dingtalk_request_header(ngx_http_request_t *r,
                                                        std::string_view name)
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

namespace
{

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

// Who may post, and from where: credentials when the location asks for them (every method:
// strangers learn nothing, not even that this is a webhook), never from a browser page.
ngx_int_t gatekeeper(ngx_http_request_t *r, const dingtalk::Settings &s)
{
    static const ngx_str_t challenge = ngx_string("WWW-Authenticate"),
                           bearer = ngx_string("Bearer realm=\"dingtalk\""),
                           basic = ngx_string("Basic realm=\"dingtalk\", charset=\"UTF-8\"");
    if (s.auth != nullptr) {
        const ngx_table_elt_t *h = r->headers_in.authorization;
        const std::string_view given = h ? ngx_http_dingtalk_view(h->value) : "";
        if (!s.auth->allows(given)) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "dingtalk: %s credentials; answered 401",
                          h ? "wrong" : "no"); // never the credentials themselves
            return refuse_early(r, NGX_HTTP_UNAUTHORIZED,
                                "authorization required: the credentials Alertmanager's "
                                "http_config sends (authorization or basic_auth)",
                                dingtalk::Ending::unauthorized, &challenge,
                                s.auth->wants_basic() ? &basic : &bearer);
        }
    }
    if (ngx_http_dingtalk_request_header(r, "Origin") != nullptr) {
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

ngx_int_t handle(ngx_http_request_t *r)
{
    if (r != r->main) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "dingtalk: a webhook location cannot serve a subrequest");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
        ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
    const dingtalk::Settings &s = **lcf->settings;
    if (ngx_int_t rc = gatekeeper(r, s); rc != NGX_DECLINED) {
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
    if (declared > static_cast<off_t>(s.limits.max_body_bytes)) {
        ngx_int_t rc = ngx_http_discard_request_body(r);
        return rc != NGX_OK ? rc : too_large(r, declared, s.limits.max_body_bytes);
    }
    ngx_int_t rc = ngx_http_read_client_request_body(r, body_handler);
    return rc >= NGX_HTTP_SPECIAL_RESPONSE ? rc : NGX_DONE;
}

} // namespace

ngx_int_t ngx_http_dingtalk_send_json(ngx_http_request_t *r, ngx_uint_t status,
                                      const std::string &body, ngx_uint_t retry_after)
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

ngx_int_t ngx_http_dingtalk_handler(ngx_http_request_t *r) noexcept
{
    try {
        ngx_http_dingtalk_fault("handler");
        return handle(r);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: the webhook handler failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
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
        dingtalk::MetricsSnapshot snapshot =
            mcf->zone ? ngx_http_dingtalk_snapshot(mcf->zone) : dingtalk::MetricsSnapshot();
        snapshot.store = mcf->store;
        snapshot.actions = mcf->actions;
        const std::string text = dingtalk::to_prometheus(snapshot);
        static const ngx_str_t type = ngx_string("text/plain; version=0.0.4; charset=utf-8");
        return send_body(r, NGX_HTTP_OK, type, text);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: the metrics page failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
