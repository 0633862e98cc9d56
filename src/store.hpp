// dingtalk_store: several nginx instances that send to one robot share its rate window, its
// 130101 cool-down and the records of what was posted in Redis (hiredis). Plain C++, no nginx: the
// glue calls it from pool threads only, never from the event loop.
//
// One reservation is one Lua script (no read-modify-write between instances), one settle is
// another (it marks the records of what the message carried too), and a notification's claim
// of its record a third: three round trips for a notification of one message. Times are Redis's own
// clock (TIME), the one clock every instance shares. Keys expire by themselves.
//
// A marker key says since when the store has held the windows: when it is missing (a Redis
// restarted empty, or never used), the script sets it, and for one PERIOD after that the store
// is "warming": it does not know what was sent before, so a send also needs a slot of the
// local fallback window (the caller says whether it holds one).
#pragma once

#include "ratelimit.hpp"
#include "record.hpp"

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

struct StoreConfig {
    std::string host;
    int port = 6379;
    int db = 0;
    std::string user;     // ACL user (Redis 6+); "": the default user
    std::string password; // from password_file; never logged
    std::chrono::milliseconds timeout{200};
    // The local window each instance falls back to while the store cannot be used: its share of
    // the robot's limit (6/60s: DingTalk's 20 shared by 3 instances, the common HA size).
    std::uint32_t fallback_count = 6;
    std::uint64_t fallback_window_ms = 60000;
    std::string shown; // the URL as logs may show it (no password)
};

// redis://[user@]host:port[/db]; rediss:// is refused with the reason (no TLS in this client).
std::optional<StoreConfig> parse_store_url(std::string_view url, std::string &error);

struct StoreReservation {
    enum Kind {
        now,       // a slot of the shared window is this send's (member, for settle())
        full,      // no slot: retry_after_ms until the earliest frees (under_way: sends under
                   // way may end sooner, ask again soon)
        throttled, // cool-down after 130101, retry_after_ms left
        warming,   // the store was emptied: a local fallback slot is needed too (retry_after_ms:
                   // until the store knows a whole PERIOD again)
        failed,    // the store did not answer in time, or wrongly (error says what)
    } kind = failed;
    std::uint64_t retry_after_ms = 0; // now: how long the store still warms (0: not)
    bool under_way = false;
    std::string member; // now: the send's entry in the window
    std::string error;
};

// A notification's record in the store (what every instance posted of it), as a claim finds it.
struct StoreClaim {
    enum Kind {
        mine,   // the caller's instance delivers it now (states: what was posted before)
        taken,  // another instance delivers it now: retry_after_ms until its lease ends
        done,   // every alert was posted
        failed, // the store did not answer in time, or wrongly (error says what)
    } kind = failed;
    std::uint64_t retry_after_ms = 0;
    std::vector<Posted> states; // mine, done: of the alerts asked, by position
    std::uint32_t messages = 0; // mine, done: DingTalk took this many messages of it
    std::string error;
};

// What a message did to the records of the notifications it carried (its own, or a fold's).
struct StoreMark {
    std::uint64_t notification = 0;
    std::vector<std::uint64_t> alerts; // those the message showed or counted
};
struct StoreMarks {
    enum Kind { none, taken, in_doubt } kind = none;
    std::string owner;          // the instance that delivers them
    std::uint64_t lease_ms = 0; // its claim goes on this long when some alerts are left
    std::vector<StoreMark> records;
};

// An "until resolved" silence (resolved.hpp) as the store keeps it for every instance that
// silences in the same Alertmanager: a sorted set per Alertmanager (its identity), member
// "ID FINGERPRINT KEPT_AT", score the hard end (unix seconds); the key expires with the last hard
// end.
struct StoredSilence {
    std::string id;
    std::string fingerprint;
    std::int64_t hard_end = 0;
    std::int64_t kept_at = 0; // unix seconds
};

// A round of checks, as the store decides it: one instance checks at a time (a lock for
// lease_ms), with every silence the instances kept (those past their hard end dropped).
struct StoreRound {
    enum Kind {
        mine,   // this instance checks now: silences
        other,  // another instance does
        failed, // the store did not answer in time, or wrongly (error says what)
    } kind = failed;
    std::vector<StoredSilence> silences;
    std::string error;
};

class Store
{
public:
    explicit Store(StoreConfig config) : config_(std::move(config)) {}
    const StoreConfig &config() const { return config_; }

    // A slot of the robot's shared window for a send that may arrive up to attempt_ms from now.
    // fallback_held: the caller holds a local fallback slot (needed while the store warms).
    StoreReservation reserve(const unsigned char robot[16], const RateLimit &limit,
                             std::uint64_t attempt_ms, bool fallback_held) const noexcept;
    // The send ended (sent: it may have arrived, by now at the latest) or never left;
    // throttled: DingTalk answered 130101, every instance cools down; marks: what its message
    // did to the records. false: the store failed.
    bool settle(const unsigned char robot[16], const std::string &member, bool sent, bool throttled,
                const RateLimit &limit, const StoreMarks &marks, std::string &error) const noexcept;
    // Claims the notification's record for `owner` (an instance: its deliveries share the
    // claim, the shared zone orders them) for lease_ms, unless another instance's lease runs;
    // alerts: its keys (Delivery::record_keys()).
    StoreClaim claim(const unsigned char robot[16], std::uint64_t notification,
                     const std::vector<std::uint64_t> &alerts, const std::string &owner,
                     std::uint64_t lease_ms) const noexcept;

    // Keeps an "until resolved" silence of this Alertmanager for every instance. false: the
    // store failed (error says what).
    bool keep_silence(std::uint64_t alertmanager, const StoredSilence &s,
                      std::string &error) const noexcept;
    // Forgets it (expired, or gone).
    bool forget_silence(std::uint64_t alertmanager, const StoredSilence &s,
                        std::string &error) const noexcept;
    // The round of checks of this Alertmanager's silences, for `owner` (an instance).
    StoreRound silence_round(std::uint64_t alertmanager, const std::string &owner,
                             std::uint64_t lease_ms) const noexcept;

private:
    StoreConfig config_;
};

// The calling thread's connection is closed (tests; a thread keeps it otherwise).
void store_disconnect_thread();

} // namespace dingtalk
