// The directives' parsers, for the table in ngx_http_dingtalk_module.cpp. Each writes into its
// level's settings and claims the field it set, so that merging takes every other field from
// the level around it. A new directive: a field in dingtalk::Settings, an entry in the table
// (with a parser below or one of its own) and its use.
#pragma once

#include "ngx_http_dingtalk.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>

// Wraps a parser for the table: what it throws fails "nginx -t" with the directive, the file and
// line (ngx_conf_log_error adds them) and what was thrown, never crosses into nginx.
using ngx_http_dingtalk_parse_pt = char *(*)(ngx_conf_t *, ngx_command_t *,
                                             ngx_http_dingtalk_loc_conf_t *);

template <ngx_http_dingtalk_parse_pt Parse>
char *ngx_http_dingtalk_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    try {
        ngx_http_dingtalk_fault("directive");
        return Parse(cf, cmd, static_cast<ngx_http_dingtalk_loc_conf_t *>(conf));
    } catch (...) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" failed: %s", &cmd->name,
                           ngx_http_dingtalk_what(std::current_exception()));
        return static_cast<char *>(NGX_CONF_ERROR);
    }
}

// The field a path of members names: &Settings::limits, &ParseLimits::max_alerts ...
template <auto... Path, class S> auto &ngx_http_dingtalk_field(S &settings)
{
    return (settings.*....*Path);
}

template <auto... Path>
void ngx_http_dingtalk_copy_field(dingtalk::Settings &to, const dingtalk::Settings &from)
{
    ngx_http_dingtalk_field<Path...>(to) = ngx_http_dingtalk_field<Path...>(from);
}

// Records that this level's directives set the field `copy` copies: false when one already did.
bool ngx_http_dingtalk_claim(ngx_http_dingtalk_loc_conf_t *conf, ngx_http_dingtalk_copy_pt copy);

// This level's settings, to write into while the configuration is read.
inline dingtalk::Settings &ngx_http_dingtalk_own(ngx_http_dingtalk_loc_conf_t *conf)
{
    return **conf->settings;
}

// The field at Path, claimed for this level; nullptr when it was set already ("is duplicate").
template <auto... Path> auto *ngx_http_dingtalk_claim_field(ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = &ngx_http_dingtalk_field<Path...>(ngx_http_dingtalk_own(conf));
    return ngx_http_dingtalk_claim(conf, ngx_http_dingtalk_copy_field<Path...>) ? field : nullptr;
}

inline char *ngx_http_dingtalk_duplicate()
{
    return const_cast<char *>("is duplicate");
}

inline const ngx_str_t &ngx_http_dingtalk_arg(ngx_conf_t *cf, ngx_uint_t i)
{
    return static_cast<const ngx_str_t *>(cf->args->elts)[i];
}

// The directive has from `min` to `max` arguments; otherwise "nginx -t" says so, and when there
// are more, that an unquoted # (a colour, a markdown heading) made nginx read the rest of the
// line as a comment, and the next line's words as arguments: nullptr when fine.
char *ngx_http_dingtalk_arguments(ngx_conf_t *cf, ngx_command_t *cmd, ngx_uint_t min,
                                  ngx_uint_t max);

// on | off
template <auto... Path>
char *ngx_http_dingtalk_set_flag(ngx_conf_t *cf, ngx_command_t *cmd,
                                 ngx_http_dingtalk_loc_conf_t *conf)
{
    bool *field = ngx_http_dingtalk_claim_field<Path...>(conf);
    const std::string_view v = ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1));
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    if (v != "on" && v != "off") {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, it must be \"on\" or \"off\"",
                           &ngx_http_dingtalk_arg(cf, 1), &cmd->name);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    *field = v == "on";
    return NGX_CONF_OK;
}

// A time, as nginx writes times (10s, 500ms, 1m), kept as milliseconds or seconds.
template <class Duration, auto... Path>
char *ngx_http_dingtalk_set_time(ngx_conf_t *cf, ngx_command_t *,
                                 ngx_http_dingtalk_loc_conf_t *conf)
{
    Duration *field = ngx_http_dingtalk_claim_field<Path...>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    ngx_str_t v = ngx_http_dingtalk_arg(cf, 1);
    constexpr bool seconds = std::is_same_v<Duration, std::chrono::seconds>;
    const ngx_msec_t t = ngx_parse_time(&v, seconds ? 1 : 0);
    if (t == static_cast<ngx_msec_t>(NGX_ERROR)) {
        return const_cast<char *>("invalid value");
    }
    *field = Duration(t);
    return NGX_CONF_OK;
}

// A size, as nginx writes sizes (64k, 1m).
template <auto... Path>
char *ngx_http_dingtalk_set_size(ngx_conf_t *cf, ngx_command_t *,
                                 ngx_http_dingtalk_loc_conf_t *conf)
{
    std::size_t *field = ngx_http_dingtalk_claim_field<Path...>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    ngx_str_t v = ngx_http_dingtalk_arg(cf, 1);
    const ssize_t size = ngx_parse_size(&v);
    if (size == NGX_ERROR) {
        return const_cast<char *>("invalid value");
    }
    *field = static_cast<std::size_t>(size);
    return NGX_CONF_OK;
}

// A whole number from Min to Max.
template <std::size_t Min, std::size_t Max, auto... Path>
char *ngx_http_dingtalk_set_number(ngx_conf_t *cf, ngx_command_t *cmd,
                                   ngx_http_dingtalk_loc_conf_t *conf)
{
    std::size_t *field = ngx_http_dingtalk_claim_field<Path...>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const ngx_str_t &v = ngx_http_dingtalk_arg(cf, 1);
    const ngx_int_t n = ngx_atoi(v.data, v.len);
    if (n == NGX_ERROR) {
        return const_cast<char *>("invalid number");
    }
    if (static_cast<std::size_t>(n) < Min || static_cast<std::size_t>(n) > Max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" directive must be from %uz to %uz",
                           &cmd->name, Min, Max);
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    *field = static_cast<std::size_t>(n);
    return NGX_CONF_OK;
}

// A string the core checks: Check returns why it cannot be, or "".
template <std::string (*Check)(std::string_view), auto... Path>
char *ngx_http_dingtalk_set_string(ngx_conf_t *cf, ngx_command_t *cmd,
                                   ngx_http_dingtalk_loc_conf_t *conf)
{
    if (char *rv = ngx_http_dingtalk_arguments(cf, cmd, 1, 1)) {
        return rv;
    }
    std::string *field = ngx_http_dingtalk_claim_field<Path...>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const std::string_view v = ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1));
    if (const std::string why = Check(v); !why.empty()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", &cmd->name, why.c_str());
        return static_cast<char *>(NGX_CONF_ERROR);
    }
    field->assign(v);
    return NGX_CONF_OK;
}

// The parsers of their own (ngx_http_dingtalk_directives.cpp).
#define NGX_HTTP_DINGTALK_PARSER(name)                                                             \
    char *name(ngx_conf_t *cf, ngx_command_t *cmd, ngx_http_dingtalk_loc_conf_t *conf)

NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_enable);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_token);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_secret);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_credential_file);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_api_url);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_thread_pool);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_timezone);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_ssl_verify);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_trusted_certificate);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_proxy);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_rate_limit);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_store);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_text_template);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_title_template);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_severity_style);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_mention);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_auth_file);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_hide_labels);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_message_type);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_metrics);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_action);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_action_key_file);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_action_durations);
NGX_HTTP_DINGTALK_PARSER(ngx_http_dingtalk_set_alertmanager_auth_file);

#undef NGX_HTTP_DINGTALK_PARSER

// What a credential file holds (dingtalk_token_file, dingtalk_secret_file: the command's post).
struct ngx_http_dingtalk_credential_file_t {
    std::size_t slot; // offsetof the complex value in the location's configuration
    bool (*valid)(std::string_view);
    const char *what; // for the error
};
extern const ngx_http_dingtalk_credential_file_t ngx_http_dingtalk_token_file;
extern const ngx_http_dingtalk_credential_file_t ngx_http_dingtalk_secret_file;

// What an auth file holds (dingtalk_auth_bearer_file, dingtalk_auth_basic_file).
enum class ngx_http_dingtalk_auth_e { bearer, basic };
extern const ngx_http_dingtalk_auth_e ngx_http_dingtalk_auth_bearer;
extern const ngx_http_dingtalk_auth_e ngx_http_dingtalk_auth_basic;

// Whom a dingtalk_at_* directive names.
extern const dingtalk::MentionKind ngx_http_dingtalk_at_mobiles;
extern const dingtalk::MentionKind ngx_http_dingtalk_at_user_ids;
extern const dingtalk::MentionKind ngx_http_dingtalk_at_all;
