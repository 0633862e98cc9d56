// What the glue files share: configuration structs, the request handler, the zone.
//   ngx_http_dingtalk_module.cpp      the module: its directives' table, configuration, worker
//   start ngx_http_dingtalk_directives.cpp  each directive's parser ngx_http_dingtalk_handler.cpp
//   a request until its delivery starts: checks, body, target ngx_http_dingtalk_flow.cpp        a
//   delivery: rate limit, thread task, retries, its one end ngx_http_dingtalk_zone.cpp shared
//   memory: per-robot send windows and the metrics
#pragma once

#include "ngx.hpp"

#include "delivery.hpp"
#include "metrics.hpp"
#include "ratelimit.hpp"
#include "settings.hpp"
#include "resolved.hpp"
#include "silencer.hpp"

#include <exception>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

// An Alertmanager that action locations silence in: its "until resolved" silences are checked
// with its API, from a task of its (first) location's thread pool.
struct ngx_http_dingtalk_alertmanager_t {
    uint64_t identity; // dingtalk::alertmanager_identity(url)
    dingtalk::AlertmanagerApi *api;
    ngx_thread_pool_t *pool;
    const dingtalk::Store *store; // dingtalk_store: its silences are shared there too; or null
};

struct ngx_http_dingtalk_main_conf_t {
    ngx_shm_zone_t *zone; // the shared zone: robots' send windows and the metrics of all workers
    size_t zone_size;
    ngx_flag_t used;            // some location has "dingtalk" or "dingtalk_metrics"
    ngx_array_t *named;         // of ngx_http_dingtalk_named_robot_t
    bool store;                 // some location sends with dingtalk_store: its metrics are shown
    bool actions;               // some location has dingtalk_action: its metric is shown
    ngx_msec_t check_interval;  // dingtalk_action_check_interval
    ngx_array_t *alertmanagers; // of ngx_http_dingtalk_alertmanager_t, one per identity
};

// Copies one field of the settings (the one a directive sets) from one level to another.
using ngx_http_dingtalk_copy_pt = void (*)(dingtalk::Settings &to, const dingtalk::Settings &from);

struct ngx_http_dingtalk_loc_conf_t {
    ngx_flag_t enable; // "dingtalk" is in this location
    ngx_str_t file;    // ... here, for errors found once the whole configuration is known
    ngx_uint_t line;

    // What nginx evaluates per request, or owns: values that may hold variables, the pool.
    ngx_http_complex_value_t *token;      // dingtalk_token, dingtalk_token_file
    ngx_http_complex_value_t *secret;     // dingtalk_secret, dingtalk_secret_file
    ngx_http_complex_value_t *robot_name; // dingtalk_robot_name
    ngx_str_t env_token;                  // ROBOT_TOKEN, when no dingtalk_token applies
    ngx_str_t thread_pool_name;           // dingtalk_thread_pool
    ngx_thread_pool_t *thread_pool;

    // Everything else. While the configuration is read: what this level's directives set, the
    // copies in `own` saying which fields; once merged, the location's settings, only read.
    std::shared_ptr<dingtalk::Settings> *settings;
    ngx_array_t *own; // of ngx_http_dingtalk_copy_pt
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

// What was thrown, for a log line where C++ meets nginx.
inline const char *ngx_http_dingtalk_what(std::exception_ptr e) noexcept
{
    try {
        std::rethrow_exception(std::move(e));
    } catch (const std::exception &x) {
        return x.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

// A test build's injected failure (make integration-asan builds the module with
// DINGTALK_FAULTS): throws std::bad_alloc at the named point when nginx's environment has
// DINGTALK_FAULT=<point>. Nothing in other builds.
#if defined(DINGTALK_FAULTS)
void ngx_http_dingtalk_fault(const char *point);
#else
inline void ngx_http_dingtalk_fault(const char *) {}
#endif

// handlers
ngx_int_t ngx_http_dingtalk_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_http_dingtalk_metrics_handler(ngx_http_request_t *r) noexcept;
ngx_int_t ngx_http_dingtalk_action_handler(ngx_http_request_t *r) noexcept; // dingtalk_action

// The whole request body, from memory or the temp file (its size checked before); false, and
// logged, on a short read.
bool ngx_http_dingtalk_read_body(ngx_http_request_t *r, std::string &out);
off_t ngx_http_dingtalk_body_size(ngx_http_request_t *r); // what was read of it
// A header of the request by name (nginx 1.22 keeps no field for Origin); null when absent.
const ngx_table_elt_t *ngx_http_dingtalk_request_header(ngx_http_request_t *r,
                                                        std::string_view name);

// A small JSON reply, with Retry-After when retry_after (seconds) is more than 0.
ngx_int_t ngx_http_dingtalk_send_json(ngx_http_request_t *r, ngx_uint_t status,
                                      const std::string &body, ngx_uint_t retry_after = 0);

// The robot a request sends to, as metrics and logs know it (request pool memory).
struct ngx_http_dingtalk_robot_t {
    u_char key[16];   // robot_key(token)
    std::string name; // dingtalk_robot_name, or "robot-" and a hash of the token
    bool static_name; // named in the configuration, without variables
};

// Starts the delivery of a webhook whose body is read and target known; it answers the request
// in the end, whatever happens. false: nothing started (out of memory), the caller answers.
bool ngx_http_dingtalk_deliver(ngx_http_request_t *r, ngx_http_dingtalk_robot_t *robot,
                               dingtalk::Target target, std::string body);

// "until resolved" silences (ngx_http_dingtalk_resolved.cpp). The action location's Alertmanager
// as its settings say (reached directly: DingTalk's proxy and CAs do not apply).
dingtalk::AlertmanagerApi ngx_http_dingtalk_alertmanager_api(const dingtalk::Settings &s);
// An Alertmanager an action location uses, for the checks (at configuration time).
bool ngx_http_dingtalk_add_alertmanager(ngx_conf_t *cf, const dingtalk::Settings &s,
                                        ngx_thread_pool_t *pool);
// Keeps a silence the action location made or found "until resolved" in the shared zone
// (counted when the table is full).
// stored: the POST's task kept it in dingtalk_store too.
dingtalk::KeepResult ngx_http_dingtalk_keep_until_resolved(ngx_shm_zone_t *zone,
                                                           const std::string &id,
                                                           const dingtalk::ActionLink &link,
                                                           const dingtalk::Settings &s,
                                                           std::int64_t now, bool stored);
// The worker's check timer, armed when some location has dingtalk_action.
void ngx_http_dingtalk_resolved_start(ngx_cycle_t *cycle) noexcept;

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
// The send ended (sent: it may have arrived, at ended_ms at the latest) or never left.
void ngx_http_dingtalk_settle(ngx_shm_zone_t *zone, const u_char *key, uint64_t id, bool sent,
                              uint64_t ended_ms);
// Gives a send back; forgets the robot too when nothing else was ever recorded for it (an
// invalid body must not hold room in the zone).
void ngx_http_dingtalk_release(ngx_shm_zone_t *zone, const u_char *key, uint64_t id);
void ngx_http_dingtalk_throttle(ngx_shm_zone_t *zone, const u_char *key,
                                const dingtalk::RateLimit &limit);

// records: what each robot posted of each notification (ngx_http_dingtalk_records.cpp)
enum class ngx_http_dingtalk_claim_e {
    mine,    // the caller delivers it now
    taken,   // another request is delivering it: wait for it
    done,    // every alert was posted
    no_room, // no record can be kept: deliver it without one
};
struct ngx_http_dingtalk_claimed_t {
    ngx_http_dingtalk_claim_e claim = ngx_http_dingtalk_claim_e::no_room;
    std::vector<dingtalk::Posted> states; // of `alerts`, by position
    uint32_t messages = 0;                // taken of it before
};
// A unique id for a delivery that owns records.
uint64_t ngx_http_dingtalk_new_id(ngx_shm_zone_t *zone);
// The notification's record (made when missing) for `owner` until lease_until: keys are its
// alerts in ascending order (Delivery::record_keys()), alerts by position (alert_keys()).
ngx_http_dingtalk_claimed_t ngx_http_dingtalk_claim(ngx_shm_zone_t *zone, uint64_t key,
                                                    const std::vector<uint64_t> &keys,
                                                    const std::vector<uint64_t> &alerts,
                                                    uint64_t owner, uint64_t lease_until);
// A message's alerts were taken, or went out whole unanswered (a second time: counted as
// posted); whether all of them are posted now.
bool ngx_http_dingtalk_mark(ngx_shm_zone_t *zone, uint64_t key, const std::vector<uint64_t> &keys,
                            const std::vector<uint64_t> &alerts, bool taken);
// The owner is done: the record is kept keep_ms for a retry or a replica's copy (forgotten at
// once when nothing in it was posted).
void ngx_http_dingtalk_unclaim(ngx_shm_zone_t *zone, uint64_t key,
                               const std::vector<uint64_t> &keys, uint64_t owner, uint64_t keep_ms);

// the room: notifications waiting to be folded (ngx_http_dingtalk_room.cpp)
enum class ngx_http_dingtalk_room_e : uint8_t { none, waiting, sending, posted };
enum class ngx_http_dingtalk_sent_e { taken, in_doubt, not_sent };
struct ngx_http_dingtalk_waiting_t {
    const u_char *robot;
    uint64_t group; // fold only sections one location of one configuration rendered
    uint64_t key;   // the notification's
    uint64_t owner; // the delivery that waits
    const dingtalk::Section *section;
    const std::vector<uint64_t> *covers; // the alerts it shows or counts
};
struct ngx_http_dingtalk_folded_t {
    uint64_t key = 0;
    dingtalk::Section section;
    std::vector<uint64_t> covers;
};
// Puts the notification in the robot's room, or takes over its entry (a retry's): its state
// there (none: no room in the zone).
ngx_http_dingtalk_room_e ngx_http_dingtalk_room_enter(ngx_shm_zone_t *zone,
                                                      const ngx_http_dingtalk_waiting_t &w);
// The notification's state in the room; *others set when other notifications wait to be
// folded with it (others may be null).
ngx_http_dingtalk_room_e ngx_http_dingtalk_room_state(ngx_shm_zone_t *zone, uint64_t key,
                                                      bool *others, const u_char *robot,
                                                      uint64_t group);
// Takes what waits to be folded for this robot and group (firing first, then in order of
// arrival, at most kMaxFolded) for one send, until lease_until at the latest.
std::vector<ngx_http_dingtalk_folded_t>
ngx_http_dingtalk_room_take(ngx_shm_zone_t *zone, const u_char *robot, uint64_t group,
                            uint64_t send_id, uint64_t lease_until);
// What the send did to the notifications it took: those `included` in its message were taken,
// are in doubt (their records learn it) or were not sent; the others wait again.
void ngx_http_dingtalk_room_settle(ngx_shm_zone_t *zone, uint64_t send_id,
                                   const std::vector<uint64_t> &included,
                                   ngx_http_dingtalk_sent_e sent);
// The notification's request is done: a posted entry goes; another waits without it.
void ngx_http_dingtalk_room_leave(ngx_shm_zone_t *zone, uint64_t key, uint64_t owner);

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
void ngx_http_dingtalk_count_action(ngx_shm_zone_t *zone, dingtalk::ActionResult result);
void ngx_http_dingtalk_count_held(ngx_shm_zone_t *zone);
void ngx_http_dingtalk_count_expire(ngx_shm_zone_t *zone, dingtalk::ExpireCount result);
void ngx_http_dingtalk_gauge(ngx_shm_zone_t *zone, ngx_http_dingtalk_gauge_e which, int delta);
// dingtalk_store as this instance's workers see it: whether the robots use their fallback
// window (the store is down, or warming: emptied, or back from an outage, less than a PERIOD
// ago). failed: a call failed (counted); true when it was up until now (the caller logs it).
// answered: a call worked, warm_ms: the store still warms that long; back when it was down,
// emptied when this starts its warming (each said once, to one caller).
enum class ngx_http_dingtalk_store_e { same, back, emptied };
bool ngx_http_dingtalk_store_fallback(ngx_shm_zone_t *zone);
bool ngx_http_dingtalk_store_failed(ngx_shm_zone_t *zone);
ngx_http_dingtalk_store_e ngx_http_dingtalk_store_answered(ngx_shm_zone_t *zone, uint64_t warm_ms,
                                                           uint64_t span_ms);
dingtalk::MetricsSnapshot ngx_http_dingtalk_snapshot(ngx_shm_zone_t *zone);
