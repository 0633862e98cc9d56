// Shared memory for the per-robot send windows, as limit_req keeps its zone: a red-black tree
// of robots (keyed by a hash of the token, never the token) in a slab pool, with an LRU list so
// that robots nobody uses any more make room for new ones. Every worker and every location that
// sends to a robot reserves from the same window, under the zone's mutex.

#include "ngx_http_dingtalk.hpp"

namespace
{

// A robot that sent nothing for this long (and is not cooling down) may be evicted.
constexpr uint64_t kIdleMs = 10 * 60 * 1000;

struct robot_node_t {
    ngx_rbtree_node_t node; // first: the tree hands us node pointers
    ngx_queue_t lru;
    u_char key[kRobotKeySize];
    dingtalk::RateWindow window;
};

struct zone_shared_t {
    ngx_rbtree_t rbtree;
    ngx_rbtree_node_t sentinel;
    ngx_queue_t lru; // most recently used first
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
    const dingtalk::RateWindow &w = rn->window;
    const uint64_t newest = w.count ? w.times[(w.head + w.count - 1) % dingtalk::kMaxRateCount] : 0;
    return w.throttled_until <= now && newest + kIdleMs <= now;
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
    robot_node_t *rn = lookup(ctx, key, hash);
    if (rn != nullptr) {
        ngx_queue_remove(&rn->lru);
        ngx_queue_insert_head(&ctx->sh->lru, &rn->lru);
        return rn;
    }
    if (!create) {
        return nullptr;
    }
    const uint64_t now = now_ms();
    evict_idle(ctx, now, 2); // a little housekeeping on every new robot
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

    ctx->sh = static_cast<zone_shared_t *>(ngx_slab_alloc(ctx->shpool, sizeof(zone_shared_t)));
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
