// Shared memory for the per-robot send windows, as limit_req keeps its zone: a red-black tree
// of robots (keyed by a hash of the token, never the token) in a slab pool, with an LRU list so
// that robots nobody uses any more make room for new ones. Every worker and every location that
// sends to a robot reserves from the same window, under the zone's mutex.

#include "ngx_http_dingtalk.hpp"

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

// Counters every worker adds to without a lock, with atomic adds (as nginx's status module
// keeps its own).
struct zone_metrics_t {
    ngx_atomic_t endings[dingtalk::kEndings];
    ngx_atomic_t errcodes[dingtalk::kErrcodeSlots];
    ngx_atomic_t duration[dingtalk::kDurationBuckets.size() + 1];
    ngx_atomic_t duration_sum_ms;
    ngx_atomic_t retries;
    ngx_atomic_t held;
    ngx_atomic_t tasks_in_flight;
    ngx_atomic_t waiting;
};

struct zone_shared_t {
    ngx_rbtree_t rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t lru; // most recently used first
    zone_metrics_t metrics;
};

struct zone_ctx_t {
    zone_shared_t *sh;
    ngx_slab_pool_t *shpool;
};

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

uint64_t now_ms()
{
    return static_cast<uint64_t>(ngx_current_msec);
}

bool idle(const robot_node_t *rn, uint64_t now)
{
    return rn->window.throttled_until <= now && rn->last_used + kIdleMs <= now;
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

void evict_idle(zone_ctx_t *ctx, uint64_t now, int max)
{
    while (max-- > 0 && !ngx_queue_empty(&ctx->sh->lru)) {
        ngx_queue_t *q = ngx_queue_last(&ctx->sh->lru);
        robot_node_t *rn = ngx_queue_data(q, robot_node_t, lru);
        if (!idle(rn, now)) {
            return;
        }
        ngx_queue_remove(q);
        ngx_rbtree_delete(&ctx->sh->rbtree, &rn->node);
        ngx_slab_free_locked(ctx->shpool, rn);
    }
}

// The robot's node, created when missing; nullptr when the zone is full of busy robots.
// Called with the zone locked.
robot_node_t *find_or_add(zone_ctx_t *ctx, const u_char *key, bool create)
{
    const uint32_t hash = ngx_crc32_short(const_cast<u_char *>(key), kRobotKeySize);
    const uint64_t now = now_ms();
    robot_node_t *rn = lookup(ctx, key, hash);
    if (rn != nullptr) {
        ngx_queue_remove(&rn->lru);
        ngx_queue_insert_head(&ctx->sh->lru, &rn->lru);
        rn->last_used = now;
        return rn;
    }
    if (!create) {
        return nullptr;
    }
    // Robots are evicted only when the zone is full, and only those unused for a while: their
    // counters are metrics, which should not reset while there is room to keep them.
    rn = static_cast<robot_node_t *>(ngx_slab_alloc_locked(ctx->shpool, sizeof(robot_node_t)));
    if (rn == nullptr) {
        evict_idle(ctx, now, 64);
        rn = static_cast<robot_node_t *>(ngx_slab_alloc_locked(ctx->shpool, sizeof(robot_node_t)));
        if (rn == nullptr) {
            return nullptr;
        }
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

zone_ctx_t *ctx_of(ngx_shm_zone_t *zone)
{
    return static_cast<zone_ctx_t *>(zone->data);
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

    static const char log_ctx[] = " in dingtalk zone";
    ctx->shpool->log_ctx = static_cast<u_char *>(ngx_slab_alloc(ctx->shpool, sizeof(log_ctx)));
    if (ctx->shpool->log_ctx == nullptr) {
        return NGX_ERROR;
    }
    ngx_memcpy(ctx->shpool->log_ctx, log_ctx, sizeof(log_ctx));
    ctx->shpool->log_nomem = 0; // a full zone is reported once, by us, with advice
    return NGX_OK;
}

void *ngx_http_dingtalk_zone_ctx(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(zone_ctx_t));
}

dingtalk::Reservation ngx_http_dingtalk_reserve(ngx_shm_zone_t *zone, const u_char *key,
                                                const dingtalk::RateLimit &limit, ngx_log_t *log)
{
    zone_ctx_t *ctx = ctx_of(zone);
    const uint64_t now = now_ms();
    ngx_shmtx_lock(&ctx->shpool->mutex);
    robot_node_t *rn = find_or_add(ctx, key, true);
    dingtalk::Reservation res{dingtalk::Reservation::now, now, 0};
    if (rn != nullptr) {
        res = dingtalk::reserve(rn->window, limit, now);
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    if (rn == nullptr) {
        // Failing open: DingTalk's own limit still answers 130101, which becomes a 503.
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "dingtalk: the shared zone is full of active robots; sending without "
                      "rate limiting (raise dingtalk_zone_size)");
    }
    return res;
}

void ngx_http_dingtalk_release(ngx_shm_zone_t *zone, const u_char *key, uint64_t at_ms)
{
    zone_ctx_t *ctx = ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, false)) {
        dingtalk::release(rn->window, at_ms);
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_throttle(ngx_shm_zone_t *zone, const u_char *key,
                                const dingtalk::RateLimit &limit)
{
    zone_ctx_t *ctx = ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        dingtalk::throttle(rn->window, limit, now_ms());
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

// ---------------------------------------------------------------------------------------------
// metrics

namespace
{

zone_metrics_t *metrics_of(ngx_shm_zone_t *zone)
{
    return &ctx_of(zone)->sh->metrics;
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
                                      const std::string &robot, const dingtalk::Report &rep,
                                      dingtalk::Ending ending, ngx_msec_t duration_ms)
{
    zone_metrics_t *m = metrics_of(zone);
    add(&m->endings[static_cast<std::size_t>(ending)], 1);
    if (rep.errcode >= 0) {
        add(&m->errcodes[dingtalk::errcode_slot(rep.errcode)], 1);
    }
    add(&m->duration[dingtalk::duration_slot(duration_ms)], 1);
    add(&m->duration_sum_ms, static_cast<ngx_atomic_int_t>(duration_ms));
    if (rep.outcome == dingtalk::Outcome::bad_request) {
        return; // nothing was sent: no robot to count
    }

    zone_ctx_t *ctx = ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (robot_node_t *rn = find_or_add(ctx, key, true)) {
        const std::size_t n = std::min(robot.size(), sizeof(rn->name) - 1);
        ngx_memcpy(rn->name, robot.data(), n);
        rn->name[n] = '\0';
        (rep.outcome == dingtalk::Outcome::delivered ? rn->sent : rn->failed) += 1;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_count_retry(ngx_shm_zone_t *zone)
{
    add(&metrics_of(zone)->retries, 1);
}

void ngx_http_dingtalk_count_held(ngx_shm_zone_t *zone)
{
    add(&metrics_of(zone)->held, 1);
}

void ngx_http_dingtalk_gauge(ngx_shm_zone_t *zone, ngx_http_dingtalk_gauge_e which, int delta)
{
    zone_metrics_t *m = metrics_of(zone);
    add(which == ngx_http_dingtalk_gauge_e::tasks_in_flight ? &m->tasks_in_flight : &m->waiting,
        delta);
}

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
    // A worker killed mid-delivery never gives its gauge back; never show a wrapped value.
    s.tasks_in_flight = static_cast<int64_t>(m->tasks_in_flight) > 0 ? m->tasks_in_flight : 0;
    s.waiting = static_cast<int64_t>(m->waiting) > 0 ? m->waiting : 0;

    // Copied out under the lock into plain storage, so nothing can throw while it is held.
    struct copied {
        char name[sizeof(robot_node_t::name)];
        uint64_t sent, failed;
    };
    zone_ctx_t *ctx = ctx_of(zone);
    std::vector<copied> robots;
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
            break;
        }
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        robots.reserve(count + 16);
    }

    // one series per name: two tokens may share a name (and a rotated token keeps its name)
    for (const copied &c : robots) {
        if (c.name[0] == '\0') {
            continue; // known to the rate limiter only, nothing delivered yet
        }
        auto it = std::find_if(s.robots.begin(), s.robots.end(),
                               [&](const dingtalk::RobotStats &r) { return r.name == c.name; });
        if (it == s.robots.end()) {
            s.robots.push_back({c.name, c.sent, c.failed});
        } else {
            it->sent += c.sent;
            it->failed += c.failed;
        }
    }
    std::sort(s.robots.begin(), s.robots.end(),
              [](const auto &a, const auto &b) { return a.name < b.name; });
    return s;
}
