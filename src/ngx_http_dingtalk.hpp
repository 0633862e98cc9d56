// What the three glue files share: configuration structs, the request handler, the zone.
//   ngx_http_dingtalk_module.cpp   directives, configuration, module definition
//   ngx_http_dingtalk_handler.cpp  request flow: body, rate limit, thread task, retries, reply
//   ngx_http_dingtalk_zone.cpp     shared memory: per-robot send windows across workers
#pragma once

#include "ngx.hpp"

#include "auth.hpp"
#include "delivery.hpp"
#include "metrics.hpp"
#include "ratelimit.hpp"
#include "render.hpp"
#include "template.hpp"
#include "zone.hpp"

#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

extern "C" {
extern ngx_module_t ngx_http_dingtalk_module;
}

// A robot named in the configuration (token and dingtalk_robot_name both without
// variables): one token may not be named twice.
struct ngx_http_dingtalk_named_robot_t {
    u_char key[16]; // robot_key(token)
    ngx_str_t name;
    ngx_str_t file;
    ngx_uint_t line;
};

struct ngx_http_dingtalk_main_conf_t {
    ngx_shm_zone_t *zone; // per-robot send windows, shared by all workers
    size_t zone_size;
    ngx_flag_t used;    // some location has "dingtalk"
    ngx_array_t *named; // of ngx_http_dingtalk_named_robot_t
};

struct ngx_http_dingtalk_loc_conf_t {
    ngx_flag_t enable;
    ngx_http_complex_value_t *token;
    ngx_http_complex_value_t *secret;
    ngx_str_t env_token; // ROBOT_TOKEN, when no dingtalk_token applies
    ngx_str_t api_url;
    ngx_str_t thread_pool_name;
    ngx_thread_pool_t *thread_pool; // added when dingtalk_thread_pool is read
    ngx_msec_t timeout;
    time_t keepalive_timeout; // dingtalk_keepalive_timeout
    size_t max_body_size;     // dingtalk_max_body_size
    ngx_uint_t max_alerts;    // dingtalk_max_alerts
    ngx_uint_t max_messages;  // dingtalk_max_messages
    const dingtalk::Zone *zone;
    ngx_flag_t ssl_verify;
    ngx_str_t ssl_trusted_certificate;
    std::shared_ptr<const std::string> *ca_pem;    // the CA file, read at configuration time
    std::shared_ptr<const dingtalk::Proxy> *proxy; // dingtalk_proxy; null: unset; holds null: off

    ngx_flag_t rate_limit; // NGX_CONF_UNSET until set; 0 = off
    dingtalk::RateLimit rate;

    std::shared_ptr<const dingtalk::Template> *text_template;  // dingtalk_template
    std::shared_ptr<const dingtalk::Template> *title_template; // dingtalk_title_template
    // dingtalk_at_*: the rules set at this level (null: inherited as a whole)
    std::shared_ptr<std::vector<dingtalk::MentionRule>> *mentions;
    ngx_http_complex_value_t *robot_name;         // the robot's name in metrics and logs
    std::shared_ptr<dingtalk::Credentials> *auth; // dingtalk_auth_*_file; null: open
    std::shared_ptr<dingtalk::Styles> *styles;    // dingtalk_severity_style; null: defaults
    ngx_flag_t verbose_replies;                   // replies say what the log says
    ngx_str_t keyword;                            // dingtalk_keyword; "" = none
    ngx_str_t at_mobiles_from;                    // dingtalk_at_mobiles_from; "" = none
    ngx_str_t at_user_ids_from;                   // dingtalk_at_user_ids_from; "" = none
    std::shared_ptr<const dingtalk::LabelNames> *hidden_labels; // dingtalk_hide_labels
    ngx_flag_t silence_link;                                    // dingtalk_silence_link

    // where "dingtalk;" stands, for errors found once the whole configuration is known
    ngx_str_t file;
    ngx_uint_t line;
};

// helpers

inline std::string_view ngx_http_dingtalk_view(const ngx_str_t &s)
{
    return std::string_view(reinterpret_cast<const char *>(s.data), s.len);
}

template <class T> void ngx_http_dingtalk_destroy(void *data) noexcept
{
    static_cast<T *>(data)->~T();
}

// A C++ object whose lifetime is the pool's: constructed in pool-cleanup storage, destroyed
// when the pool is. For a request pool that is after any thread is done with it: the request
// is "blocked" while a task runs, and nginx frees nothing of a blocked request.
template <class T, class... Args> T *ngx_http_dingtalk_pool_new(ngx_pool_t *pool, Args &&...args)
{
    ngx_pool_cleanup_t *cln = ngx_pool_cleanup_add(pool, sizeof(T));
    if (cln == nullptr) {
        return nullptr;
    }
    T *obj = new (cln->data) T(std::forward<Args>(args)...);
    cln->handler = ngx_http_dingtalk_destroy<T>;
    return obj;
}

// handlers
ngx_int_t ngx_http_dingtalk_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_http_dingtalk_metrics_handler(ngx_http_request_t *r) noexcept;

// A delivery left its connection to DingTalk idle, to be closed `keepalive` seconds from now
// unless used again: the worker's sweep timer is set to look by then.
void ngx_http_dingtalk_watch_idle(time_t keepalive) noexcept;

// zone
constexpr size_t kRobotKeySize = 16;
static_assert(sizeof(ngx_http_dingtalk_named_robot_t::key) == kRobotKeySize, "robot key");

// shm_zone->data for a new zone; remembers the running cycle's zone of the same name, so that
// a zone of another size still starts with its windows and counters.
void *ngx_http_dingtalk_zone_ctx(ngx_conf_t *cf, const ngx_str_t &name);
ngx_int_t ngx_http_dingtalk_init_zone(ngx_shm_zone_t *shm_zone, void *data) noexcept;
dingtalk::Reservation ngx_http_dingtalk_reserve(ngx_shm_zone_t *zone, const u_char *key,
                                                const dingtalk::RateLimit &limit,
                                                uint64_t attempt_ms);
// Sends for the n messages of one notification, ids res.id to res.id + n - 1: all or none.
dingtalk::Reservation ngx_http_dingtalk_reserve_all(ngx_shm_zone_t *zone, const u_char *key,
                                                    const dingtalk::RateLimit &limit,
                                                    uint64_t attempt_ms, uint32_t n);
// Messages of the body with this digest, in `total` messages, an earlier request got taken
// (dingtalk_max_messages).
uint32_t ngx_http_dingtalk_taken_before(ngx_shm_zone_t *zone, const u_char *key, uint64_t digest,
                                        uint32_t total);
void ngx_http_dingtalk_remember_taken(ngx_shm_zone_t *zone, const u_char *key, uint64_t digest,
                                      uint32_t taken, uint32_t total);
// The send ended (sent: it may have arrived, at ended_ms at the latest) or never left.
void ngx_http_dingtalk_settle(ngx_shm_zone_t *zone, const u_char *key, uint64_t id, bool sent,
                              uint64_t ended_ms);
// Gives a send back; forgets the robot too when nothing else was ever recorded for it (an
// invalid body must not hold room in the zone).
void ngx_http_dingtalk_release(ngx_shm_zone_t *zone, const u_char *key, uint64_t id);
void ngx_http_dingtalk_throttle(ngx_shm_zone_t *zone, const u_char *key,
                                const dingtalk::RateLimit &limit);

// metrics, summed over all workers in the same zone
enum class ngx_http_dingtalk_gauge_e { tasks_in_flight, waiting };
// A worker's gauges start at zero: a worker that died mid-delivery leaves none behind.
void ngx_http_dingtalk_reset_gauges(ngx_shm_zone_t *zone);
void ngx_http_dingtalk_count_ending(ngx_shm_zone_t *zone, dingtalk::Ending ending);
// robot: its name; static: named in the configuration (it replaces a name the robot has, where
// a name from variables or the default only names a robot that has none).
void ngx_http_dingtalk_count_delivery(ngx_shm_zone_t *zone, const u_char *key,
                                      const std::string &robot, bool static_name,
                                      const dingtalk::Report &rep, dingtalk::Ending ending,
                                      ngx_msec_t duration_ms);
void ngx_http_dingtalk_count_answer(ngx_shm_zone_t *zone, long errcode); // every attempt's
void ngx_http_dingtalk_count_retry(ngx_shm_zone_t *zone);
void ngx_http_dingtalk_count_held(ngx_shm_zone_t *zone);
void ngx_http_dingtalk_gauge(ngx_shm_zone_t *zone, ngx_http_dingtalk_gauge_e which, int delta);
dingtalk::MetricsSnapshot ngx_http_dingtalk_snapshot(ngx_shm_zone_t *zone);
