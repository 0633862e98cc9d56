// The action location (dingtalk_action;, issue #25), in the worker's event loop. This far: a
// link's GET answers the confirmation page, or a page saying why the link is refused; a GET
// never acts. The POST that makes the silence (silence_from_link in a pool task) is next:
// until then every other method is 405.

#include "ngx_http_dingtalk.hpp"

#include "action.hpp"
#include "page.hpp"
#include "silence.hpp"

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
                         const dingtalk::ActionKeys &keys, std::int64_t now)
{
    dingtalk::ConfirmPage p;
    p.labels = link.matchers;
    p.duration = link.until_resolved
                     ? "until resolved (at most " + dingtalk::duration_text(link.seconds) + ")"
                     : dingtalk::duration_text(link.seconds);
    p.ends = dingtalk::rfc3339_utc(now + link.seconds);
    p.link_token = std::string(token);
    p.form_token = dingtalk::form_token(token, keys, now);
    return dingtalk::confirm_page(p);
}

ngx_int_t answer_link(ngx_http_request_t *r, const dingtalk::Settings &s)
{
    ngx_str_t arg = ngx_null_string;
    if (ngx_http_arg(r, reinterpret_cast<u_char *>(const_cast<char *>("l")), 1, &arg) != NGX_OK) {
        return send_page(r, NGX_HTTP_BAD_REQUEST,
                         refusal("Link refused", "This address is not a complete action link."));
    }
    const std::string_view token = ngx_http_dingtalk_view(arg);
    const std::int64_t now = ngx_time();
    const dingtalk::VerifiedLink v = dingtalk::verify_link(token, *s.action_keys, now);
    if (v.error != dingtalk::LinkError::none) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "dingtalk: action link refused: %s",
                      dingtalk::to_string(v.error));
        return send_page(r, NGX_HTTP_FORBIDDEN,
                         refusal("Link refused", dingtalk::to_string(v.error)));
    }
    return send_page(r, NGX_HTTP_OK, confirmation(v.link, token, *s.action_keys, now));
}

} // namespace

ngx_int_t ngx_http_dingtalk_action_handler(ngx_http_request_t *r) noexcept
{
    try {
        if (!(r->method & (NGX_HTTP_GET | NGX_HTTP_HEAD))) {
            return NGX_HTTP_NOT_ALLOWED; // the POST is next (docs/design.md)
        }
        const ngx_int_t rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }
        auto *lcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_http_get_module_loc_conf(r, ngx_http_dingtalk_module));
        const dingtalk::Settings &s = **lcf->settings;
        if (!s.action_keys || s.action_keys->empty()) { // nginx -t refuses it (check_action)
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "dingtalk: dingtalk_action without dingtalk_action_key_file");
            return send_page(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                             refusal("Not configured", "This location has no action keys."));
        }
        return answer_link(r, s);
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "dingtalk: the action page failed: %s; answered 500",
                      ngx_http_dingtalk_what(std::current_exception()));
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
