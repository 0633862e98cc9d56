#include "record.hpp"

#include "sign.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace dingtalk
{

namespace
{

std::uint64_t digest(const std::string &s)
{
    return body_digest(s); // the first 8 bytes of SHA-256, never 0
}

void append_time(std::string &s, const std::optional<TimePoint> &t)
{
    const std::int64_t us = t ? t->time_since_epoch().count() : 0;
    s.append(reinterpret_cast<const char *>(&us), sizeof(us));
}

std::uint64_t *keys_of(NotificationRecord &r)
{
    return reinterpret_cast<std::uint64_t *>(&r + 1);
}

const std::uint64_t *keys_of(const NotificationRecord &r)
{
    return reinterpret_cast<const std::uint64_t *>(&r + 1);
}

Posted *states_of(NotificationRecord &r)
{
    return reinterpret_cast<Posted *>(keys_of(r) + r.alerts);
}

const Posted *states_of(const NotificationRecord &r)
{
    return reinterpret_cast<const Posted *>(keys_of(r) + r.alerts);
}

// The record's index of key, or r.alerts when it holds none.
std::size_t index_of(const NotificationRecord &r, std::uint64_t key)
{
    const std::uint64_t *keys = keys_of(r);
    const std::uint64_t *it = std::lower_bound(keys, keys + r.alerts, key);
    return it != keys + r.alerts && *it == key ? static_cast<std::size_t>(it - keys) : r.alerts;
}

} // namespace

std::vector<std::uint64_t> record_keys(std::vector<std::uint64_t> keys)
{
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    return keys;
}

std::uint64_t alert_key(const Alert &a)
{
    std::string s;
    if (!a.fingerprint.empty()) {
        s.append("f").append(a.fingerprint);
    } else {
        s.append("l");
        for (const auto &[name, value] : a.labels) {
            s.append(name).append(1, '\0').append(value).append(1, '\0');
        }
    }
    s.append(1, a.status == Status::firing ? 'F' : 'R');
    append_time(s, a.starts_at);
    append_time(s, a.ends_at);
    return digest(s);
}

std::uint64_t notification_key(const unsigned char robot[16], const Notification &n,
                               const std::vector<std::uint64_t> &alert_keys)
{
    std::string s(reinterpret_cast<const char *>(robot), 16);
    s.append(n.group_key).append(1, '\0').append(1, n.status == Status::firing ? 'F' : 'R');
    for (const std::uint64_t k : record_keys(alert_keys)) {
        s.append(reinterpret_cast<const char *>(&k), sizeof(k));
    }
    return digest(s);
}

std::size_t record_size(std::size_t n)
{
    return sizeof(NotificationRecord) + n * (sizeof(std::uint64_t) + sizeof(Posted));
}

void init_record(NotificationRecord &r, std::uint64_t key, const std::vector<std::uint64_t> &keys)
{
    r.key = key;
    r.owner = 0;
    r.lease_until = 0;
    r.expires = 0;
    r.alerts = static_cast<std::uint32_t>(keys.size());
    r.messages = 0;
    std::memcpy(keys_of(r), keys.data(), keys.size() * sizeof(std::uint64_t));
    std::fill(states_of(r), states_of(r) + r.alerts, Posted::no);
}

bool same_alerts(const NotificationRecord &r, const std::vector<std::uint64_t> &keys)
{
    return keys.size() == r.alerts && std::equal(keys.begin(), keys.end(), keys_of(r));
}

void states_of(const NotificationRecord &r, const std::vector<std::uint64_t> &alerts,
               std::vector<Posted> &out)
{
    for (const std::uint64_t k : alerts) {
        const std::size_t i = index_of(r, k);
        out.push_back(i < r.alerts ? states_of(r)[i] : Posted::no);
    }
}

bool all_posted(const NotificationRecord &r, const std::vector<std::uint64_t> &alerts)
{
    return all_posted(r, alerts.data(), alerts.size());
}

bool all_posted(const NotificationRecord &r, const std::uint64_t *alerts, std::size_t n)
{
    return std::all_of(alerts, alerts + n, [&](std::uint64_t k) {
        const std::size_t i = index_of(r, k);
        return i < r.alerts && states_of(r)[i] == Posted::yes;
    });
}

bool all_posted(const NotificationRecord &r)
{
    const Posted *s = states_of(r);
    return std::all_of(s, s + r.alerts, [](Posted p) { return p == Posted::yes; });
}

Claim claim(NotificationRecord &r, std::uint64_t owner, std::uint64_t now_ms,
            std::uint64_t lease_until)
{
    if (all_posted(r)) {
        return Claim::done;
    }
    if (r.owner != 0 && r.owner != owner && r.lease_until > now_ms) {
        return Claim::taken;
    }
    r.owner = owner;
    r.lease_until = lease_until;
    return Claim::mine;
}

void mark(NotificationRecord &r, const std::vector<std::uint64_t> &alerts, bool taken)
{
    mark(r, alerts.data(), alerts.size(), taken);
}

void mark(NotificationRecord &r, const std::uint64_t *alerts, std::size_t n, bool taken)
{
    Posted *states = states_of(r);
    for (std::size_t k = 0; k < n; ++k) {
        const std::size_t i = index_of(r, alerts[k]);
        if (i < r.alerts) {
            states[i] = taken || states[i] != Posted::no ? Posted::yes : Posted::doubtful;
        }
    }
    r.messages += taken ? 1 : 0;
}

void release(NotificationRecord &r, std::uint64_t owner, std::uint64_t expires)
{
    if (r.owner == owner) {
        r.owner = 0;
        r.lease_until = 0;
        r.expires = expires;
    }
}

bool empty(const NotificationRecord &r)
{
    const Posted *s = states_of(r);
    return r.owner == 0 && std::all_of(s, s + r.alerts, [](Posted p) { return p == Posted::no; });
}

} // namespace dingtalk
