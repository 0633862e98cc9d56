// What a robot has posted of one notification, alert by alert. Alertmanager sends a
// notification again when it did not get a 200 (and another replica sends the same one), each
// time rendered afresh: the record, kept by a key no rendering can change, lets the retry send
// exactly the alerts not yet posted, and only one request at a time send any of them.
//
// Plain data for nginx's shared memory (the glue allocates it and holds the zone's lock around
// every call): a header, then the alerts' keys in ascending order, then one state per alert.
#pragma once

#include "alert.hpp"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dingtalk
{

// An alert's key: its identity (the fingerprint, or its labels when the body has none), its
// status, startsAt and endsAt. Never 0.
std::uint64_t alert_key(const Alert &a);

// A notification's key for one robot: the robot, the group key, the status and the alerts'
// keys in any order (two replicas' bodies differ in externalURL, not in these). Never 0.
std::uint64_t notification_key(const unsigned char robot[16], const Notification &n,
                               const std::vector<std::uint64_t> &alert_keys);

// What the group has seen of one alert.
enum class Posted : std::uint8_t {
    no,       // not posted
    doubtful, // its message's request reached DingTalk whole and no answer ever came: it may
              // have been posted; it is sent once more at most
    yes,      // DingTalk took a message that shows or counts it (or a second doubtful send)
};

struct NotificationRecord {
    std::uint64_t key;
    std::uint64_t owner;       // the delivery sending it now; 0: none
    std::uint64_t lease_until; // the owner's claim ends then (a worker that died holds none)
    std::uint64_t expires;     // forgotten after, when nobody owns it
    std::uint32_t alerts;      // keys and states that follow
    std::uint32_t messages;    // messages of it DingTalk took (numbering goes on from there)
    // std::uint64_t keys[alerts] (ascending), Posted states[alerts]
};

// Bytes a record of n alerts takes, header included.
std::size_t record_size(std::size_t n);

// The alerts' keys in ascending order, without repeats: what a record holds.
std::vector<std::uint64_t> record_keys(std::vector<std::uint64_t> alerts);

// A new record of these alerts (record_keys()), nothing posted.
void init_record(NotificationRecord &r, std::uint64_t key, const std::vector<std::uint64_t> &keys);

// Whether the record holds exactly these alerts (record_keys()): a 64-bit key collision that
// was not the same notification is never taken for it.
bool same_alerts(const NotificationRecord &r, const std::vector<std::uint64_t> &keys);

// The state of each of these alerts (any keys, by position), appended to out (which the caller
// sizes, so that nothing allocates while the zone is locked).
void states_of(const NotificationRecord &r, const std::vector<std::uint64_t> &alerts,
               std::vector<Posted> &out);

// Every alert posted: nothing is left to send.
bool all_posted(const NotificationRecord &r);
// Every one of these alerts posted.
bool all_posted(const NotificationRecord &r, const std::vector<std::uint64_t> &alerts);
bool all_posted(const NotificationRecord &r, const std::uint64_t *alerts, std::size_t n);

enum class Claim {
    mine,  // the caller owns it now (or did already)
    taken, // another live delivery owns it: wait for it
    done,  // every alert is posted
};

// Claims the record for `owner` until lease_until; a lease that ran out is taken over.
Claim claim(NotificationRecord &r, std::uint64_t owner, std::uint64_t now_ms,
            std::uint64_t lease_until);

// Marks these alerts: a message that showed or counted them was taken (yes), or its request
// reached DingTalk whole and no answer can come (a first doubt stays doubtful, a second is yes:
// never a third send). A message taken counts in `messages`.
void mark(NotificationRecord &r, const std::vector<std::uint64_t> &alerts, bool taken);
void mark(NotificationRecord &r, const std::uint64_t *alerts, std::size_t n, bool taken);

// The owner is done with it: kept until `expires` for a retry or a replica's copy.
void release(NotificationRecord &r, std::uint64_t owner, std::uint64_t expires);

// Nothing in it is worth keeping: no alert was posted or is in doubt, and nobody owns it.
bool empty(const NotificationRecord &r);

} // namespace dingtalk
