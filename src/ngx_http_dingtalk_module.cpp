// nginx glue, part 1: directives, configuration, and the module itself. The request flow is in
// ngx_http_dingtalk_handler.cpp, the shared zone in ngx_http_dingtalk_zone.cpp; everything
// DingTalk- or Alertmanager-specific is in the C++ core (delivery.hpp and below).

#include "ngx_http_dingtalk.hpp"

#include "sender.hpp"
#include "sign.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace
{

const char *const kDefaultZone = "Asia/Shanghai";
const ngx_str_t kZoneName = ngx_string("ngx_http_dingtalk_module");

char *conf_error()
{
    return static_cast<char *>(NGX_CONF_ERROR);
}

// The largest files the directives read: a token is 64 characters, a CA bundle a few hundred
// kilobytes (Debian's is about 220 KB).
constexpr std::size_t kMaxTokenFile = 4096;
constexpr std::size_t kMaxTemplateFile = 1024 * 1024;
constexpr std::size_t kMaxCaFile = 16 * 1024 * 1024;

// Reads a file named by a directive (relative names from nginx's prefix), in the master at
// configuration time: the workers' user need not be able to read it. Errors name the
// directive and the file; nginx adds the configuration file and line. A file over `max` bytes
// is refused, never cut.
bool read_conf_file(ngx_conf_t *cf, const char *directive, ngx_str_t name, std::string &out,
                    std::size_t max)
{
    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return false;
    }
    const std::string path(ngx_http_dingtalk_view(name));
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "%s: cannot open \"%s\"", directive,
                           path.c_str());
        return false;
    }
    char buf[8192];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0 && out.size() <= max) {
        out.append(buf, n);
    }
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "%s: cannot read \"%s\"", directive,
                           path.c_str());
        return false;
    }
    if (out.size() > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: \"%s\" is larger than %uz bytes", directive,
                           path.c_str(), max);
        return false;
    }
    return true;
}

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
    clcf->handler = ngx_http_dingtalk_handler;
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
    const std::string_view t = ngx_http_dingtalk_view(dlcf->token->value);
    if (t.find("access_token=") != std::string_view::npos ||
        t.find("://") != std::string_view::npos) {
        return const_cast<char *>("takes the access_token value from the robot's webhook URL, "
                                  "not the whole URL");
    }
    if (!dingtalk::valid_token(t)) {
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
    if (dlcf->secret->lengths == nullptr &&
        !dingtalk::valid_secret(ngx_http_dingtalk_view(dlcf->secret->value))) {
        return const_cast<char *>("is not a DingTalk signing secret (\"SEC\" followed by 64 hex "
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
    std::string_view url = ngx_http_dingtalk_view(dlcf->api_url);
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
    if (host_at == 7) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "dingtalk_api_url is http://: the robot token and every message "
                           "travel in clear text (DingTalk is https://)");
    }
    return NGX_CONF_OK;
}

// The pool is added now, as "aio threads=" does, so that nginx names this line when no
// "thread_pool" directive declares it.
char *set_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    dlcf->thread_pool = ngx_thread_pool_add(cf, &dlcf->thread_pool_name);
    return dlcf->thread_pool ? NGX_CONF_OK : conf_error();
}

char *set_max_alerts(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_num_slot(cf, cmd, conf);
    const ngx_uint_t n = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf)->max_alerts;
    if (rv == NGX_CONF_OK && (n < 1 || n > 10000)) {
        return const_cast<char *>("must be from 1 to 10000");
    }
    return rv;
}

char *set_max_messages(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    char *rv = ngx_conf_set_num_slot(cf, cmd, conf);
    const ngx_uint_t n = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf)->max_messages;
    if (rv == NGX_CONF_OK && (n < 1 || n > dingtalk::kMaxMessages)) {
        return const_cast<char *>("must be from 1 to 10");
    }
    return rv;
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
        auto zone = dingtalk::Zone::find(ngx_http_dingtalk_view(value[1]), error);
        if (!zone) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_timezone: %s", error.c_str());
            return conf_error();
        }
        dlcf->zone = ngx_http_dingtalk_pool_new<dingtalk::Zone>(cf->pool, *zone);
        return dlcf->zone ? NGX_CONF_OK : conf_error();
    } catch (...) {
        return conf_error();
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
        return conf_error();
    }
    try {
        std::string pem;
        if (!read_conf_file(cf, "dingtalk_ssl_trusted_certificate", dlcf->ssl_trusted_certificate,
                            pem, kMaxCaFile)) {
            return conf_error();
        }
        const std::string path(ngx_http_dingtalk_view(dlcf->ssl_trusted_certificate));
        if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "dingtalk_ssl_trusted_certificate: no PEM certificate in \"%s\"",
                               path.c_str());
            return conf_error();
        }
        dlcf->ca_pem = ngx_http_dingtalk_pool_new<std::shared_ptr<const std::string>>(
            cf->pool, std::make_shared<const std::string>(std::move(pem)));
        return dlcf->ca_pem ? NGX_CONF_OK : conf_error();
    } catch (...) {
        return conf_error();
    }
}

// dingtalk_proxy URL | off. Errors show the URL without its credentials.
char *set_proxy(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->proxy != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    const std::string_view value =
        ngx_http_dingtalk_view(static_cast<ngx_str_t *>(cf->args->elts)[1]);
    try {
        std::shared_ptr<const dingtalk::Proxy> proxy; // off: no proxy
        if (value != "off") {
            std::string error;
            auto parsed = dingtalk::parse_proxy(value, error);
            if (!parsed) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_proxy %s", error.c_str());
                return conf_error();
            }
            proxy = std::make_shared<const dingtalk::Proxy>(std::move(*parsed));
        }
        dlcf->proxy = ngx_http_dingtalk_pool_new<std::shared_ptr<const dingtalk::Proxy>>(
            cf->pool, std::move(proxy));
        return dlcf->proxy ? NGX_CONF_OK : conf_error();
    } catch (...) {
        return conf_error();
    }
}

// dingtalk_rate_limit off | COUNT/PERIOD [hold=TIME] [cooldown=TIME]
char *set_rate_limit(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->rate_limit != NGX_CONF_UNSET) {
        return const_cast<char *>("is duplicate");
    }
    auto *value = static_cast<ngx_str_t *>(cf->args->elts);
    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        dlcf->rate_limit = 0;
        return NGX_CONF_OK;
    }

    dingtalk::RateLimit rate;
    u_char *slash =
        static_cast<u_char *>(ngx_strlchr(value[1].data, value[1].data + value[1].len, '/'));
    ngx_int_t count = ngx_atoi(value[1].data, slash ? slash - value[1].data : value[1].len);
    if (slash == nullptr || count < 1 || count > static_cast<ngx_int_t>(dingtalk::kMaxRateCount)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dingtalk_rate_limit: \"%V\" is not COUNT/PERIOD with a COUNT from 1 "
                           "to %uD, as in 20/60s (DingTalk's limit)",
                           &value[1], dingtalk::kMaxRateCount);
        return conf_error();
    }
    ngx_str_t period{static_cast<size_t>(value[1].data + value[1].len - slash - 1), slash + 1};
    ngx_msec_t window = ngx_parse_time(&period, 0);
    if (window == static_cast<ngx_msec_t>(NGX_ERROR) || window == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_rate_limit: invalid period \"%V\"",
                           &period);
        return conf_error();
    }
    rate.count = static_cast<uint32_t>(count);
    rate.window_ms = window;
    rate.guard_ms = std::min<uint64_t>(rate.guard_ms, window / 60);

    for (ngx_uint_t i = 2; i < cf->args->nelts; ++i) {
        ngx_str_t v = value[i];
        uint64_t *target = nullptr;
        if (ngx_strncmp(v.data, "hold=", 5) == 0) {
            target = &rate.hold_ms;
            v.data += 5;
            v.len -= 5;
        } else if (ngx_strncmp(v.data, "cooldown=", 9) == 0) {
            target = &rate.cooldown_ms;
            v.data += 9;
            v.len -= 9;
        }
        ngx_msec_t ms = target ? ngx_parse_time(&v, 0) : static_cast<ngx_msec_t>(NGX_ERROR);
        if (ms == static_cast<ngx_msec_t>(NGX_ERROR)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "dingtalk_rate_limit: invalid parameter \"%V\" (hold=TIME or "
                               "cooldown=TIME)",
                               &value[i]);
            return conf_error();
        }
        *target = ms;
    }
    dlcf->rate_limit = 1;
    dlcf->rate = rate;
    return NGX_CONF_OK;
}

// A literal complex value, as a directive without variables makes.
ngx_http_complex_value_t *literal(ngx_conf_t *cf, const std::string &text)
{
    auto *cv = static_cast<ngx_http_complex_value_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_complex_value_t)));
    u_char *data = static_cast<u_char *>(ngx_pnalloc(cf->pool, text.size() + 1));
    if (cv == nullptr || data == nullptr) {
        return nullptr;
    }
    ngx_memcpy(data, text.data(), text.size());
    cv->value.data = data; // lengths stays NULL
    cv->value.len = text.size();
    return cv;
}

// What a credential file holds (its ngx_command_t's post): the token, or the signing secret.
struct credential_file_t {
    std::size_t slot; // offsetof the complex value in the location's configuration
    bool (*valid)(std::string_view);
    const char *what; // for the error
};
const credential_file_t kTokenFile{offsetof(ngx_http_dingtalk_loc_conf_t, token),
                                   dingtalk::valid_token,
                                   "a DingTalk robot token (letters and digits only, on one line)"};
const credential_file_t kSecretFile{
    offsetof(ngx_http_dingtalk_loc_conf_t, secret), dingtalk::valid_secret,
    "a DingTalk signing secret (\"SEC\" and 64 hex digits, on one line)"};

// dingtalk_token_file FILE / dingtalk_secret_file FILE: from a file (a Kubernetes Secret
// mounted as a volume), read now by the master; a changed file takes effect on reload. The
// same rules as the directive with the value itself, which it replaces.
char *set_credential_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    const auto *kind = static_cast<const credential_file_t *>(cmd->post);
    const char *directive = reinterpret_cast<const char *>(cmd->name.data);
    auto *slot =
        reinterpret_cast<ngx_http_complex_value_t **>(static_cast<char *>(conf) + kind->slot);
    if (*slot != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate (the value or its file is set already)");
    }
    try {
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        std::string text;
        if (!read_conf_file(cf, directive, value[1], text, kMaxTokenFile)) {
            return conf_error();
        }
        while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
            text.pop_back();
        }
        if (!kind->valid(text)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: \"%V\" does not hold %s", directive,
                               &value[1], kind->what);
            return conf_error();
        }
        *slot = literal(cf, text);
        return *slot ? NGX_CONF_OK : conf_error();
    } catch (...) {
        return conf_error();
    }
}

// What a credentials file is: a bearer token per line, or user:password per line.
enum class auth_kind { bearer, basic };
const auth_kind kAuthBearer = auth_kind::bearer;
const auth_kind kAuthBasic = auth_kind::basic;

// dingtalk_auth_bearer_file FILE / dingtalk_auth_basic_file FILE: read now, by the master (a
// Kubernetes Secret mounted 0400 works), never logged; a changed file takes effect on reload.
char *set_auth_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    const auth_kind kind = *static_cast<const auth_kind *>(cmd->post);
    const char *directive = reinterpret_cast<const char *>(cmd->name.data);
    try {
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        std::string text, error;
        if (!read_conf_file(cf, directive, value[1], text, kMaxTokenFile * 16)) {
            return conf_error();
        }
        if (dlcf->auth == nullptr) {
            dlcf->auth = ngx_http_dingtalk_pool_new<std::shared_ptr<dingtalk::Credentials>>(
                cf->pool, std::make_shared<dingtalk::Credentials>());
            if (dlcf->auth == nullptr) {
                return conf_error();
            }
        }
        const bool ok = kind == auth_kind::bearer ? (*dlcf->auth)->add_bearer_file(text, error)
                                                  : (*dlcf->auth)->add_basic_file(text, error);
        if (!ok) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: \"%V\" %s", directive, &value[1],
                               error.c_str());
            return conf_error();
        }
        return NGX_CONF_OK;
    } catch (...) {
        return conf_error();
    }
}

// A template parsed and checked now, so that a broken one fails "nginx -t" with the line of the
// mistake (nginx adds the directive's file and line).
char *install_template(ngx_conf_t *cf, std::shared_ptr<const dingtalk::Template> **slot,
                       std::string source, dingtalk::Template::Kind kind, const char *what)
{
    if (*slot != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    std::string error;
    auto tmpl = dingtalk::Template::parse(std::move(source), kind, error);
    if (!tmpl) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s %s", what, error.c_str());
        return conf_error();
    }
    *slot = ngx_http_dingtalk_pool_new<std::shared_ptr<const dingtalk::Template>>(cf->pool,
                                                                                  std::move(tmpl));
    return *slot ? NGX_CONF_OK : conf_error();
}

// dingtalk_template FILE
char *set_text_template(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    try {
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        std::string source;
        if (!read_conf_file(cf, "dingtalk_template", value[1], source, kMaxTemplateFile)) {
            return conf_error();
        }
        const std::string what =
            "dingtalk_template: \"" + std::string(ngx_http_dingtalk_view(value[1])) + "\"";
        return install_template(cf, &dlcf->text_template, std::move(source),
                                dingtalk::Template::Kind::text, what.c_str());
    } catch (...) {
        return conf_error();
    }
}

// dingtalk_title_template "TEMPLATE"
char *set_title_template(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    try {
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        return install_template(cf, &dlcf->title_template,
                                std::string(ngx_http_dingtalk_view(value[1])),
                                dingtalk::Template::Kind::title, "dingtalk_title_template:");
    } catch (...) {
        return conf_error();
    }
}

// dingtalk_severity_style SEVERITY EMOJI [COLOR]: the defaults, with this level's changes
// (the styles of one level replace those around it, as a whole).
char *set_severity_style(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    try {
        if (dlcf->styles == nullptr) {
            dlcf->styles = ngx_http_dingtalk_pool_new<std::shared_ptr<dingtalk::Styles>>(
                cf->pool, std::make_shared<dingtalk::Styles>(dingtalk::Styles::defaults()));
            if (dlcf->styles == nullptr) {
                return conf_error();
            }
        }
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        const std::string_view color =
            cf->args->nelts > 3 ? ngx_http_dingtalk_view(value[3]) : std::string_view();
        const std::string why =
            (*dlcf->styles)
                ->set(ngx_http_dingtalk_view(value[1]), ngx_http_dingtalk_view(value[2]), color);
        if (!why.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_severity_style: %s", why.c_str());
            return conf_error();
        }
        return NGX_CONF_OK;
    } catch (...) {
        return conf_error();
    }
}

// The check of a string directive's value by a core function, as nginx's post handler of
// ngx_conf_set_str_slot: dingtalk_keyword, dingtalk_at_mobiles_from, dingtalk_at_user_ids_from.
template <std::string (*Check)(std::string_view)>
char *check_str(ngx_conf_t *cf, void *, void *data) noexcept
{
    try {
        const std::string why = Check(ngx_http_dingtalk_view(*static_cast<ngx_str_t *>(data)));
        if (!why.empty()) {
            const auto *name = static_cast<ngx_str_t *>(cf->args->elts);
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", name, why.c_str());
            return conf_error();
        }
        return NGX_CONF_OK;
    } catch (...) {
        return conf_error();
    }
}

ngx_conf_post_t kKeywordCheck = {check_str<dingtalk::check_keyword>};
ngx_conf_post_t kLabelNameCheck = {check_str<dingtalk::check_label_name>};

// dingtalk_hide_labels NAME... | off: the labels no line of a message shows (off: none).
char *set_hide_labels(ngx_conf_t *cf, ngx_command_t *, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    if (dlcf->hidden_labels != nullptr) {
        return const_cast<char *>("is duplicate");
    }
    try {
        auto names = std::make_shared<dingtalk::LabelNames>();
        const auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        const bool off = cf->args->nelts == 2 && ngx_http_dingtalk_view(value[1]) == "off";
        for (ngx_uint_t i = 1; i < cf->args->nelts && !off; ++i) {
            const std::string why =
                dingtalk::add_label_name(*names, ngx_http_dingtalk_view(value[i]));
            if (!why.empty()) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_hide_labels: %s", why.c_str());
                return conf_error();
            }
        }
        dlcf->hidden_labels =
            ngx_http_dingtalk_pool_new<std::shared_ptr<const dingtalk::LabelNames>>(
                cf->pool, std::move(names));
        return dlcf->hidden_labels ? NGX_CONF_OK : conf_error();
    } catch (...) {
        return conf_error();
    }
}

// What a dingtalk_at_* directive names (its ngx_command_t's post).
const dingtalk::MentionKind kAtMobiles = dingtalk::MentionKind::mobiles;
const dingtalk::MentionKind kAtUserIds = dingtalk::MentionKind::user_ids;
const dingtalk::MentionKind kAtAll = dingtalk::MentionKind::all;

// dingtalk_at_mobiles / dingtalk_at_user_ids VALUE... [severity=S1,S2]
// dingtalk_at_all on|off [severity=S1,S2]
char *set_mention(ngx_conf_t *cf, ngx_command_t *cmd, void *conf) noexcept
{
    auto *dlcf = static_cast<ngx_http_dingtalk_loc_conf_t *>(conf);
    const dingtalk::MentionKind kind = *static_cast<const dingtalk::MentionKind *>(cmd->post);
    const char *directive = reinterpret_cast<const char *>(cmd->name.data);
    try {
        if (dlcf->mentions == nullptr) {
            dlcf->mentions =
                ngx_http_dingtalk_pool_new<std::shared_ptr<std::vector<dingtalk::MentionRule>>>(
                    cf->pool, std::make_shared<std::vector<dingtalk::MentionRule>>());
            if (dlcf->mentions == nullptr) {
                return conf_error();
            }
        }
        auto *value = static_cast<ngx_str_t *>(cf->args->elts);
        dingtalk::MentionRule rule;
        std::string why;
        for (ngx_uint_t i = 1; i < cf->args->nelts && why.empty(); ++i) {
            why = dingtalk::add_mention_argument(rule, kind, ngx_http_dingtalk_view(value[i]));
        }
        why = why.empty() ? dingtalk::check_mention_rule(rule, kind) : why;
        if (!why.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: %s", directive, why.c_str());
            return conf_error();
        }
        if ((*dlcf->mentions)->size() >= 32) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s: too many rules (32 at most)", directive);
            return conf_error();
        }
        (*dlcf->mentions)->push_back(std::move(rule));
        return NGX_CONF_OK;
    } catch (...) {
        return conf_error();
    }
}

char *set_metrics(ngx_conf_t *cf, ngx_command_t *, void *) noexcept
{
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = ngx_http_dingtalk_metrics_handler;
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    mcf->used = 1; // the zone the counters live in
    return NGX_CONF_OK;
}

void *create_main_conf(ngx_conf_t *cf) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_dingtalk_main_conf_t)));
    if (mcf == nullptr) {
        return nullptr;
    }
    mcf->zone_size = NGX_CONF_UNSET_SIZE;
    return mcf;
}

char *init_main_conf(ngx_conf_t *, void *conf) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(conf);
    ngx_conf_init_size_value(mcf->zone_size, 1024 * 1024);
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
    auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(
        ngx_pcalloc(cf->pool, sizeof(ngx_http_dingtalk_loc_conf_t)));
    if (conf == nullptr) {
        return nullptr;
    }
    // ngx_pcalloc set: env_token, api_url, thread_pool_name, ssl_trusted_certificate, file = {},
    // thread_pool, zone, ca_pem, proxy = NULL
    conf->enable = NGX_CONF_UNSET;
    conf->token = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
    conf->secret = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
    conf->timeout = NGX_CONF_UNSET_MSEC;
    conf->keepalive_timeout = NGX_CONF_UNSET;
    conf->ssl_verify = NGX_CONF_UNSET;
    conf->rate_limit = NGX_CONF_UNSET;
    conf->rate = dingtalk::RateLimit(); // DingTalk's limit: 20 a minute
    conf->robot_name = static_cast<ngx_http_complex_value_t *>(NGX_CONF_UNSET_PTR);
    conf->max_body_size = NGX_CONF_UNSET_SIZE;
    conf->max_alerts = NGX_CONF_UNSET_UINT;
    conf->max_messages = NGX_CONF_UNSET_UINT;
    conf->verbose_replies = NGX_CONF_UNSET;
    conf->silence_link = NGX_CONF_UNSET;
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

void merge_values(ngx_http_dingtalk_loc_conf_t *prev, ngx_http_dingtalk_loc_conf_t *conf)
{
    ngx_conf_merge_ptr_value(conf->token, prev->token, nullptr);
    ngx_conf_merge_ptr_value(conf->secret, prev->secret, nullptr);
    ngx_conf_merge_str_value(conf->api_url, prev->api_url, "https://oapi.dingtalk.com/robot/send");
    if (conf->thread_pool == nullptr) {
        conf->thread_pool_name = prev->thread_pool_name;
        conf->thread_pool = prev->thread_pool;
    }
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 10000);
    ngx_conf_merge_sec_value(conf->keepalive_timeout, prev->keepalive_timeout, 60);
    ngx_conf_merge_size_value(conf->max_body_size, prev->max_body_size, 1024 * 1024);
    ngx_conf_merge_uint_value(conf->max_alerts, prev->max_alerts, 100);
    ngx_conf_merge_uint_value(conf->max_messages, prev->max_messages, 1);
    ngx_conf_merge_value(conf->ssl_verify, prev->ssl_verify, 1);
    ngx_conf_merge_str_value(conf->ssl_trusted_certificate, prev->ssl_trusted_certificate, "");
    if (conf->ca_pem == nullptr) {
        conf->ca_pem = prev->ca_pem;
    }
    if (conf->proxy == nullptr) {
        conf->proxy = prev->proxy;
    }
    if (conf->zone == nullptr) {
        conf->zone = prev->zone;
    }
    ngx_conf_merge_ptr_value(conf->robot_name, prev->robot_name, nullptr);
    if (conf->text_template == nullptr) {
        conf->text_template = prev->text_template;
    }
    if (conf->title_template == nullptr) {
        conf->title_template = prev->title_template;
    }
    if (conf->mentions == nullptr) {
        conf->mentions = prev->mentions; // the rules of one level, never mixed
    }
    if (conf->auth == nullptr) {
        conf->auth = prev->auth; // the credentials of one level, never mixed
    }
    if (conf->styles == nullptr) {
        conf->styles = prev->styles;
    }
    ngx_conf_merge_value(conf->verbose_replies, prev->verbose_replies, 0);
    ngx_conf_merge_str_value(conf->keyword, prev->keyword, "");
    ngx_conf_merge_str_value(conf->at_mobiles_from, prev->at_mobiles_from, "");
    ngx_conf_merge_str_value(conf->at_user_ids_from, prev->at_user_ids_from, "");
    if (conf->hidden_labels == nullptr) {
        conf->hidden_labels = prev->hidden_labels;
    }
    ngx_conf_merge_value(conf->silence_link, prev->silence_link, 1);
    if (conf->rate_limit == NGX_CONF_UNSET) {
        conf->rate_limit = prev->rate_limit == NGX_CONF_UNSET ? 1 : prev->rate_limit;
        conf->rate = prev->rate;
    }
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

// What only a sending location needs: a timeout, a time zone, a token, a thread pool.
char *check_sender(ngx_conf_t *cf, ngx_http_dingtalk_loc_conf_t *conf)
{
    if (conf->timeout == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dingtalk\" in %V:%ui: dingtalk_timeout must be more than 0", &conf->file,
                      conf->line);
        return conf_error();
    }
    if (conf->rate_limit && conf->max_messages > conf->rate.count) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"dingtalk\" in %V:%ui: dingtalk_max_messages %ui is more than the %uD "
                      "messages dingtalk_rate_limit allows at once: such a notification could "
                      "never be sent",
                      &conf->file, conf->line, conf->max_messages, conf->rate.count);
        return conf_error();
    }
    if (conf->zone == nullptr) {
        std::string error;
        auto zone = dingtalk::Zone::find(kDefaultZone, error);
        if (!zone) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "\"dingtalk\" in %V:%ui: %s", &conf->file,
                          conf->line, error.c_str());
            return conf_error();
        }
        conf->zone = ngx_http_dingtalk_pool_new<dingtalk::Zone>(cf->pool, *zone);
        if (conf->zone == nullptr) {
            return conf_error();
        }
    }
    if (conf->token == nullptr) {
        char *rv = resolve_env_token(cf, conf);
        if (rv != NGX_CONF_OK) {
            return rv;
        }
    }
    if (conf->thread_pool == nullptr) {
        ngx_str_set(&conf->thread_pool_name, "default");
        conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
        if (conf->thread_pool == nullptr) {
            return conf_error();
        }
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    mcf->used = 1;
    return check_robot_name(cf, conf);
}

char *merge_loc_conf(ngx_conf_t *cf, void *parent, void *child) noexcept
{
    auto *prev = static_cast<ngx_http_dingtalk_loc_conf_t *>(parent);
    auto *conf = static_cast<ngx_http_dingtalk_loc_conf_t *>(child);
    try {
        inherit_into_limit_except(cf, prev, conf);
        merge_values(prev, conf);
        return conf->enable ? check_sender(cf, conf) : NGX_CONF_OK;
    } catch (...) {
        return conf_error();
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
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_thread_pool,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, thread_pool_name), nullptr},
    {ngx_string("dingtalk_max_body_size"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_size_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, max_body_size), nullptr},
    {ngx_string("dingtalk_max_messages"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_max_messages,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, max_messages), nullptr},
    {ngx_string("dingtalk_max_alerts"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_max_alerts,
     NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_dingtalk_loc_conf_t, max_alerts), nullptr},
    {ngx_string("dingtalk_timeout"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_msec_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, timeout), nullptr},
    {ngx_string("dingtalk_keepalive_timeout"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_sec_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, keepalive_timeout), nullptr},
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
    {ngx_string("dingtalk_proxy"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_proxy,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_token_file"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_credential_file, NGX_HTTP_LOC_CONF_OFFSET, 0,
     const_cast<credential_file_t *>(&kTokenFile)},
    {ngx_string("dingtalk_secret_file"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_credential_file, NGX_HTTP_LOC_CONF_OFFSET, 0,
     const_cast<credential_file_t *>(&kSecretFile)},
    {ngx_string("dingtalk_template"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_text_template,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_title_template"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     set_title_template, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_at_mobiles"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_mention,
     NGX_HTTP_LOC_CONF_OFFSET, 0, const_cast<dingtalk::MentionKind *>(&kAtMobiles)},
    {ngx_string("dingtalk_at_user_ids"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_mention,
     NGX_HTTP_LOC_CONF_OFFSET, 0, const_cast<dingtalk::MentionKind *>(&kAtUserIds)},
    {ngx_string("dingtalk_at_all"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE12, set_mention,
     NGX_HTTP_LOC_CONF_OFFSET, 0, const_cast<dingtalk::MentionKind *>(&kAtAll)},
    {ngx_string("dingtalk_severity_style"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE23,
     set_severity_style, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_robot_name"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_set_complex_value_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, robot_name), nullptr},
    {ngx_string("dingtalk_auth_bearer_file"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_auth_file,
     NGX_HTTP_LOC_CONF_OFFSET, 0, const_cast<auth_kind *>(&kAuthBearer)},
    {ngx_string("dingtalk_auth_basic_file"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, set_auth_file,
     NGX_HTTP_LOC_CONF_OFFSET, 0, const_cast<auth_kind *>(&kAuthBasic)},
    {ngx_string("dingtalk_keyword"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, keyword), &kKeywordCheck},
    {ngx_string("dingtalk_at_mobiles_from"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, at_mobiles_from), &kLabelNameCheck},
    {ngx_string("dingtalk_at_user_ids_from"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_str_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, at_user_ids_from), &kLabelNameCheck},
    {ngx_string("dingtalk_hide_labels"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE, set_hide_labels,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_silence_link"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, silence_link), nullptr},
    {ngx_string("dingtalk_verbose_replies"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_dingtalk_loc_conf_t, verbose_replies), nullptr},
    {ngx_string("dingtalk_metrics"), NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS, set_metrics,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_rate_limit"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE123, set_rate_limit,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("dingtalk_zone_size"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, set_zone_size,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_dingtalk_main_conf_t, zone_size), nullptr},
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

void ngx_http_dingtalk_watch_idle(time_t keepalive) noexcept
{
    const ngx_msec_t due = ngx_current_msec + static_cast<ngx_msec_t>(keepalive) * 1000 + 1;
    if (!idle_sweep.timer_set || static_cast<ngx_msec_int_t>(idle_sweep.timer.key - due) > 0) {
        ngx_add_timer(&idle_sweep, due - ngx_current_msec);
    }
}

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
