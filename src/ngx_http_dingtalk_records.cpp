// What each robot has posted of each notification, in the shared zone: every worker (and each
// worker after a reload) sees the same records, so a retry of a notification, or the same
// notification from another Alertmanager replica, sends only what was not posted, and never
// while another request is sending it. A red-black tree keyed by the notification's key, with
// an LRU list: records nobody owns are forgotten when they expire, or earlier, oldest first,
// when room is needed. A record that cannot be kept (no room) is not fatal: the delivery goes
// on, and only a retry of it could post an alert twice (logged).

#include "ngx_http_dingtalk_zone.hpp"

#include "record.hpp"

#include <algorithm>

namespace
{

struct record_node_t {
    ngx_rbtree_node_t node; // first: the tree hands us node pointers; key: the record's
    ngx_queue_t lru;
    dingtalk::NotificationRecord record; // last: its alerts' keys and states follow it
};

record_node_t *as_record(ngx_rbtree_node_t *n)
{
    return reinterpret_cast<record_node_t *>(n);
}

record_node_t *lookup(zone_shared_t *sh, uint64_t key)
{
    ngx_rbtree_node_t *node = sh->records.root, *sentinel = sh->records.sentinel;
    const auto k = static_cast<ngx_rbtree_key_t>(key);
    while (node != sentinel) {
        if (k == node->key) {
            return as_record(node);
        }
        node = k < node->key ? node->left : node->right;
    }
    return nullptr;
}

void forget(zone_ctx_t *ctx, record_node_t *rn)
{
    ngx_queue_remove(&rn->lru);
    ngx_rbtree_delete(&ctx->sh->records, &rn->node);
    ngx_slab_free_locked(ctx->shpool, rn);
}

bool expired(const dingtalk::NotificationRecord &r, uint64_t now)
{
    return r.owner == 0 ? r.expires <= now : r.lease_until <= now;
}

// Forgets expired records, oldest first (a few per call: the cost of a lookup stays small); with
// `any`, the oldest that nobody owns as well.
bool make_room(zone_ctx_t *ctx, uint64_t now, bool any)
{
    bool freed = false;
    int looked = 0;
    for (ngx_queue_t *q = ngx_queue_last(&ctx->sh->records_lru);
         q != ngx_queue_sentinel(&ctx->sh->records_lru) && looked < 16; ++looked) {
        record_node_t *rn = ngx_queue_data(q, record_node_t, lru);
        q = ngx_queue_prev(q);
        if (expired(rn->record, now) || (any && rn->record.owner == 0)) {
            forget(ctx, rn);
            freed = true;
            if (any) {
                return true;
            }
        }
    }
    return freed;
}

record_node_t *add(zone_ctx_t *ctx, uint64_t key, const std::vector<uint64_t> &keys, uint64_t now)
{
    const std::size_t size = offsetof(record_node_t, record) + dingtalk::record_size(keys.size());
    auto *rn = static_cast<record_node_t *>(ngx_slab_alloc_locked(ctx->shpool, size));
    if (rn == nullptr && make_room(ctx, now, true)) {
        rn = static_cast<record_node_t *>(ngx_slab_alloc_locked(ctx->shpool, size));
    }
    if (rn == nullptr) {
        return nullptr;
    }
    rn->node.key = static_cast<ngx_rbtree_key_t>(key);
    dingtalk::init_record(rn->record, key, keys);
    ngx_rbtree_insert(&ctx->sh->records, &rn->node);
    ngx_queue_insert_head(&ctx->sh->records_lru, &rn->lru);
    return rn;
}

// The notification's record, made when missing and create is set; nullptr when there is none
// or no room. A key that names other alerts (a collision of 64 bits) is no record of these.
record_node_t *find(zone_ctx_t *ctx, uint64_t key, const std::vector<uint64_t> &keys, bool create)
{
    const uint64_t now = ngx_http_dingtalk_now_ms();
    make_room(ctx, now, false);
    record_node_t *rn = lookup(ctx->sh, key);
    if (rn != nullptr && expired(rn->record, now)) {
        forget(ctx, rn);
        rn = nullptr;
    }
    if (rn != nullptr) {
        if (!dingtalk::same_alerts(rn->record, keys)) {
            return nullptr;
        }
        ngx_queue_remove(&rn->lru);
        ngx_queue_insert_head(&ctx->sh->records_lru, &rn->lru);
        return rn;
    }
    return create ? add(ctx, key, keys, now) : nullptr;
}

} // namespace

void ngx_http_dingtalk_init_records(zone_shared_t *sh)
{
    ngx_rbtree_init(&sh->records, &sh->records_sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&sh->records_lru);
    ngx_queue_init(&sh->room);
}

bool ngx_http_dingtalk_mark_locked(zone_ctx_t *ctx, uint64_t key, const uint64_t *alerts,
                                   std::size_t n, bool taken)
{
    record_node_t *rn = lookup(ctx->sh, key);
    if (rn == nullptr) {
        return taken; // no record was kept: what DingTalk took is all there is to know
    }
    dingtalk::mark(rn->record, alerts, n, taken);
    return dingtalk::all_posted(rn->record, alerts, n);
}

void ngx_http_dingtalk_carry_records(zone_ctx_t *to, zone_ctx_t *from)
{
    for (ngx_queue_t *q = ngx_queue_last(&from->sh->records_lru);
         q != ngx_queue_sentinel(&from->sh->records_lru); q = ngx_queue_prev(q)) {
        const record_node_t *old = ngx_queue_data(q, record_node_t, lru);
        const std::size_t size =
            offsetof(record_node_t, record) + dingtalk::record_size(old->record.alerts);
        auto *rn = static_cast<record_node_t *>(ngx_slab_alloc_locked(to->shpool, size));
        if (rn == nullptr) {
            return; // the oldest were copied first: the newest are lost, and only those
        }
        ngx_memcpy(rn, old, size);
        ngx_rbtree_insert(&to->sh->records, &rn->node);
        ngx_queue_insert_head(&to->sh->records_lru, &rn->lru);
    }
}

ngx_http_dingtalk_claimed_t ngx_http_dingtalk_claim(ngx_shm_zone_t *zone, uint64_t key,
                                                    const std::vector<uint64_t> &keys,
                                                    const std::vector<uint64_t> &alerts,
                                                    uint64_t owner, uint64_t lease_until)
{
    ngx_http_dingtalk_claimed_t out;
    out.states.reserve(alerts.size()); // nothing may throw while the zone is locked
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    record_node_t *rn = find(ctx, key, keys, true);
    if (rn == nullptr) {
        out.claim = ngx_http_dingtalk_claim_e::no_room;
    } else {
        switch (dingtalk::claim(rn->record, owner, ngx_http_dingtalk_now_ms(), lease_until)) {
        case dingtalk::Claim::mine:
            out.claim = ngx_http_dingtalk_claim_e::mine;
            break;
        case dingtalk::Claim::taken:
            out.claim = ngx_http_dingtalk_claim_e::taken;
            break;
        case dingtalk::Claim::done:
            out.claim = ngx_http_dingtalk_claim_e::done;
            break;
        }
        dingtalk::states_of(rn->record, alerts, out.states);
        out.messages = rn->record.messages;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return out;
}

bool ngx_http_dingtalk_mark(ngx_shm_zone_t *zone, uint64_t key, const std::vector<uint64_t> &keys,
                            const std::vector<uint64_t> &alerts, bool taken)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    bool posted = taken;
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (record_node_t *rn = find(ctx, key, keys, false)) {
        dingtalk::mark(rn->record, alerts, taken);
        posted = dingtalk::all_posted(rn->record, alerts);
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return posted;
}

void ngx_http_dingtalk_unclaim(ngx_shm_zone_t *zone, uint64_t key,
                               const std::vector<uint64_t> &keys, uint64_t owner, uint64_t keep_ms)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (record_node_t *rn = find(ctx, key, keys, false)) {
        dingtalk::release(rn->record, owner, ngx_http_dingtalk_now_ms() + keep_ms);
        if (dingtalk::empty(rn->record)) {
            forget(ctx, rn);
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

uint64_t ngx_http_dingtalk_new_id(ngx_shm_zone_t *zone)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    const uint64_t id = ++ctx->sh->next_send_id;
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return id;
}
