// nginx glue, the module itself: its directives, its configuration's life (create, merge, the
// checks only the whole configuration allows), and each worker's start and end. The parsers
// are in ngx_http_dingtalk_directives.cpp, the request flow in ngx_http_dingtalk_handler.cpp and
// ngx_http_dingtalk_flow.cpp, the shared zone in ngx_http_dingtalk_zone.cpp.

#include "ngx_http_dingtalk_directives.hpp"

#include "sender.hpp"
#include "sign.hpp"
#include "silence.hpp"

#include <cstdlib>
#include <string>

namespace
{

ngx_int_t postconfiguration(ngx_conf_t *cf) noexcept;
void *create_main_conf(ngx_conf_t *cf) noexcept;
char *init_main_conf(ngx_conf_t *cf, void *conf) noexcept;
void *create_loc_conf(ngx_conf_t *cf) noexcept;
char *merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) noexcept;
char *set_zone_size(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
char *set_check_interval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept;
ngx_int_t init_process(ngx_cycle_t *cycle) noexcept;
void exit_process(ngx_cycle_t *cycle) noexcept;

using dingtalk::Settings;

template <ngx_http_dingtalk_parse_pt Parse> constexpr auto directive()
{
    return ngx_http_dingtalk_directive<Parse>;
}

// Where a directive may stand: every level unless said otherwise.
constexpr ngx_uint_t kAny = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;
constexpr ngx_uint_t kLoc = NGX_HTTP_LOC_CONF_OFFSET;

ngx_command_t ngx_http_dingtalk_commands[] = {
    // the webhook location, its robot and who may post to it
    {ngx_string("dingtalk"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
     directive<ngx_http_dingtalk_set_enable>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_token"), kAny | NGX_CONF_TAKE1, directive<ngx_http_dingtalk_set_token>(),
     kLoc, offsetof(ngx_http_dingtalk_loc_conf_t, token), nullptr},
    {ngx_string("dingtalk_token_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_credential_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_credential_file_t *>(&ngx_http_dingtalk_token_file)},
    {ngx_string("dingtalk_secret"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_secret>(), kLoc,
     offsetof(ngx_http_dingtalk_loc_conf_t, secret), nullptr},
    {ngx_string("dingtalk_secret_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_credential_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_credential_file_t *>(&ngx_http_dingtalk_secret_file)},
    {ngx_string("dingtalk_robot_name"), kAny | NGX_CONF_TAKE1, ngx_http_set_complex_value_slot,
     kLoc, offsetof(ngx_http_dingtalk_loc_conf_t, robot_name), nullptr},
    {ngx_string("dingtalk_auth_bearer_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_auth_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_auth_e *>(&ngx_http_dingtalk_auth_bearer)},
    {ngx_string("dingtalk_auth_basic_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_auth_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_auth_e *>(&ngx_http_dingtalk_auth_basic)},
    {ngx_string("dingtalk_verbose_replies"), kAny | NGX_CONF_FLAG,
     directive<ngx_http_dingtalk_set_flag<&Settings::verbose_replies>>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
     directive<ngx_http_dingtalk_set_metrics>(), kLoc, 0, nullptr},

    // how messages travel
    {ngx_string("dingtalk_api_url"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_api_url>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_thread_pool"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_thread_pool>(), kLoc,
     offsetof(ngx_http_dingtalk_loc_conf_t, thread_pool_name), nullptr},
    {ngx_string("dingtalk_timeout"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_time<std::chrono::milliseconds, &Settings::timeout>>(), kLoc,
     0, nullptr},
    {ngx_string("dingtalk_answer_timeout"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_time<std::chrono::milliseconds, &Settings::answer_timeout>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_keepalive_timeout"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_time<std::chrono::seconds, &Settings::keepalive>>(), kLoc, 0,
     nullptr},
    {ngx_string("dingtalk_ssl_verify"), kAny | NGX_CONF_FLAG,
     directive<ngx_http_dingtalk_set_ssl_verify>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_ssl_trusted_certificate"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_trusted_certificate>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_proxy"), kAny | NGX_CONF_TAKE1, directive<ngx_http_dingtalk_set_proxy>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_rate_limit"), kAny | NGX_CONF_TAKE123,
     directive<ngx_http_dingtalk_set_rate_limit>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_fold"), kAny | NGX_CONF_FLAG,
     directive<ngx_http_dingtalk_set_flag<&Settings::fold>>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_store"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_store>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_zone_size"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, set_zone_size,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_dingtalk_main_conf_t, zone_size), nullptr},

    // what a webhook may be
    {ngx_string("dingtalk_max_body_size"), kAny | NGX_CONF_TAKE1,
     directive<
         ngx_http_dingtalk_set_size<&Settings::limits, &dingtalk::ParseLimits::max_body_bytes>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_max_alerts"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_number<1, 10000, &Settings::limits,
                                            &dingtalk::ParseLimits::max_alerts>>(),
     kLoc, 0, nullptr},

    // what the message looks like
    {ngx_string("dingtalk_max_messages"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_number<1, dingtalk::kMaxMessages, &Settings::max_messages>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_timezone"), kAny | NGX_CONF_TAKE12,
     directive<ngx_http_dingtalk_set_timezone>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_template"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_text_template>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_title_template"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_title_template>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_severity_style"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_severity_style>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_hide_labels"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_hide_labels>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_silence_link"), kAny | NGX_CONF_FLAG,
     directive<ngx_http_dingtalk_set_flag<&Settings::silence_link>>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_message_type"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_message_type>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_keyword"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_string<dingtalk::check_keyword, &Settings::keyword>>(), kLoc,
     0, nullptr},

    // silencing from the chat (issue #25)
    {ngx_string("dingtalk_action"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
     directive<ngx_http_dingtalk_set_action>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_action_url"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_string<dingtalk::check_action_url, &Settings::action_url>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_action_key_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_action_key_file>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_action_durations"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_action_durations>(), kLoc, 0, nullptr},
    {ngx_string("dingtalk_action_check_interval"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     set_check_interval, NGX_HTTP_MAIN_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_main_conf_t, check_interval), nullptr},
    {ngx_string("dingtalk_alertmanager_url"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_string<dingtalk::check_alertmanager_url,
                                            &Settings::alertmanager_url>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_alertmanager_bearer_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_alertmanager_auth_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_auth_e *>(&ngx_http_dingtalk_auth_bearer)},
    {ngx_string("dingtalk_alertmanager_basic_file"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_alertmanager_auth_file>(), kLoc, 0,
     const_cast<ngx_http_dingtalk_auth_e *>(&ngx_http_dingtalk_auth_basic)},

    // whom it mentions
    {ngx_string("dingtalk_at_mobiles"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_mention>(), kLoc, 0,
     const_cast<dingtalk::MentionKind *>(&ngx_http_dingtalk_at_mobiles)},
    {ngx_string("dingtalk_at_user_ids"), kAny | NGX_CONF_1MORE,
     directive<ngx_http_dingtalk_set_mention>(), kLoc, 0,
     const_cast<dingtalk::MentionKind *>(&ngx_http_dingtalk_at_user_ids)},
    {ngx_string("dingtalk_at_all"), kAny | NGX_CONF_TAKE12,
     directive<ngx_http_dingtalk_set_mention>(), kLoc, 0,
     const_cast<dingtalk::MentionKind *>(&ngx_http_dingtalk_at_all)},
    {ngx_string("dingtalk_at_mobiles_from"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_string<dingtalk::check_label_name, &Settings::mentions_from,
                                            &dingtalk::MentionSources::mobiles_from>>(),
     kLoc, 0, nullptr},
    {ngx_string("dingtalk_at_user_ids_from"), kAny | NGX_CONF_TAKE1,
     directive<ngx_http_dingtalk_set_string<dingtalk::check_label_name, &Settings::mentions_from,
                                            &dingtalk::MentionSources::user_ids_from>>(),
     kLoc, 0, nullptr},
    ngx_null_command};

ngx_http_module_t ngx_http_dingtalk_module_ctx = {
    nullptr,           // preconfiguration
    postconfiguration, // postconfiguration
    create_main_conf,  // create main configuration
    init_main_conf,    // init main configuration
    nullptr,           // create server configuration
    nullptr,           // merge server configuration
    create_loc_conf,   // create location configuration
    merge_loc_conf,    // merge location configuration
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

namespace
{

const char *const kDefaultTimeZone = "Asia/Shanghai";
const ngx_str_t kZoneName = ngx_string("ngx_http_dingtalk_module");

char *conf_error()
{
    return static_cast<char *>(NGX_CONF_ERROR);
}

// A configuration step that failed in C++: nginx -t says what was thrown.
char *conf_failed(ngx_conf_t *cf, const char *step)
{
    ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "dingtalk: %s failed: %s", step,
                  ngx_http_dingtalk_what(std::current_exception()));
    return conf_error();
}

void *create_main_conf(ngx_conf_t *cf) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_dingtalk_main_conf_t)));
    if (mcf == nullptr) {
        return nullptr;
    }
    mcf->zone_size = NGX_CONF_UNSET_SIZE;
    mcf->check_interval = NGX_CONF_UNSET_MSEC;
    return mcf;
}

char *init_main_conf(ngx_conf_t *, void *conf) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(conf);
    ngx_conf_init_size_value(mcf->zone_size, 1024 * 1024);
    ngx_conf_init_msec_value(mcf->check_interval, 15000);
    return NGX_CONF_OK;
}

// The zone holds the counters (about 17 KB) and a few pages of robots at least.
char *set_zone_size(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_size_slot(cf, cmd, conf);
    if (rv == NGX_CONF_OK &&
        static_cast<ngx_http_dingtalk_main_conf_t *>(conf)->zone_size < 16 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_zone_size must be at least %uz",
                           16 * ngx_pagesize);
        return conf_error();
    }
    return rv;
}

// dingtalk_action_check_interval: from 1s to 10m ("within a minute" is the promise at 15s).
char *set_check_interval(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_msec_slot(cf, cmd, conf);
    const ngx_msec_t v = static_cast<ngx_http_dingtalk_main_conf_t *>(conf)->check_interval;
    if (rv == NGX_CONF_OK && (v < 1000 || v > 600000)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dingtalk_action_check_interval must be from 1s to 10m");
        return conf_error();
    }
    return rv;
}

// After every location is merged: the shared zone exists only when some location sends.
ngx_int_t postconfiguration(ngx_conf_t *cf) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    if (!mcf->used) {
        return NGX_OK;
    }
    if (!dingtalk::library_init()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk: libcurl could not be initialised");
        return NGX_ERROR;
    }
    ngx_str_t name = kZoneName;
    mcf->zone = ngx_shared_memory_add(cf, &name, mcf->zone_size, &ngx_http_dingtalk_module);
    if (mcf->zone == nullptr) {
        return NGX_ERROR;
    }
    if (mcf->zone->data == nullptr) {
        mcf->zone->data = ngx_http_dingtalk_zone_ctx(cf, name);
        if (mcf->zone->data == nullptr) {
            return NGX_ERROR;
        }
    }
    mcf->zone->init = ngx_http_dingtalk_init_zone;
    return NGX_OK;
}

void *create_loc_conf(ngx_conf_t *cf) noexcept
{
    try {
        auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
            ngx_pcalloc(cf->pool, sizeof(ngx_http_dingtalk_loc_conf_t)));
        if (conf == nullptr) {
            return nullptr;
        }
        // ngx_pcalloc set: file, env_token, thread_pool_name = {}; thread_pool = NULL
        conf->enable = NGX_CONF_UNSET;
        conf->token = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
        conf->secret = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
        conf->robot_name = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
        conf->settings = ngx_http_dingtalk_pool_new<std::shared_ptr<Settings>>(
            cf->pool, std::make_shared<Settings>());
        conf->own = ngx_array_create(cf->pool, 4, sizeof(ngx_http_dingtalk_copy_pt));
        return conf->settings && conf->own ? conf : nullptr;
    } catch (...) {
        conf_failed(cf, "creating a location's configuration");
        return nullptr;
    }
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
        if (ngx_http_dingtalk_view(vars[i]) != name) {
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
    } else if (!dingtalk::valid_token(value)) {
        problem = "ROBOT_TOKEN is not a DingTalk robot token (letters and digits only); "
                  "set the access_token value from the robot's webhook URL";
    }
    if (problem != nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk\" in %V:%ui: %s", &conf->file,
                      conf->line, problem);
        return conf_error();
    }
    conf->env_token.len = value.size();
    conf->env_token.data = static_cast<u_char *>(ngx_pnalloc(cf->pool, value.size()));
    if (conf->env_token.data == nullptr) {
        return conf_error();
    }
    ngx_memcpy(conf->env_token.data, value.data(), value.size());
    return NGX_CONF_OK;
}

// The settings of the level around, with the fields this level's directives set: each field is
// one level's, never a mix (the mention rules, styles and credentials of one level replace
// those around it as a whole).
void merge_settings(const ngx_http_dingtalk_loc_conf_t *prev, ngx_http_dingtalk_loc_conf_t *conf)
{
    Settings merged = **prev->settings;
    const auto *own = static_cast<const ngx_http_dingtalk_copy_pt *>(conf->own->elts);
    for (ngx_uint_t i = 0; i < conf->own->nelts; ++i) {
        own[i](merged, **conf->settings);
    }
    **conf->settings = std::move(merged);
}

void merge_values(const ngx_http_dingtalk_loc_conf_t *prev, ngx_http_dingtalk_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->token, prev->token, nullptr);
    ngx_conf_merge_ptr_value(conf->secret, prev->secret, nullptr);
    ngx_conf_merge_ptr_value(conf->robot_name, prev->robot_name, nullptr);
    if (conf->thread_pool == nullptr) {
        conf->thread_pool_name = prev->thread_pool_name;
        conf->thread_pool = prev->thread_pool;
    }
    merge_settings(prev, conf);
}

// "limit_except" makes a location of its own inside the webhook location: it must serve the
// webhook too (as proxy_pass does), or an allowed POST falls through to the static files.
void inherit_into_limit_except(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *prev,
                               ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (conf->enable == NGX_CONF_UNSET && clcf->lmt_excpt && prev->enable == 1 &&
        clcf->handler == nullptr) {
        conf->enable = 1;
        conf->file = prev->file;
        conf->line = prev->line;
        clcf->handler = ngx_http_dingtalk_handler;
    }
    ngx_conf_merge_value(conf->enable, NGX_CONF_UNSET, 0);
}

// The token as it is known now (a literal, a file or ROBOT_TOKEN), or "" when it comes from
// variables.
std::string_view static_token(const ngx_http_dingtalk_loc_conf_t *conf)
{
    if (conf->token == nullptr) {
        return ngx_http_dingtalk_view(conf->env_token);
    }
    return conf->token->lengths == nullptr ? ngx_http_dingtalk_view(conf->token->value) : "";
}

// One token, two names in the configuration: its metrics would change name with every
// delivery. Refused where both are known.
char *check_robot_name(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    const std::string_view token = static_token(conf);
    if (token.empty() || conf->robot_name == nullptr || conf->robot_name->lengths != nullptr) {
        return NGX_CONF_OK;
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    if (mcf->named == nullptr) {
        mcf->named = ngx_array_create(cf->pool, 4, sizeof(ngx_http_dingtalk_named_robot_t));
        if (mcf->named == nullptr) {
            return conf_error();
        }
    }
    const auto key = dingtalk::robot_key(token);
    const ngx_str_t &name = conf->robot_name->value;
    auto *named = static_cast<ngx_http_dingtalk_named_robot_t *>(mcf->named->elts);
    for (ngx_uint_t i = 0; i < mcf->named->nelts; ++i) {
        if (ngx_memcmp(named[i].key, key.data(), kRobotKeySize) != 0) {
            continue;
        }
        if (ngx_http_dingtalk_view(named[i].name) == ngx_http_dingtalk_view(name)) {
            return NGX_CONF_OK;
        }
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dingtalk\" in %V:%ui: dingtalk_robot_name \"%V\" names a robot that is "
                      "already named \"%V\" in %V:%ui (one token, one name)",
                      &conf->file, conf->line, &name, &named[i].name, &named[i].file,
                      named[i].line);
        return conf_error();
    }
    auto *entry = static_cast<ngx_http_dingtalk_named_robot_t *>(ngx_array_push(mcf->named));
    if (entry == nullptr) {
        return conf_error();
    }
    ngx_memcpy(entry->key, key.data(), kRobotKeySize);
    entry->name = name;
    entry->file = conf->file;
    entry->line = conf->line;
    return NGX_CONF_OK;
}

// A setting that only the whole configuration can check; "" when fine.
// dingtalk_timezone's default where none is set: messages and the action pages show times in it.
std::string default_timezone(Settings &s)
{
    if (!s.timezone) {
        std::string error;
        auto tz = dingtalk::TimeZone::find(kDefaultTimeZone, error);
        if (!tz) {
            return error;
        }
        s.timezone = std::make_shared<const dingtalk::TimeZone>(std::move(*tz));
    }
    return "";
}

std::string check_settings(Settings &s)
{
    if (s.timeout.count() == 0) {
        return "dingtalk_timeout must be more than 0";
    }
    if (s.rate && s.max_messages > s.rate->count) {
        return "dingtalk_max_messages " + std::to_string(s.max_messages) + " is more than the " +
               std::to_string(s.rate->count) +
               " messages dingtalk_rate_limit allows at once: such a notification could never be "
               "sent";
    }
    return default_timezone(s);
}

// nginx's "default" thread pool where the location names none (dingtalk_thread_pool).
bool default_thread_pool(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    if (conf->thread_pool == nullptr) {
        ngx_str_set(&conf->thread_pool_name, "default");
        conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
    }
    return conf->thread_pool != nullptr;
}

// What only a sending location needs: sound settings, a token, a thread pool.
char *check_sender(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    if (const std::string why = check_settings(**conf->settings); !why.empty()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk\" in %V:%ui: %s", &conf->file,
                      conf->line, why.c_str());
        return conf_error();
    }
    if (conf->token == nullptr) {
        char *rv = resolve_env_token(cf, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }
    if (!default_thread_pool(cf, conf)) {
        return conf_error();
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    mcf->used = 1;
    mcf->store = mcf->store || (*conf->settings)->store != nullptr;
    const Settings &s = **conf->settings;
    if (s.action_card && (s.mentions || !s.mentions_from.empty())) {
        ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                      "\"dingtalk\" in %V:%ui: a message that mentions someone goes as markdown, "
                      "not actionCard: DingTalk documents no mentions for actionCard",
                      &conf->file, conf->line);
    }
    return check_robot_name(cf, conf);
}

// A location with dingtalk_action needs keys to check its links with and an Alertmanager to
// silence in (set there or around it), and a thread pool to ask it from.
char *check_action(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->handler != ngx_http_dingtalk_action_handler) {
        return NGX_CONF_OK;
    }
    if (const std::string why = default_timezone(**conf->settings); !why.empty()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk_action\" in location \"%V\": %s",
                      &clcf->name, why.c_str());
        return conf_error();
    }
    const Settings &s = **conf->settings;
    const char *missing = !s.action_keys || s.action_keys->empty() ? "dingtalk_action_key_file"
                          : s.alertmanager_url.empty()             ? "dingtalk_alertmanager_url"
                                                                   : nullptr;
    if (missing != nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk_action\" in location \"%V\" needs %s",
                      &clcf->name, missing);
        return conf_error();
    }
    if (!default_thread_pool(cf, conf)) {
        return conf_error();
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    mcf->used = 1; // the zone counts the actions; libcurl is set up
    mcf->actions = true;
    return ngx_http_dingtalk_add_alertmanager(cf, s, conf->thread_pool) ? NGX_CONF_OK
                                                                        : conf_error();
}

char *merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) noexcept
{
    auto *prev = static_cast<ngx_http_dingtalk_loc_conf_t *>(parent);
    auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(child);
    try {
        ngx_http_dingtalk_fault("merge");
        inherit_into_limit_except(cf, prev, conf);
        merge_values(prev, conf);
        return conf->enable ? check_sender(cf, conf) : check_action(cf, conf);
    } catch (...) {
        return conf_failed(cf, "merging the configuration");
    }
}

// Kept-alive connections idle past dingtalk_keepalive_timeout are closed by this timer of the
// worker, not left open until a next delivery (DingTalk drops them on its side anyway; each
// holds a socket and its TLS state). A cancelable timer: it does not hold up a graceful exit.
// nginx's debug log names a timer by the fd of the connection in its data: none here.
ngx_event_t idle_sweep;
ngx_connection_t idle_sweep_ident;

void sweep_idle(ngx_event_t *ev) noexcept
{
    if (const auto next = dingtalk::close_idle_connections()) {
        ngx_add_timer(ev, static_cast<ngx_msec_t>(next->count()) + 1);
    }
}

ngx_int_t init_process(ngx_cycle_t *cycle) noexcept
{
    idle_sweep_ident.fd = static_cast<ngx_socket_t>(-1);
    idle_sweep.data = &idle_sweep_ident;
    idle_sweep.handler = sweep_idle;
    idle_sweep.log = cycle->log;
    idle_sweep.cancelable = 1;
    // Before any task runs in this worker: neither call is safe to race with a sending thread.
    if (!dingtalk::global_init()) {
        return NGX_ERROR;
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dingtalk_module));
    if (mcf != nullptr && mcf->zone != nullptr) {
        ngx_http_dingtalk_reset_gauges(mcf->zone);
    }
    ngx_http_dingtalk_resolved_start(cycle);
    return NGX_OK;
}

void exit_process(ngx_cycle_t *) noexcept
{
    // nginx's thread pools (a core module) are already torn down by now.
    dingtalk::global_cleanup();
}

} // namespace

void ngx_http_dingtalk_watch_idle(time_t keepalive) noexcept
{
    const ngx_msec_t due = ngx_current_msec + static_cast<ngx_msec_t>(keepalive) * 1000 + 1;
    if (!idle_sweep.timer_set || static_cast<ngx_msec_int_t>(idle_sweep.timer.key - due) > 0) {
        ngx_add_timer(&idle_sweep, due - ngx_current_msec);
    }
}

#if defined(DINGTALK_FAULTS)
void ngx_http_dingtalk_fault(const char *point)
{
    const char *armed = std::getenv("DINGTALK_FAULT");
    if (armed != nullptr && std::string_view(armed) == point) {
        throw std::bad_alloc();
    }
}
#endif
