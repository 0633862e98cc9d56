// Shared memory for the per-robot send windows (and the metrics; the notifications' records are
// in ngx_http_dingtalk_records.cpp), as limit_req keeps its zone: a red-black tree
// of robots (keyed by a hash of the token, never the token) in a slab pool, with an LRU list so
// that robots nobody uses any more make room for new ones. Every worker and every location that
// sends to a robot reserves from the same window, under the zone's mutex. When no room can be
// made, a send is refused (503): a limit that switched itself off would let DingTalk throttle.

#include "ngx_http_dingtalk_zone.hpp"

#include <algorithm>
#include <vector>

namespace
{

// A robot that sent nothing for this long (and is not cooling down) may be evicted.
constexpr uint64_t kIdleMs = 10 * 60 * 1000;

struct robot_node_t {
    ngx_rbtree_node_t node; // first: the tree hands us node pointers
    ngx_queue_t lru;
    u_char key[kRobotKeySize];
    dingtalk::RateWindow window;
    char name[64]; // for metrics: dingtalk_robot_name or a hash of the token
    uint64_t last_used;
    uint64_t sent;
    uint64_t failed;
};

// A robot takes one slab page (docs/directives.md: about 250 robots in 1m).
static_assert(sizeof(robot_node_t) <= 4096, "a robot fits a 4 KB page");

robot_node_t *as_robot(ngx_rbtree_node_t *n)
{
    return reinterpret_cast<robot_node_t *>(n);
}

void insert_robot(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
                  ngx_rbtree_node_t *sentinel) noexcept
{
    ngx_rbtree_node_t **p;
    for (;;) {
        if (node->key != temp->key) {
            p = node->key < temp->key ? &temp->left : &temp->right;
        } else {
            p = ngx_memcmp(as_robot(node)->key, as_robot(temp)->key, kRobotKeySize) < 0
                    ? &temp->left
                    : &temp->right;
        }
        if (*p == sentinel) {
            break;
        }
        temp = *p;
    }
    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

// Unused for a while: its counters may go.
bool idle(const robot_node_t *rn, uint64_t now)
{
    return dingtalk::idle(rn->window, now) && rn->last_used + kIdleMs <= now;
}

robot_node_t *lookup(zone_ctx_t *ctx, const u_char *key, uint32_t hash)
{
    ngx_rbtree_node_t *node = ctx->sh->rbtree.root, *sentinel = ctx->sh->rbtree.sentinel;
    while (node != sentinel) {
        if (hash != node->key) {
            node = hash < node->key ? node->left : node->right;
            continue;
        }
        const int rc = ngx_memcmp(key, as_robot(node)->key, kRobotKeySize);
        if (rc == 0) {
            return as_robot(node);
        }
        node = rc < 0 ? node->left : node->right;
    }
    return nullptr;
}

void forget(zone_ctx_t *ctx, robot_node_t *rn)
{
    ngx_queue_remove(&rn->lru);
    ngx_rbtree_delete(&ctx->sh->rbtree, &rn->node);
    ngx_slab_free_locked(ctx->shpool, rn);
}

// Makes room: robots unused for a while first (least recently used), then robots whose window
// holds nothing that still counts (their counters restart; their limit is not weakened).
bool make_room(zone_ctx_t *ctx, uint64_t now)
{
    for (const bool counters_too : {false, true}) {
        int looked = 0;
        for (ngx_queue_t *q = ngx_queue_last(&ctx->sh->lru);
             q != ngx_queue_sentinel(&ctx->sh->lru) && looked < 64; ++looked) {
            robot_node_t *rn = ngx_queue_data(q, robot_node_t, lru);
            q = ngx_queue_prev(q);
            if (counters_too ? dingtalk::idle(rn->window, now) : idle(rn, now)) {
                forget(ctx, rn);
                return true;
            }
        }
    }
    return false;
}

robot_node_t *add_robot(zone_ctx_t *ctx, const u_char *key, uint32_t hash, uint64_t now)
{
    auto *rn =
        static_cast<robot_node_t *>(ngx_slab_alloc_locked(ctx->shpool, sizeof(robot_node_t)));
    if (rn == nullptr && make_room(ctx, now)) {
        rn = static_cast<robot_node_t *>(ngx_slab_alloc_locked(ctx->shpool, sizeof(robot_node_t)));
    }
    if (rn == nullptr) {
        return nullptr;
    }
    rn->node.key = hash;
    ngx_memcpy(rn->key, key, kRobotKeySize);
    dingtalk::init(rn->window);
    rn->name[0] = '\0';
    rn->last_used = now;
    rn->sent = 0;
    rn->failed = 0;
    ngx_rbtree_insert(&ctx->sh->rbtree, &rn->node);
    ngx_queue_insert_head(&ctx->sh->lru, &rn->lru);
    return rn;
}

// The robot's node, created when missing; nullptr when the zone is full of busy robots.
// Called with the zone locked.
robot_node_t *find_or_add(zone_ctx_t *ctx, const u_char *key, bool create)
{
    const uint32_t hash = ngx_crc32_short(const_cast<u_char *>(key), kRobotKeySize);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    robot_node_t *rn = lookup(ctx, key, hash);
    if (rn != nullptr) {
        ngx_queue_remove(&rn->lru);
        ngx_queue_insert_head(&ctx->sh->lru, &rn->lru);
        rn->last_used = now;
        return rn;
    }
    return create ? add_robot(ctx, key, hash, now) : nullptr;
}

} // namespace

namespace
{

// A reload that changed dingtalk_zone_size makes a new zone: it starts with what the running
// one holds, most recently used robots first, as far as they fit (called by the master while
// the old workers may still send: under the old zone's lock).
void carry_over(zone_ctx_t *ctx, zone_ctx_t *old, ngx_log_t *log)
{
    ngx_shmtx_lock(&old->shpool->mutex);
    zone_metrics_t &m = ctx->sh->metrics;
    const zone_metrics_t &o = old->sh->metrics;
    for (std::size_t i = 0; i < dingtalk::kEndings; ++i) {
        m.endings[i] = o.endings[i];
    }
    for (std::size_t i = 0; i < dingtalk::kErrcodeSlots; ++i) {
        m.errcodes[i] = o.errcodes[i];
    }
    for (std::size_t i = 0; i < dingtalk::kDurationBuckets.size() + 1; ++i) {
        m.duration[i] = o.duration[i];
    }
    m.duration_sum_ms = o.duration_sum_ms;
    m.retries = o.retries;
    m.held = o.held;
    m.store_errors = o.store_errors;
    m.store_down = o.store_down;
    m.store_warm_until = o.store_warm_until;
    for (std::size_t i = 0; i < dingtalk::kActionResults; ++i) {
        m.silences[i] = o.silences[i];
    }
    for (std::size_t i = 0; i < dingtalk::kExpireResults; ++i) {
        m.expires[i] = o.expires[i];
    }
    ctx->sh->until_resolved = old->sh->until_resolved;
    ctx->sh->next_send_id = old->sh->next_send_id;

    ngx_uint_t copied = 0, left = 0;
    for (ngx_queue_t *q = ngx_queue_head(&old->sh->lru); q != ngx_queue_sentinel(&old->sh->lru);
         q = ngx_queue_next(q)) {
        const robot_node_t *from = ngx_queue_data(q, robot_node_t, lru);
        auto *rn =
            static_cast<robot_node_t *>(ngx_slab_alloc_locked(ctx->shpool, sizeof(robot_node_t)));
        if (rn == nullptr) {
            ++left;
            continue;
        }
        ngx_memcpy(rn, from, sizeof(robot_node_t));
        ngx_rbtree_insert(&ctx->sh->rbtree, &rn->node);
        ngx_queue_insert_tail(&ctx->sh->lru, &rn->lru);
        ++copied;
    }
    ngx_http_dingtalk_carry_records(ctx, old);
    ngx_shmtx_unlock(&old->shpool->mutex);
    const ngx_uint_t level = left ? NGX_LOG_WARN : NGX_LOG_NOTICE;
    ngx_log_error(level, log, 0,
                  "dingtalk: dingtalk_zone_size changed: %ui robots carried over to the new zone, "
                  "%ui did not fit",
                  copied, left);
}

} // namespace

ngx_int_t ngx_http_dingtalk_init_zone(ngx_shm_zone_t *shm_zone, void *data) noexcept
{
    auto *octx = static_cast<zone_ctx_t *>(data);
    auto *ctx = static_cast<zone_ctx_t *>(shm_zone->data);

    if (octx != nullptr) {
        // a reload: the windows carry over, so a reload cannot be used to send a burst
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        ctx->previous = nullptr;
        return NGX_OK;
    }

    ctx->shpool = reinterpret_cast<ngx_slab_pool_t *>(shm_zone->shm.addr);
    if (shm_zone->shm.exists) {
        ctx->sh = static_cast<zone_shared_t *>(ctx->shpool->data);
        return NGX_OK;
    }

    ctx->sh = static_cast<zone_shared_t *>(ngx_slab_calloc(ctx->shpool, sizeof(zone_shared_t)));
    if (ctx->sh == nullptr) {
        return NGX_ERROR;
    }
    ctx->shpool->data = ctx->sh;
    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel, insert_robot);
    ngx_queue_init(&ctx->sh->lru);
    ngx_http_dingtalk_init_records(ctx->sh);

    static const char log_ctx[] = " in dingtalk zone";
    ctx->shpool->log_ctx = static_cast<u_char *>(ngx_slab_alloc(ctx->shpool, sizeof(log_ctx)));
    if (ctx->shpool->log_ctx == nullptr) {
        return NGX_ERROR;
    }
    ngx_memcpy(ctx->shpool->log_ctx, log_ctx, sizeof(log_ctx));
    ctx->shpool->log_nomem = 0; // a full zone is reported by us, with advice

    if (ctx->previous != nullptr && ctx->previous->sh != nullptr) {
        carry_over(ctx, ctx->previous, shm_zone->shm.log);
    }
    ctx->previous = nullptr; // the old cycle's memory goes away after this reload
    return NGX_OK;
}

void *ngx_http_dingtalk_zone_ctx(ngx_conf_t *cf, const ngx_str_t &name)
{
    auto *ctx = static_cast<zone_ctx_t *>(ngx_pcalloc(cf->pool, sizeof(zone_ctx_t)));
    if (ctx == nullptr) {
        return nullptr;
    }
    // ngx_cycle is still the running cycle while the new configuration is read
    const ngx_list_part_t *part = &const_cast<ngx_cycle_t *>(ngx_cycle)->shared_memory.part;
    auto *zones = static_cast<ngx_shm_zone_t *>(part->elts);
    for (ngx_uint_t i = 0;; ++i) {
        if (i >= part->nelts) {
            if (part->next == nullptr) {
                break;
            }
            part = part->next;
            zones = static_cast<ngx_shm_zone_t *>(part->elts);
            i = 0;
        }
        if (zones[i].tag == &ngx_http_dingtalk_module && zones[i].shm.name.len == name.len &&
            ngx_strncmp(zones[i].shm.name.data, name.data, name.len) == 0) {
            ctx->previous = static_cast<zone_ctx_t *>(zones[i].data);
        }
    }
    return ctx;
}

dingtalk::Reservation ngx_http_dingtalk_reserve(ngx_shm_zone_t *zone, const u_char *key,
                                                const dingtalk::RateLimit &limit,
                                                uint64_t attempt_ms)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    dingtalk::Reservation res{dingtalk::Reservation::full, 0, 0, limit.window_ms};
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        res = dingtalk::reserve(rn->window, limit, now, attempt_ms, ++ctx->sh->next_send_id);
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return res;
}

dingtalk::Reservation ngx_http_dingtalk_reserve_all(ngx_shm_zone_t *zone, const u_char *key,
                                                    const dingtalk::RateLimit &limit,
                                                    uint64_t attempt_ms, uint32_t n)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    dingtalk::Reservation res{dingtalk::Reservation::full, 0, 0, limit.window_ms};
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        res =
            dingtalk::reserve_all(rn->window, limit, now, attempt_ms, n, ctx->sh->next_send_id + 1);
        ctx->sh->next_send_id += n;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return res;
}

void ngx_http_dingtalk_settle(ngx_shm_zone_t *zone, const u_char *key, uint64_t id, bool sent,
                              uint64_t ended_ms)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, false)) {
        if (sent) {
            dingtalk::correct(rn->window, id, ended_ms);
        } else {
            dingtalk::release(rn->window, id);
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_release(ngx_shm_zone_t *zone, const u_char *key, uint64_t id)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, false)) {
        dingtalk::release(rn->window, id);
        if (rn->name[0] == '\0' && rn->sent == 0 && rn->failed == 0 &&
            dingtalk::idle(rn->window, ngx_http_dingtalk_now_ms())) {
            forget(ctx, rn);
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_throttle(ngx_shm_zone_t *zone, const u_char *key,
                                const dingtalk::RateLimit &limit)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        dingtalk::throttle(rn->window, limit, ngx_http_dingtalk_now_ms());
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

// ---------------------------------------------------------------------------------------------
// metrics

namespace
{

zone_metrics_t *metrics_of(ngx_shm_zone_t *zone)
{
    return &ngx_http_dingtalk_zone_ctx_of(zone)->sh->metrics;
}

void add(ngx_atomic_t *counter, ngx_atomic_int_t n)
{
    (void)ngx_atomic_fetch_add(counter, n);
}

} // namespace

void ngx_http_dingtalk_count_ending(ngx_shm_zone_t *zone, dingtalk::Ending ending)
{
    add(&metrics_of(zone)->endings[static_cast<std::size_t>(ending)], 1);
}

void ngx_http_dingtalk_count_delivery(ngx_shm_zone_t *zone, const u_char *key,
                                      const std::string &robot, bool static_name,
                                      const dingtalk::Report &rep, dingtalk::Ending ending,
                                      ngx_msec_t duration_ms)
{
    zone_metrics_t *m = metrics_of(zone);
    add(&m->endings[static_cast<std::size_t>(ending)], 1);
    add(&m->duration[dingtalk::duration_slot(duration_ms)], 1);
    add(&m->duration_sum_ms, static_cast<ngx_atomic_int_t>(duration_ms));
    if (rep.outcome == dingtalk::Outcome::bad_request) {
        return; // nothing was sent: no robot to count
    }

    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        // a name from request data must not rename a robot in everyone's metrics
        if (static_name || rn->name[0] == '\0') {
            const std::size_t n = std::min(robot.size(), sizeof(rn->name) - 1);
            ngx_memcpy(rn->name, robot.data(), n);
            rn->name[n] = '\0';
        }
        (rep.outcome == dingtalk::Outcome::delivered ? rn->sent : rn->failed) += 1;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_count_answer(ngx_shm_zone_t *zone, long errcode)
{
    add(&metrics_of(zone)->errcodes[dingtalk::errcode_slot(errcode)], 1);
}

void ngx_http_dingtalk_count_retry(ngx_shm_zone_t *zone)
{
    add(&metrics_of(zone)->retries, 1);
}

void ngx_http_dingtalk_count_action(ngx_shm_zone_t *zone, dingtalk::ActionResult result)
{
    add(&metrics_of(zone)->silences[static_cast<std::size_t>(result)], 1);
}

void ngx_http_dingtalk_count_expire(ngx_shm_zone_t *zone, dingtalk::ExpireCount result)
{
    add(&metrics_of(zone)->expires[static_cast<std::size_t>(result)], 1);
}

void ngx_http_dingtalk_count_held(ngx_shm_zone_t *zone)
{
    add(&metrics_of(zone)->held, 1);
}

void ngx_http_dingtalk_gauge(ngx_shm_zone_t *zone, ngx_http_dingtalk_gauge_e which, int delta)
{
    zone_metrics_t *m = metrics_of(zone);
    add(which == ngx_http_dingtalk_gauge_e::tasks_in_flight ? &m->tasks_in_flight[ngx_process_slot]
                                                            : &m->waiting[ngx_process_slot],
        delta);
}

bool ngx_http_dingtalk_store_fallback(ngx_shm_zone_t *zone)
{
    const zone_metrics_t *m = metrics_of(zone);
    return m->store_down != 0 || m->store_warm_until > ngx_http_dingtalk_now_ms();
}

bool ngx_http_dingtalk_store_failed(ngx_shm_zone_t *zone)
{
    zone_metrics_t *m = metrics_of(zone);
    add(&m->store_errors, 1);
    return ngx_atomic_cmp_set(&m->store_down, 0, 1) != 0;
}

ngx_http_dingtalk_store_e ngx_http_dingtalk_store_answered(ngx_shm_zone_t *zone, uint64_t warm_ms,
                                                           uint64_t span_ms)
{
    zone_metrics_t *m = metrics_of(zone);
    const bool back = m->store_down != 0 && ngx_atomic_cmp_set(&m->store_down, 1, 0) != 0;
    // back from an outage: what this instance sent meanwhile is not in the store's window
    const uint64_t warm = std::max(warm_ms, back ? span_ms : 0);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    for (ngx_atomic_uint_t old = m->store_warm_until; warm != 0 && old < now + warm;
         old = m->store_warm_until) {
        if (ngx_atomic_cmp_set(&m->store_warm_until, old, now + warm)) {
            return back         ? ngx_http_dingtalk_store_e::back
                   : old <= now ? ngx_http_dingtalk_store_e::emptied
                                : ngx_http_dingtalk_store_e::same;
        }
    }
    return back ? ngx_http_dingtalk_store_e::back : ngx_http_dingtalk_store_e::same;
}

void ngx_http_dingtalk_reset_gauges(ngx_shm_zone_t *zone)
{
    zone_metrics_t *m = metrics_of(zone);
    m->tasks_in_flight[ngx_process_slot] = 0;
    m->waiting[ngx_process_slot] = 0;
}

namespace
{

struct copied_robot_t {
    char name[sizeof(robot_node_t::name)];
    uint64_t sent, failed;
};

// The robots' counters, copied out under the lock into plain storage (so nothing can throw
// while it is held), allocating only between tries.
std::vector<copied_robot_t> copy_robots(zone_ctx_t *ctx)
{
    std::vector<copied_robot_t> robots;
    for (;;) {
        ngx_shmtx_lock(&ctx->shpool->mutex);
        std::size_t count = 0;
        for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->lru); q != ngx_queue_sentinel(&ctx->sh->lru);
             q = ngx_queue_next(q)) {
            ++count;
        }
        if (count <= robots.capacity()) {
            robots.resize(count); // no allocation: capacity suffices
            std::size_t i = 0;
            for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->lru);
                 q != ngx_queue_sentinel(&ctx->sh->lru); q = ngx_queue_next(q), ++i) {
                const robot_node_t *rn = ngx_queue_data(q, robot_node_t, lru);
                ngx_memcpy(robots[i].name, rn->name, sizeof(rn->name));
                robots[i].sent = rn->sent;
                robots[i].failed = rn->failed;
            }
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            return robots;
        }
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        robots.reserve(count + 16);
    }
}

// One series per name: two tokens may share a name (and a rotated token keeps its name).
std::vector<dingtalk::RobotStats> by_name(const std::vector<copied_robot_t> &robots)
{
    std::vector<dingtalk::RobotStats> out;
    for (const copied_robot_t &c : robots) {
        if (c.name[0] == '\0') {
            continue; // known to the rate limiter only, nothing delivered yet
        }
        auto it = std::find_if(out.begin(), out.end(),
                               [&](const dingtalk::RobotStats &r) { return r.name == c.name; });
        if (it == out.end()) {
            out.push_back({c.name, c.sent, c.failed});
        } else {
            it->sent += c.sent;
            it->failed += c.failed;
        }
    }
    std::sort(out.begin(), out.end(), [](const auto &a, const auto &b) { return a.name < b.name; });
    return out;
}

} // namespace

dingtalk::MetricsSnapshot ngx_http_dingtalk_snapshot(ngx_shm_zone_t *zone)
{
    dingtalk::MetricsSnapshot s;
    const zone_metrics_t *m = metrics_of(zone);
    for (std::size_t i = 0; i < dingtalk::kEndings; ++i) {
        s.endings[i] = m->endings[i];
    }
    for (std::size_t i = 0; i < dingtalk::kErrcodeSlots; ++i) {
        s.errcodes[i] = m->errcodes[i];
    }
    for (std::size_t i = 0; i < s.duration.size(); ++i) {
        s.duration[i] = m->duration[i];
    }
    s.duration_sum_ms = m->duration_sum_ms;
    s.retries = m->retries;
    s.held = m->held;
    s.store_errors = m->store_errors;
    s.store_up = m->store_down == 0;
    for (std::size_t i = 0; i < dingtalk::kActionResults; ++i) {
        s.silences[i] = m->silences[i];
    }
    for (std::size_t i = 0; i < dingtalk::kExpireResults; ++i) {
        s.expires[i] = m->expires[i];
    }
    for (ngx_uint_t i = 0; i < NGX_MAX_PROCESSES; ++i) {
        s.tasks_in_flight += m->tasks_in_flight[i];
        s.waiting += m->waiting[i];
    }
    s.robots = by_name(copy_robots(ngx_http_dingtalk_zone_ctx_of(zone)));
    return s;
}
