// The room where notifications wait to be folded (dingtalk_fold), in the shared zone: a
// notification that goes as one message and finds no free slot in its robot's window puts its
// section here. Whichever request of the robot gets the next slot (in any worker) takes every
// section waiting for it that fits one message and sends them as one; the records of all of
// them learn what DingTalk took. A section stays after its request gave up (503): a slot later,
// the fold still carries it, and Alertmanager's retry finds it posted. A section is forgotten
// once posted and seen by its request, or after kRoomMs.

#include "ngx_http_dingtalk_zone.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

namespace
{

constexpr uint64_t kRoomMs = 10 * 60 * 1000;

struct room_entry_t {
    ngx_queue_t queue;
    u_char robot[kRobotKeySize];
    uint64_t group;       // one location of one configuration: sections that look alike
    uint64_t key;         // the notification's (its record's)
    uint64_t owner;       // the delivery that waits for it; 0: it left
    uint64_t send_id;     // sending: the send that carries it
    uint64_t lease_until; // sending: the send's end at the latest
    uint64_t expires;
    uint64_t seq;
    ngx_http_dingtalk_room_e state;
    bool firing;
    bool at_all;
    uint32_t covers, title_len, text_len, mobiles_len, users_len;
    // uint64_t covers[covers]; then title, text, mobiles and user ids ('\n' after each)
};

uint64_t *covers_of(room_entry_t *e)
{
    return reinterpret_cast<uint64_t *>(e + 1);
}

const char *strings_of(const room_entry_t *e)
{
    return reinterpret_cast<const char *>(reinterpret_cast<const uint64_t *>(e + 1) + e->covers);
}

std::string joined(const std::vector<std::string> &list)
{
    std::string s;
    for (const std::string &v : list) {
        s.append(v).append(1, '\n');
    }
    return s;
}

std::vector<std::string> split(std::string_view s)
{
    std::vector<std::string> out;
    for (std::size_t at = 0, nl; (nl = s.find('\n', at)) != std::string_view::npos; at = nl + 1) {
        out.emplace_back(s.substr(at, nl - at));
    }
    return out;
}

bool live(const room_entry_t *e, uint64_t now)
{
    return e->expires > now;
}

room_entry_t *find(zone_ctx_t *ctx, uint64_t key)
{
    for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->room); q != ngx_queue_sentinel(&ctx->sh->room);
         q = ngx_queue_next(q)) {
        auto *e = ngx_queue_data(q, room_entry_t, queue);
        if (e->key == key) {
            return e;
        }
    }
    return nullptr;
}

void forget(zone_ctx_t *ctx, room_entry_t *e)
{
    ngx_queue_remove(&e->queue);
    ngx_slab_free_locked(ctx->shpool, e);
}

// Expired entries go; a send that held entries past its lease (its worker died) gives them back.
void sweep(zone_ctx_t *ctx, uint64_t now)
{
    for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->room);
         q != ngx_queue_sentinel(&ctx->sh->room);) {
        auto *e = ngx_queue_data(q, room_entry_t, queue);
        q = ngx_queue_next(q);
        if (!live(e, now)) {
            forget(ctx, e);
        } else if (e->state == ngx_http_dingtalk_room_e::sending && e->lease_until <= now) {
            e->state = ngx_http_dingtalk_room_e::waiting;
        }
    }
}

// The entry that waits in the room for what one message of the notification would show.
room_entry_t *add(zone_ctx_t *ctx, const ngx_http_dingtalk_waiting_t &w, uint64_t now)
{
    const dingtalk::Section &s = *w.section;
    const std::string mobiles = joined(s.at.mobiles), users = joined(s.at.user_ids);
    const std::size_t size = sizeof(room_entry_t) + w.covers->size() * sizeof(uint64_t) +
                             s.title.size() + s.text.size() + mobiles.size() + users.size();
    auto *e = static_cast<room_entry_t *>(ngx_slab_alloc_locked(ctx->shpool, size));
    if (e == nullptr) {
        return nullptr;
    }
    ngx_memcpy(e->robot, w.robot, kRobotKeySize);
    e->group = w.group;
    e->key = w.key;
    e->owner = w.owner;
    e->send_id = 0;
    e->lease_until = 0;
    e->expires = now + kRoomMs;
    e->seq = ++ctx->sh->room_seq;
    e->state = ngx_http_dingtalk_room_e::waiting;
    e->firing = s.firing;
    e->at_all = s.at.all;
    e->covers = static_cast<uint32_t>(w.covers->size());
    e->title_len = static_cast<uint32_t>(s.title.size());
    e->text_len = static_cast<uint32_t>(s.text.size());
    e->mobiles_len = static_cast<uint32_t>(mobiles.size());
    e->users_len = static_cast<uint32_t>(users.size());
    ngx_memcpy(covers_of(e), w.covers->data(), w.covers->size() * sizeof(uint64_t));
    char *p = reinterpret_cast<char *>(covers_of(e) + e->covers);
    for (const std::string *part : {&s.title, &s.text, &mobiles, &users}) {
        p = std::copy(part->begin(), part->end(), p);
    }
    ngx_queue_insert_tail(&ctx->sh->room, &e->queue);
    return e;
}

ngx_http_dingtalk_folded_t copy_out(const room_entry_t *e)
{
    const char *p = strings_of(e);
    ngx_http_dingtalk_folded_t f;
    f.key = e->key;
    f.covers.assign(reinterpret_cast<const uint64_t *>(e + 1),
                    reinterpret_cast<const uint64_t *>(e + 1) + e->covers);
    f.section.title.assign(p, e->title_len);
    f.section.text.assign(p + e->title_len, e->text_len);
    const std::size_t m = e->title_len + e->text_len;
    f.section.at.mobiles = split(std::string_view(p + m, e->mobiles_len));
    f.section.at.user_ids = split(std::string_view(p + m + e->mobiles_len, e->users_len));
    f.section.at.all = e->at_all;
    f.section.firing = e->firing;
    return f;
}

bool foldable(const room_entry_t *e, const u_char *robot, uint64_t group)
{
    return e->state == ngx_http_dingtalk_room_e::waiting && e->group == group &&
           ngx_memcmp(e->robot, robot, kRobotKeySize) == 0;
}

} // namespace

ngx_http_dingtalk_room_e ngx_http_dingtalk_room_enter(ngx_shm_zone_t *zone,
                                                      const ngx_http_dingtalk_waiting_t &w)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    ngx_http_dingtalk_room_e state = ngx_http_dingtalk_room_e::none;
    ngx_shmtx_lock(&ctx->shpool->mutex);
    sweep(ctx, now);
    room_entry_t *e = find(ctx, w.key);
    if (e != nullptr) { // the same notification came before (a retry): it is this one's now
        e->owner = w.owner;
        e->expires = now + kRoomMs;
    } else {
        e = add(ctx, w, now);
    }
    state = e ? e->state : state;
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return state;
}

ngx_http_dingtalk_room_e ngx_http_dingtalk_room_state(ngx_shm_zone_t *zone, uint64_t key,
                                                      bool *others, const u_char *robot,
                                                      uint64_t group)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_http_dingtalk_room_e state = ngx_http_dingtalk_room_e::none;
    ngx_shmtx_lock(&ctx->shpool->mutex);
    sweep(ctx, ngx_http_dingtalk_now_ms());
    for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->room); q != ngx_queue_sentinel(&ctx->sh->room);
         q = ngx_queue_next(q)) {
        const auto *e = ngx_queue_data(q, room_entry_t, queue);
        if (e->key == key) {
            state = e->state;
        } else if (others != nullptr && foldable(e, robot, group)) {
            *others = true;
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return state;
}

std::vector<ngx_http_dingtalk_folded_t>
ngx_http_dingtalk_room_take(ngx_shm_zone_t *zone, const u_char *robot, uint64_t group,
                            uint64_t send_id, uint64_t lease_until)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    std::vector<room_entry_t *> chosen;
    chosen.reserve(dingtalk::kMaxFolded); // nothing may allocate while the zone is locked
    ngx_shmtx_lock(&ctx->shpool->mutex);
    for (const bool firing : {true, false}) { // firing first, each in order of arrival
        for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->room);
             q != ngx_queue_sentinel(&ctx->sh->room) && chosen.size() < dingtalk::kMaxFolded;
             q = ngx_queue_next(q)) {
            auto *e = ngx_queue_data(q, room_entry_t, queue);
            if (e->firing == firing && foldable(e, robot, group)) {
                e->state = ngx_http_dingtalk_room_e::sending;
                e->send_id = send_id;
                e->lease_until = lease_until;
                e->expires = std::max(e->expires, lease_until + kRoomMs);
                chosen.push_back(e);
            }
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    // Copied out without the lock: an entry's section never changes once written, and one
    // that is sending is freed by nobody (sweep frees expired ones only, leave posted ones).
    std::vector<ngx_http_dingtalk_folded_t> out;
    out.reserve(chosen.size());
    for (const room_entry_t *e : chosen) {
        out.push_back(copy_out(e));
    }
    return out;
}

void ngx_http_dingtalk_room_settle(ngx_shm_zone_t *zone, uint64_t send_id,
                                   const std::vector<uint64_t> &included,
                                   ngx_http_dingtalk_sent_e sent)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    for (ngx_queue_t *q = ngx_queue_head(&ctx->sh->room); q != ngx_queue_sentinel(&ctx->sh->room);
         q = ngx_queue_next(q)) {
        auto *e = ngx_queue_data(q, room_entry_t, queue);
        if (e->state != ngx_http_dingtalk_room_e::sending || e->send_id != send_id) {
            continue;
        }
        e->state = ngx_http_dingtalk_room_e::waiting;
        const bool in = std::find(included.begin(), included.end(), e->key) != included.end();
        if (in && sent != ngx_http_dingtalk_sent_e::not_sent &&
            ngx_http_dingtalk_mark_locked(ctx, e->key, covers_of(e), e->covers,
                                          sent == ngx_http_dingtalk_sent_e::taken)) {
            e->state = ngx_http_dingtalk_room_e::posted;
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void ngx_http_dingtalk_room_leave(ngx_shm_zone_t *zone, uint64_t key, uint64_t owner)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (room_entry_t *e = find(ctx, key)) {
        if (e->state == ngx_http_dingtalk_room_e::posted) {
            forget(ctx, e);
        } else if (e->owner == owner) {
            e->owner = 0; // it waits for a fold without its request (Alertmanager retries it)
        }
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}
