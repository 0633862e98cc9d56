// The shared zone's layout, for the files that keep something in it: the robots' windows and
// the metrics (ngx_http_dingtalk_zone.cpp), the notifications' records
// (ngx_http_dingtalk_records.cpp). Everything in it is plain data, changed under the mutex of
// its slab pool (the metrics by atomic adds).
#pragma once

#include "ngx_http_dingtalk.hpp"

#include "resolved.hpp"

// Counters every worker adds to without a lock, with atomic adds (as nginx's status module
// keeps its own). Gauges are kept per worker process slot, so that a worker that dies with
// deliveries in flight leaves nothing behind: the worker that takes its slot starts at zero.
struct zone_metrics_t {
    ngx_atomic_t endings[dingtalk::kEndings];
    ngx_atomic_t errcodes[dingtalk::kErrcodeSlots];
    ngx_atomic_t duration[dingtalk::kDurationBuckets.size() + 1];
    ngx_atomic_t duration_sum_ms;
    ngx_atomic_t retries;
    ngx_atomic_t held;
    ngx_atomic_t store_errors;     // dingtalk_store calls that failed
    ngx_atomic_t store_down;       // 1: the store failed last, the fallback window applies
    ngx_atomic_t store_warm_until; // the store was emptied: the fallback applies too until then
    ngx_atomic_t silences[dingtalk::kActionResults]; // the action location's POSTs, by result
    ngx_atomic_t expires[dingtalk::kExpireResults];  // its "until resolved" silences, by end
    ngx_atomic_t tasks_in_flight[NGX_MAX_PROCESSES];
    ngx_atomic_t waiting[NGX_MAX_PROCESSES];
};

struct zone_shared_t {
    ngx_rbtree_t rbtree; // robots
    ngx_rbtree_node_t sentinel;
    ngx_queue_t lru; // most recently used first
    uint64_t next_send_id;
    zone_metrics_t metrics;
    ngx_rbtree_t records; // what was posted of each notification (ngx_http_dingtalk_records.cpp)
    ngx_rbtree_node_t records_sentinel;
    ngx_queue_t records_lru; // most recently used first
    ngx_queue_t room;        // notifications waiting to be folded (ngx_http_dingtalk_room.cpp)
    uint64_t room_seq;       // their order of arrival
    // "until resolved" silences (ngx_http_dingtalk_resolved.cpp), and when the next check of
    // them is due / until when the one running may take (one worker checks at a time)
    dingtalk::UntilResolvedTable until_resolved;
    uint64_t resolved_due_ms;
    uint64_t resolved_lease_ms;
    ngx_pid_t resolved_lease_pid; // the worker whose round holds the lease (renewed while it runs)
};

struct zone_ctx_t {
    zone_shared_t *sh;
    ngx_slab_pool_t *shpool;
    zone_ctx_t *previous; // the running cycle's zone while a reload sets this one up
};

inline zone_ctx_t *ngx_http_dingtalk_zone_ctx_of(ngx_shm_zone_t *zone)
{
    return static_cast<zone_ctx_t *>(zone->data);
}

inline uint64_t ngx_http_dingtalk_now_ms()
{
    return static_cast<uint64_t>(ngx_current_msec);
}

// A new zone's record tree; a reload that made a new zone (another size) starts with the
// running one's records, as far as they fit. Both with the zones locked.
void ngx_http_dingtalk_init_records(zone_shared_t *sh);
// A folded message's alerts, marked in their notification's record (the zone locked): whether
// all of them are posted now.
bool ngx_http_dingtalk_mark_locked(zone_ctx_t *ctx, uint64_t key, const uint64_t *alerts,
                                   std::size_t n, bool taken);
void ngx_http_dingtalk_carry_records(zone_ctx_t *to, zone_ctx_t *from);
