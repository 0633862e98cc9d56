// "Until resolved" silences (issue #25): the ones the action location made are kept in a small
// table (plain data: it lives in nginx's shared zone), and checked every few seconds against
// Alertmanager: once the alert no longer fires, the silence is expired. Alertmanager sends no
// resolved notification for an alert that is silenced (its notify pipeline drops muted alerts,
// resolved or not: measured with 0.25, docs/design.md), so the module asks instead of waiting.
// Knows nothing of nginx; lift_if_resolved() runs in a pool thread.
#pragma once

#include "silence.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dingtalk
{

// How many "until resolved" silences the shared zone keeps at once. One more is not kept: it
// still ends at its hard end (the link's resolved= time), which its page says.
constexpr std::size_t kMaxUntilResolved = 128;

struct UntilResolved {
    char id[64];                // the silence's id; "" for a free slot
    char fingerprint[32];       // the alert the link named (for the log); "" if none
    std::uint64_t alertmanager; // alertmanager_identity() of the location's URL
    std::int64_t hard_end;      // unix seconds: forgotten then, whatever happened
    std::int64_t checked;       // unix seconds of the last check (0: never)
    std::uint32_t failures;     // checks in a row that failed
    std::uint32_t stored;       // 1: in dingtalk_store too (0: to be copied there)
    std::int64_t kept_at;       // unix seconds when kept here, or by the store's instance
};

struct UntilResolvedTable {
    UntilResolved entries[kMaxUntilResolved];
};

enum class KeepResult {
    kept,    // a new entry
    again,   // already kept (the same link posted twice): its hard end may grow
    full,    // no free slot: not kept
    invalid, // an id or fingerprint this table cannot hold (too long, or not letters, digits
             // and '-': never Alertmanager's)
};

// Which Alertmanager an entry is to be checked with: a hash (FNV-1a) of its base URL, stable
// across processes and reloads.
std::uint64_t alertmanager_identity(std::string_view url);

// Keeps a silence until `hard_end`; entries past their hard end at `now` are dropped first.
KeepResult keep(UntilResolvedTable &t, std::string_view id, std::string_view fingerprint,
                std::uint64_t alertmanager, std::int64_t hard_end, std::int64_t now);

// An entry as keep() writes it, for a silence kept elsewhere (dingtalk_store); false when the
// id or fingerprint cannot be held.
bool make_entry(std::string_view id, std::string_view fingerprint, std::uint64_t alertmanager,
                std::int64_t hard_end, UntilResolved &out);

// Forgets the entry of this silence; false when there is none.
bool forget(UntilResolvedTable &t, std::string_view id);

// Drops the entries past their hard end; how many.
std::size_t drop_ended(UntilResolvedTable &t, std::int64_t now);

// Copies the entries to check now (those not past their hard end) into out, the longest
// unchecked first; how many. Allocates nothing (it runs under the zone's lock).
std::size_t due(const UntilResolvedTable &t, std::int64_t now,
                UntilResolved (&out)[kMaxUntilResolved]);

// The entry of this silence was checked at `now` (failed: the check could not say).
void checked(UntilResolvedTable &t, std::string_view id, bool failed, std::int64_t now);

// The entry of this silence is in dingtalk_store now.
void stored(UntilResolvedTable &t, std::string_view id);

// How many entries are kept.
std::size_t kept(const UntilResolvedTable &t);

enum class LiftResult {
    firing,  // the alert still fires: the silence stays
    expired, // the alert resolved (or is gone): the silence was expired
    gone,    // the silence is expired already, or Alertmanager has none by that id: forget it
    failed,  // Alertmanager could not say or refused: kept, checked again later
};

struct Lift {
    LiftResult result = LiftResult::failed;
    bool unreachable = false; // failed because nothing answered: the next ones will not either
    std::string error;        // failed: why
};

// After Alertmanager starts, a firing alert is listed again only once Prometheus resends it
// (resend_delay, 1 minute by default): until then its absence does not mean it resolved.
constexpr std::int64_t kAlertsBackSeconds = 90;

// Asks Alertmanager whether an alert the silence silences still fires (the silence's own
// matchers as the filter: while any does, the silence is still doing what it was made for),
// and expires the silence when none does. At most four calls, each bounded by the API's
// timeouts. When none is listed, Alertmanager is asked when it started: one that started after
// the entry was kept, less than kAlertsBackSeconds before `now` (unix seconds), may not have
// its firing alerts back yet, and the silence stays. A status that cannot be had keeps it too
// (asked again next round), but one larger than the sender reads (it holds the whole
// configuration) does not.
Lift lift_if_resolved(const AlertmanagerApi &api, const UntilResolved &entry, std::int64_t now);

// For the metric's label and the log: firing, expired, gone, failed.
const char *to_string(LiftResult r);

} // namespace dingtalk
