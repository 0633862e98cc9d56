// The directives' own parsers (the table is in ngx_http_dingtalk_module.cpp; the simple ones are
// templates in ngx_http_dingtalk_directives.hpp). Files named by a directive are read here, by
// the master at configuration time: a file only root can read works, and a missing or broken
// one fails "nginx -t" with the directive's file and line rather than every delivery.

#include "ngx_http_dingtalk_directives.hpp"

#include "action.hpp"
#include "sign.hpp"
#include "silence.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string>
#include <utility>

namespace
{

char *conf_error()
{
    return static_cast<char *>(NGX_CONF_ERROR);
}

// The largest files the directives read: a token is 64 characters, a CA bundle a few hundred
// kilobytes (Debian's is about 220 KB).
constexpr std::size_t kMaxTokenFile = 4096;
constexpr std::size_t kMaxTemplateFile = 1024 * 1024;
constexpr std::size_t kMaxCaFile = 16 * 1024 * 1024;

// Reads a file named by a directive (a relative name is in nginx's configuration folder, its
// conf prefix). Errors name the directive and the file; nginx adds the configuration file and
// line. A file over `max` bytes is refused, never cut.
bool read_conf_file(ngx_conf_t *cf, const ngx_str_t &directive, ngx_str_t name, std::string &out,
                    std::size_t max)
{
    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return false;
    }
    const std::string path(ngx_http_dingtalk_view(name));
    std::FILE *f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "%V: cannot open \"%s\"", &directive,
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
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, "%V: cannot read \"%s\"", &directive,
                           path.c_str());
        return false;
    }
    if (out.size() > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: \"%s\" is larger than %uz bytes", &directive,
                           path.c_str(), max);
        return false;
    }
    return true;
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

// A template parsed and checked now, so that a broken one fails "nginx -t" with the line of the
// mistake (nginx adds the directive's file and line).
char *install_template(ngx_conf_t *cf, std::shared_ptr<const dingtalk::Template> *field,
                       std::string source, dingtalk::Template::Kind kind, const std::string &what)
{
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    std::string error;
    auto tmpl = dingtalk::Template::parse(std::move(source), kind, error);
    if (!tmpl) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s %s", what.c_str(), error.c_str());
        return conf_error();
    }
    *field = std::move(tmpl);
    return NGX_CONF_OK;
}

} // namespace

bool ngx_http_dingtalk_claim(ngx_http_dingtalk_loc_conf_t *conf, ngx_http_dingtalk_copy_pt copy)
{
    auto *own = static_cast<ngx_http_dingtalk_copy_pt *>(conf->own->elts);
    if (std::find(own, own + conf->own->nelts, copy) != own + conf->own->nelts) {
        return false;
    }
    auto *slot = static_cast<ngx_http_dingtalk_copy_pt *>(ngx_array_push(conf->own));
    if (slot == nullptr) {
        throw std::bad_alloc();
    }
    *slot = copy;
    return true;
}

char *ngx_http_dingtalk_arguments(ngx_conf_t *cf, ngx_command_t *cmd, ngx_uint_t min,
                                  ngx_uint_t max)
{
    const ngx_uint_t n = cf->args->nelts - 1;
    if (n >= min && n <= max) {
        return nullptr;
    }
    if (n < min) { // as nginx says it
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid number of arguments in \"%V\" directive",
                           &cmd->name);
        return conf_error();
    }
    const std::string takes =
        min == max ? std::to_string(min) + (min == 1 ? " argument" : " arguments")
                   : std::to_string(min) + " to " + std::to_string(max) + " arguments";
    ngx_conf_log_error(
        NGX_LOG_EMERG, cf, 0,
        "\"%V\" takes %s, not %ui: its arguments run on to the \";\" of the line "
        "named here. An unquoted # starts a comment in nginx.conf, which hides the "
        "rest of its line, \";\" included: quote a value with a #, as in \"#FF0000\"",
        &cmd->name, takes.c_str(), n);
    return conf_error();
}

namespace
{

// A location has one content handler: dingtalk, dingtalk_metrics and dingtalk_action exclude
// each other and any other module's set before them (the last would win, silently, and the
// checks of the others would not run).
char *set_content_handler(ngx_conf_t *cf, ngx_http_handler_pt handler)
{
    auto *clcf = static_cast<ngx_http_core_loc_conf_t *>(
        ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->handler != nullptr) {
        return const_cast<char *>(
            "is one content handler too many: this location already has one (dingtalk, "
            "dingtalk_metrics, dingtalk_action or another module's): give each its own location");
    }
    clcf->handler = handler;
    return NGX_CONF_OK;
}

} // namespace

// dingtalk: this location receives Alertmanager's webhooks.
char *ngx_http_dingtalk_set_enable(ngx_conf_t *cf, ngx_command_t *,
                                   ngx_http_dingtalk_loc_conf_t *conf)
{
    if (conf->enable != NGX_CONF_UNSET) {
        return ngx_http_dingtalk_duplicate();
    }
    conf->enable = 1;
    conf->file = cf->conf_file->file.name;
    conf->line = cf->conf_file->line;
    return set_content_handler(cf, ngx_http_dingtalk_handler);
}

// dingtalk_token VALUE: the robot's access_token, or variables evaluated per request.
char *ngx_http_dingtalk_set_token(ngx_conf_t *cf, ngx_command_t *cmd,
                                  ngx_http_dingtalk_loc_conf_t *conf)
{
    char *rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK || conf->token->lengths != nullptr) {
        return rv; // variables: checked per request
    }
    const std::string_view t = ngx_http_dingtalk_view(conf->token->value);
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

// dingtalk_secret VALUE: the robot's signing secret, or variables.
char *ngx_http_dingtalk_set_secret(ngx_conf_t *cf, ngx_command_t *cmd,
                                   ngx_http_dingtalk_loc_conf_t *conf)
{
    char *rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    if (conf->secret->lengths == nullptr &&
        !dingtalk::valid_secret(ngx_http_dingtalk_view(conf->secret->value))) {
        return const_cast<char *>("is not a DingTalk signing secret (\"SEC\" followed by 64 hex "
                                  "digits, as the robot's security settings show it)");
    }
    return NGX_CONF_OK;
}

const ngx_http_dingtalk_credential_file_t ngx_http_dingtalk_token_file{
    offsetof(ngx_http_dingtalk_loc_conf_t, token), dingtalk::valid_token,
    "a DingTalk robot token (letters and digits only, on one line)"};
const ngx_http_dingtalk_credential_file_t ngx_http_dingtalk_secret_file{
    offsetof(ngx_http_dingtalk_loc_conf_t, secret), dingtalk::valid_secret,
    "a DingTalk signing secret (\"SEC\" and 64 hex digits, on one line)"};

// dingtalk_token_file FILE / dingtalk_secret_file FILE: from a file (a Kubernetes Secret
// mounted as a volume); a changed file takes effect on reload. The same rules as the directive
// with the value itself, which it replaces.
char *ngx_http_dingtalk_set_credential_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                            ngx_http_dingtalk_loc_conf_t *conf)
{
    const auto *kind = static_cast<const ngx_http_dingtalk_credential_file_t *>(cmd->post);
    auto *slot =
        reinterpret_cast<ngx_http_complex_value_t **>(reinterpret_cast<char *>(conf) + kind->slot);
    if (*slot != NGX_CONF_UNSET_PTR) {
        return const_cast<char *>("is duplicate (the value or its file is set already)");
    }
    const ngx_str_t &file = ngx_http_dingtalk_arg(cf, 1);
    std::string text;
    if (!read_conf_file(cf, cmd->name, file, text, kMaxTokenFile)) {
        return conf_error();
    }
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
        text.pop_back();
    }
    if (!kind->valid(text)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: \"%V\" does not hold %s", &cmd->name, &file,
                           kind->what);
        return conf_error();
    }
    *slot = literal(cf, text);
    return *slot ? NGX_CONF_OK : conf_error();
}

// dingtalk_api_url URL: where messages go (DingTalk, or a stand-in); never the token.
char *ngx_http_dingtalk_set_api_url(ngx_conf_t *cf, ngx_command_t *,
                                    ngx_http_dingtalk_loc_conf_t *conf)
{
    std::string *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::api_url>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const ngx_str_t &value = ngx_http_dingtalk_arg(cf, 1);
    const std::string_view url = ngx_http_dingtalk_view(value);
    std::size_t host_at;
    if (url.size() > 7 && ngx_strncasecmp(value.data, (u_char *)"http://", 7) == 0) {
        host_at = 7;
    } else if (url.size() > 8 && ngx_strncasecmp(value.data, (u_char *)"https://", 8) == 0) {
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
    field->assign(url);
    return NGX_CONF_OK;
}

// dingtalk_thread_pool NAME: the pool is added now, as "aio threads=" does, so that nginx names
// this line when no "thread_pool" directive declares it.
char *ngx_http_dingtalk_set_thread_pool(ngx_conf_t *cf, ngx_command_t *cmd,
                                        ngx_http_dingtalk_loc_conf_t *conf)
{
    char *rv = ngx_conf_set_str_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }
    conf->thread_pool = ngx_thread_pool_add(cf, &conf->thread_pool_name);
    return conf->thread_pool ? NGX_CONF_OK : conf_error();
}

// dingtalk_timezone NAME [LAYOUT]: an IANA time zone, looked up now, and the Go time layout of
// the times shown.
char *ngx_http_dingtalk_set_timezone(ngx_conf_t *cf, ngx_command_t *,
                                     ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::timezone>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    std::string error;
    auto tz = dingtalk::TimeZone::find(ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1)), error);
    if (!tz) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_timezone: %s", error.c_str());
        return conf_error();
    }
    if (cf->args->nelts == 3) {
        auto layout =
            dingtalk::GoLayout::parse(ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 2)), error);
        if (!layout) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_timezone: %s", error.c_str());
            return conf_error();
        }
        tz->set_layout(std::move(layout));
    }
    *field = std::make_shared<const dingtalk::TimeZone>(std::move(*tz));
    return NGX_CONF_OK;
}

// dingtalk_ssl_verify on|off: off is said out loud.
char *ngx_http_dingtalk_set_ssl_verify(ngx_conf_t *cf, ngx_command_t *cmd,
                                       ngx_http_dingtalk_loc_conf_t *conf)
{
    char *rv = ngx_http_dingtalk_set_flag<&dingtalk::Settings::ssl_verify>(cf, cmd, conf);
    if (rv == NGX_CONF_OK && !ngx_http_dingtalk_own(conf).ssl_verify) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "dingtalk_ssl_verify is off: DingTalk's certificate and host name "
                           "will not be checked, and the robot token can be intercepted");
    }
    return rv;
}

// dingtalk_ssl_trusted_certificate FILE: the CA bundle, read now.
char *ngx_http_dingtalk_set_trusted_certificate(ngx_conf_t *cf, ngx_command_t *cmd,
                                                ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::ca_pem>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    ngx_str_t path = ngx_http_dingtalk_arg(cf, 1);
    std::string pem;
    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK ||
        !read_conf_file(cf, cmd->name, path, pem, kMaxCaFile)) {
        return conf_error();
    }
    if (pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dingtalk_ssl_trusted_certificate: no PEM certificate in \"%V\"", &path);
        return conf_error();
    }
    *field = std::make_shared<const std::string>(std::move(pem));
    return NGX_CONF_OK;
}

// dingtalk_proxy URL | off. Errors show the URL without its credentials.
char *ngx_http_dingtalk_set_proxy(ngx_conf_t *cf, ngx_command_t *,
                                  ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::proxy>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const std::string_view value = ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1));
    if (value == "off") {
        field->reset();
        return NGX_CONF_OK;
    }
    std::string error;
    auto parsed = dingtalk::parse_proxy(value, error);
    if (!parsed) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_proxy %s", error.c_str());
        return conf_error();
    }
    *field = std::make_shared<const dingtalk::Proxy>(std::move(*parsed));
    return NGX_CONF_OK;
}

namespace
{

// hold=TIME or cooldown=TIME of dingtalk_rate_limit into rate; false when it is neither.
bool rate_parameter(ngx_str_t v, dingtalk::RateLimit &rate)
{
    uint64_t *target = nullptr;
    for (const auto &[name, field] :
         {std::pair{std::string_view("hold="), &rate.hold_ms},
          std::pair{std::string_view("cooldown="), &rate.cooldown_ms}}) {
        if (ngx_http_dingtalk_view(v).substr(0, name.size()) == name) {
            target = field;
            v.data += name.size();
            v.len -= name.size();
            break;
        }
    }
    const ngx_msec_t ms = target ? ngx_parse_time(&v, 0) : static_cast<ngx_msec_t>(NGX_ERROR);
    if (ms == static_cast<ngx_msec_t>(NGX_ERROR)) {
        return false;
    }
    *target = ms;
    return true;
}

} // namespace

namespace
{

enum class count_period_e { ok, bad_count, bad_period };

// COUNT/PERIOD, as in 20/60s, with COUNT from 1 to kMaxRateCount.
count_period_e count_per_period(ngx_str_t value, uint32_t &count, uint64_t &window_ms)
{
    u_char *slash = static_cast<u_char *>(ngx_strlchr(value.data, value.data + value.len, '/'));
    const ngx_int_t n = ngx_atoi(value.data, slash ? slash - value.data : value.len);
    if (slash == nullptr || n < 1 || n > static_cast<ngx_int_t>(dingtalk::kMaxRateCount)) {
        return count_period_e::bad_count;
    }
    ngx_str_t period{static_cast<size_t>(value.data + value.len - slash - 1), slash + 1};
    const ngx_msec_t ms = ngx_parse_time(&period, 0);
    if (ms == static_cast<ngx_msec_t>(NGX_ERROR) || ms == 0) {
        return count_period_e::bad_period;
    }
    count = static_cast<uint32_t>(n);
    window_ms = ms;
    return count_period_e::ok;
}

} // namespace

// dingtalk_rate_limit off | COUNT/PERIOD [hold=TIME] [cooldown=TIME]
char *ngx_http_dingtalk_set_rate_limit(ngx_conf_t *cf, ngx_command_t *,
                                       ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::rate>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const ngx_str_t &value = ngx_http_dingtalk_arg(cf, 1);
    if (cf->args->nelts == 2 && ngx_http_dingtalk_view(value) == "off") {
        field->reset();
        return NGX_CONF_OK;
    }
    dingtalk::RateLimit rate;
    switch (count_per_period(value, rate.count, rate.window_ms)) {
    case count_period_e::bad_count:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dingtalk_rate_limit: \"%V\" is not COUNT/PERIOD with a COUNT from 1 "
                           "to %uD, as in 20/60s (DingTalk's limit)",
                           &value, dingtalk::kMaxRateCount);
        return conf_error();
    case count_period_e::bad_period:
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_rate_limit: invalid period in \"%V\"",
                           &value);
        return conf_error();
    case count_period_e::ok:
        break;
    }
    rate.guard_ms = std::min<uint64_t>(rate.guard_ms, rate.window_ms / 60);
    for (ngx_uint_t i = 2; i < cf->args->nelts; ++i) {
        if (!rate_parameter(ngx_http_dingtalk_arg(cf, i), rate)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "dingtalk_rate_limit: invalid parameter \"%V\" (hold=TIME or "
                               "cooldown=TIME)",
                               &ngx_http_dingtalk_arg(cf, i));
            return conf_error();
        }
    }
    *field = rate;
    return NGX_CONF_OK;
}

namespace
{

// The password of dingtalk_store's password_file: the file's one line, without the line end.
bool store_password(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t file, std::string &password)
{
    if (!read_conf_file(cf, cmd->name, file, password, kMaxTokenFile)) {
        return false;
    }
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) {
        password.pop_back();
    }
    if (password.empty() || password.find_first_of("\r\n") != std::string::npos) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "dingtalk_store: the password file \"%V\" must hold one line", &file);
        return false;
    }
    return true;
}

// password_file=FILE, timeout=TIME or fallback=COUNT/PERIOD of dingtalk_store into cfg.
bool store_parameter(ngx_conf_t *cf, ngx_command_t *cmd, ngx_str_t v, dingtalk::StoreConfig &cfg)
{
    const std::string_view text = ngx_http_dingtalk_view(v);
    const auto after = [&](std::string_view name) {
        return ngx_str_t{v.len - name.size(), v.data + name.size()};
    };
    if (text.substr(0, 14) == "password_file=") {
        return store_password(cf, cmd, after("password_file="), cfg.password);
    }
    if (text.substr(0, 8) == "timeout=") {
        ngx_str_t t = after("timeout=");
        const ngx_msec_t ms = ngx_parse_time(&t, 0);
        if (ms != static_cast<ngx_msec_t>(NGX_ERROR) && ms > 0 && ms <= 10000) {
            cfg.timeout = std::chrono::milliseconds(ms);
            return true;
        }
    } else if (text.substr(0, 9) == "fallback=" &&
               count_per_period(after("fallback="), cfg.fallback_count, cfg.fallback_window_ms) ==
                   count_period_e::ok) {
        return true;
    }
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "dingtalk_store: invalid parameter \"%V\" (password_file=FILE, "
                       "timeout=TIME up to 10s, fallback=COUNT/PERIOD)",
                       &v);
    return false;
}

} // namespace

// dingtalk_store redis://[user@]host:port[/db] [password_file=FILE] [timeout=TIME]
//                [fallback=COUNT/PERIOD]
char *ngx_http_dingtalk_set_store(ngx_conf_t *cf, ngx_command_t *cmd,
                                  ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::store>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    std::string error;
    auto cfg =
        dingtalk::parse_store_url(ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1)), error);
    if (!cfg) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_store: %s", error.c_str());
        return conf_error();
    }
    for (ngx_uint_t i = 2; i < cf->args->nelts; ++i) {
        if (!store_parameter(cf, cmd, ngx_http_dingtalk_arg(cf, i), *cfg)) {
            return conf_error();
        }
    }
    *field = std::make_shared<const dingtalk::Store>(std::move(*cfg));
    return NGX_CONF_OK;
}

// dingtalk_template FILE
char *ngx_http_dingtalk_set_text_template(ngx_conf_t *cf, ngx_command_t *cmd,
                                          ngx_http_dingtalk_loc_conf_t *conf)
{
    const ngx_str_t &file = ngx_http_dingtalk_arg(cf, 1);
    std::string source;
    if (!read_conf_file(cf, cmd->name, file, source, kMaxTemplateFile)) {
        return conf_error();
    }
    return install_template(
        cf, ngx_http_dingtalk_claim_field<&dingtalk::Settings::text_template>(conf),
        std::move(source), dingtalk::Template::Kind::text,
        "dingtalk_template: \"" + std::string(ngx_http_dingtalk_view(file)) + "\"");
}

// dingtalk_title_template "TEMPLATE"
char *ngx_http_dingtalk_set_title_template(ngx_conf_t *cf, ngx_command_t *cmd,
                                           ngx_http_dingtalk_loc_conf_t *conf)
{
    if (char *rv = ngx_http_dingtalk_arguments(cf, cmd, 1, 1)) {
        return rv;
    }
    return install_template(
        cf, ngx_http_dingtalk_claim_field<&dingtalk::Settings::title_template>(conf),
        std::string(ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1))),
        dingtalk::Template::Kind::title, "dingtalk_title_template:");
}

namespace
{

// The value of a field this level's directives build up line by line (the styles, the
// mention rules, the credentials): a copy to change and put back, starting from `first` on
// this level's first line. The lines of one level replace those around it, as a whole.
template <class T, auto Field>
std::shared_ptr<T> grown(ngx_http_dingtalk_loc_conf_t *conf, const T &first)
{
    auto &field = ngx_http_dingtalk_own(conf).*Field;
    const bool fresh = ngx_http_dingtalk_claim(conf, ngx_http_dingtalk_copy_field<Field>);
    return std::make_shared<T>(fresh || !field ? first : *field);
}

} // namespace

// dingtalk_severity_style SEVERITY EMOJI [COLOR]: the defaults, with this level's changes.
char *ngx_http_dingtalk_set_severity_style(ngx_conf_t *cf, ngx_command_t *cmd,
                                           ngx_http_dingtalk_loc_conf_t *conf)
{
    if (char *rv = ngx_http_dingtalk_arguments(cf, cmd, 2, 3)) {
        return rv;
    }
    auto styles =
        grown<dingtalk::Styles, &dingtalk::Settings::styles>(conf, dingtalk::Styles::defaults());
    const std::string_view color = cf->args->nelts > 3
                                       ? ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 3))
                                       : std::string_view();
    const std::string why =
        styles->set(ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1)),
                    ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 2)), color);
    if (!why.empty()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_severity_style: %s", why.c_str());
        return conf_error();
    }
    ngx_http_dingtalk_own(conf).styles = std::move(styles);
    return NGX_CONF_OK;
}

const dingtalk::MentionKind ngx_http_dingtalk_at_mobiles = dingtalk::MentionKind::mobiles;
const dingtalk::MentionKind ngx_http_dingtalk_at_user_ids = dingtalk::MentionKind::user_ids;
const dingtalk::MentionKind ngx_http_dingtalk_at_all = dingtalk::MentionKind::all;

// dingtalk_at_mobiles / dingtalk_at_user_ids VALUE... [severity=S1,S2]
// dingtalk_at_all on|off [severity=S1,S2]
char *ngx_http_dingtalk_set_mention(ngx_conf_t *cf, ngx_command_t *cmd,
                                    ngx_http_dingtalk_loc_conf_t *conf)
{
    const dingtalk::MentionKind kind = *static_cast<const dingtalk::MentionKind *>(cmd->post);
    auto rules = grown<std::vector<dingtalk::MentionRule>, &dingtalk::Settings::mentions>(
        conf, std::vector<dingtalk::MentionRule>());
    dingtalk::MentionRule rule;
    std::string why;
    for (ngx_uint_t i = 1; i < cf->args->nelts && why.empty(); ++i) {
        why = dingtalk::add_mention_argument(rule, kind,
                                             ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, i)));
    }
    why = why.empty() ? dingtalk::check_mention_rule(rule, kind) : why;
    if (!why.empty()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: %s", &cmd->name, why.c_str());
        return conf_error();
    }
    if (rules->size() >= 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: too many rules (32 at most)", &cmd->name);
        return conf_error();
    }
    rules->push_back(std::move(rule));
    ngx_http_dingtalk_own(conf).mentions = std::move(rules);
    return NGX_CONF_OK;
}

const ngx_http_dingtalk_auth_e ngx_http_dingtalk_auth_bearer = ngx_http_dingtalk_auth_e::bearer;
const ngx_http_dingtalk_auth_e ngx_http_dingtalk_auth_basic = ngx_http_dingtalk_auth_e::basic;

// dingtalk_auth_bearer_file FILE / dingtalk_auth_basic_file FILE: read now, by the master (a
// Kubernetes Secret mounted 0400 works), never logged; a changed file takes effect on reload.
char *ngx_http_dingtalk_set_auth_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                      ngx_http_dingtalk_loc_conf_t *conf)
{
    const auto kind = *static_cast<const ngx_http_dingtalk_auth_e *>(cmd->post);
    const ngx_str_t &file = ngx_http_dingtalk_arg(cf, 1);
    std::string text, error;
    if (!read_conf_file(cf, cmd->name, file, text, kMaxTokenFile * 16)) {
        return conf_error();
    }
    auto auth =
        grown<dingtalk::Credentials, &dingtalk::Settings::auth>(conf, dingtalk::Credentials());
    const bool ok = kind == ngx_http_dingtalk_auth_e::bearer ? auth->add_bearer_file(text, error)
                                                             : auth->add_basic_file(text, error);
    if (!ok) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: \"%V\" %s", &cmd->name, &file, error.c_str());
        return conf_error();
    }
    ngx_http_dingtalk_own(conf).auth = std::move(auth);
    return NGX_CONF_OK;
}

// dingtalk_hide_labels NAME... | off: the labels no line of a message shows (off: none).
char *ngx_http_dingtalk_set_hide_labels(ngx_conf_t *cf, ngx_command_t *,
                                        ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::hidden_labels>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    auto names = std::make_shared<dingtalk::LabelNames>();
    const bool off =
        cf->args->nelts == 2 && ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1)) == "off";
    for (ngx_uint_t i = 1; i < cf->args->nelts && !off; ++i) {
        const std::string why =
            dingtalk::add_label_name(*names, ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, i)));
        if (!why.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "dingtalk_hide_labels: %s", why.c_str());
            return conf_error();
        }
    }
    *field = std::move(names);
    return NGX_CONF_OK;
}

// dingtalk_metrics: this location shows the metrics of every worker.
char *ngx_http_dingtalk_set_metrics(ngx_conf_t *cf, ngx_command_t *, ngx_http_dingtalk_loc_conf_t *)
{
    if (char *rv = set_content_handler(cf, ngx_http_dingtalk_metrics_handler); rv != NGX_CONF_OK) {
        return rv;
    }
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    mcf->used = 1; // the zone the counters live in
    return NGX_CONF_OK;
}

// dingtalk_action: this location answers the action links (issue #25).
char *ngx_http_dingtalk_set_action(ngx_conf_t *cf, ngx_command_t *, ngx_http_dingtalk_loc_conf_t *)
{
    return set_content_handler(cf, ngx_http_dingtalk_action_handler);
}

// dingtalk_action_key_file FILE: the keys that sign action links ("ID SECRET" lines; the first
// signs, all verify). Read here, by the master; no key ever reaches a log.
char *ngx_http_dingtalk_set_action_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                            ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::action_keys>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const ngx_str_t &file = ngx_http_dingtalk_arg(cf, 1);
    std::string text, error;
    if (!read_conf_file(cf, cmd->name, file, text, kMaxTokenFile * 16)) {
        return conf_error();
    }
    auto keys = std::make_shared<dingtalk::ActionKeys>();
    if (!keys->add_file(text, error)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: \"%V\" %s", &cmd->name, &file, error.c_str());
        return conf_error();
    }
    *field = std::move(keys);
    return NGX_CONF_OK;
}

namespace
{

// One duration of dingtalk_action_durations, in seconds: from a minute to a year.
bool action_duration(ngx_str_t v, std::chrono::seconds &out)
{
    const ngx_msec_t t = ngx_parse_time(&v, 1);
    if (t == static_cast<ngx_msec_t>(NGX_ERROR) || t < 60 || t > 365 * 86400) {
        return false;
    }
    out = std::chrono::seconds(t);
    return true;
}

} // namespace

// dingtalk_action_durations TIME... [resolved=TIME|resolved=off]: a link for each duration, and
// one "until resolved" with that hard end (off: none).
char *ngx_http_dingtalk_set_action_durations(ngx_conf_t *cf, ngx_command_t *cmd,
                                             ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *durations = ngx_http_dingtalk_claim_field<&dingtalk::Settings::action_durations>(conf);
    auto *resolved =
        ngx_http_dingtalk_claim_field<&dingtalk::Settings::action_until_resolved>(conf);
    if (durations == nullptr || resolved == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    durations->clear();
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        ngx_str_t v = ngx_http_dingtalk_arg(cf, i);
        const bool until = v.len > 9 && ngx_strncmp(v.data, "resolved=", 9) == 0;
        std::chrono::seconds d{0};
        if (until && i + 1 == cf->args->nelts && ngx_http_dingtalk_view(v).substr(9) == "off") {
            *resolved = d;
            continue;
        }
        if (until) {
            v.data += 9;
            v.len -= 9;
        }
        if ((until && i + 1 != cf->args->nelts) || !action_duration(v, d) ||
            (!until && durations->size() == 4)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%V: invalid \"%V\": up to 4 times from 1m to 365d, then "
                               "resolved=TIME or resolved=off last",
                               &cmd->name, &ngx_http_dingtalk_arg(cf, i));
            return conf_error();
        }
        (until ? *resolved : durations->emplace_back()) = d;
    }
    return NGX_CONF_OK;
}

// dingtalk_alertmanager_bearer_file / _basic_file FILE: how the action location authenticates
// to Alertmanager's API. The credential is kept as the Authorization value, never logged.
char *ngx_http_dingtalk_set_alertmanager_auth_file(ngx_conf_t *cf, ngx_command_t *cmd,
                                                   ngx_http_dingtalk_loc_conf_t *conf)
{
    auto *field =
        ngx_http_dingtalk_claim_field<&dingtalk::Settings::alertmanager_authorization>(conf);
    if (field == nullptr) {
        return const_cast<char *>("is duplicate (one of the bearer and basic files)");
    }
    const auto kind = *static_cast<const ngx_http_dingtalk_auth_e *>(cmd->post);
    const ngx_str_t &file = ngx_http_dingtalk_arg(cf, 1);
    std::string text, error;
    if (!read_conf_file(cf, cmd->name, file, text, kMaxTokenFile)) {
        return conf_error();
    }
    if (!dingtalk::authorization_from_file(text, kind == ngx_http_dingtalk_auth_e::basic, *field,
                                           error)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: \"%V\" %s", &cmd->name, &file, error.c_str());
        return conf_error();
    }
    return NGX_CONF_OK;
}

// dingtalk_message_type markdown | actioncard: which DingTalk message a message that shows one
// firing alert may be (render.hpp says when it is a card).
char *ngx_http_dingtalk_set_message_type(ngx_conf_t *cf, ngx_command_t *cmd,
                                         ngx_http_dingtalk_loc_conf_t *conf)
{
    bool *field = ngx_http_dingtalk_claim_field<&dingtalk::Settings::action_card>(conf);
    if (field == nullptr) {
        return ngx_http_dingtalk_duplicate();
    }
    const std::string_view v = ngx_http_dingtalk_view(ngx_http_dingtalk_arg(cf, 1));
    if (v != "markdown" && v != "actioncard") {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\" directive, it must be \"markdown\" "
                           "or \"actioncard\"",
                           &ngx_http_dingtalk_arg(cf, 1), &cmd->name);
        return conf_error();
    }
    *field = v == "actioncard";
    return NGX_CONF_OK;
}
