#include "store.hpp"

#include <hiredis/hiredis.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>

namespace dingtalk
{

namespace
{

// KEYS: window, cool-down, marker. ARGV: count, span (PERIOD + guard), attempt, member,
// fallback held (1/0). The window is a sorted set: member -> the latest its message can arrive.
const char kReserve[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local span = tonumber(ARGV[2])
local born = tonumber(redis.call('GET', KEYS[3]) or '0')
if born == 0 then
  born = now
  redis.call('SET', KEYS[3], now)
end
local warm = math.max(0, born + span - now)
local cool = redis.call('PTTL', KEYS[2])
if cool > 0 then return {'throttled', cool, 0} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - span)
if warm > 0 and ARGV[5] ~= '1' then return {'warming', warm, 0} end
local count = tonumber(ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= count then
  local e = redis.call('ZREVRANGE', KEYS[1], count - 1, count - 1, 'WITHSCORES')
  local untl = tonumber(e[2])
  return {'full', untl + span - now, untl > now and 1 or 0}
end
local untl = now + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], untl, ARGV[4])
if redis.call('PTTL', KEYS[1]) < untl + span - now then
  redis.call('PEXPIRE', KEYS[1], untl + span - now)
end
return {'now', warm, 0}
)lua";

// KEYS: window, cool-down, then the records a message carried. ARGV: member, sent (1/0),
// throttled (1/0), cool-down ms, what the message did to its records ('taken', 'doubt' or ''),
// owner, lease ms, kept ms once all posted, kept ms otherwise, then for each record: how many
// alerts the message showed of it, and their keys. An alert taken is posted (2); one in doubt
// goes from not posted (0) to doubtful (1), a second doubt is posted: never a third send.
const char kSettle[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = redis.call('ZSCORE', KEYS[1], ARGV[1])
if ARGV[2] ~= '1' then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif untl and tonumber(untl) > now then
  redis.call('ZADD', KEYS[1], 'XX', now, ARGV[1])
end
if ARGV[3] == '1' and redis.call('PTTL', KEYS[2]) < tonumber(ARGV[4]) then
  redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[4]))
end
local how, owner, lease = ARGV[5], ARGV[6], tonumber(ARGV[7])
local a = 10
for k = 3, #KEYS do
  local n = tonumber(ARGV[a])
  local grew = 0
  for i = a + 1, a + n do
    local s = tonumber(redis.call('HGET', KEYS[k], ARGV[i]) or '0')
    local to = (how == 'taken' or s > 0) and 2 or 1
    if to ~= s then
      redis.call('HSET', KEYS[k], ARGV[i], to)
      if to == 2 then grew = grew + 1 end
    end
  end
  a = a + n + 1
  if how == 'taken' then redis.call('HINCRBY', KEYS[k], 'm', 1) end
  local yes = redis.call('HINCRBY', KEYS[k], 'y', grew)
  local o = redis.call('HGET', KEYS[k], 'o')
  if yes >= tonumber(redis.call('HGET', KEYS[k], 'n') or '1') then
    if o == owner then redis.call('HDEL', KEYS[k], 'o', 'l') end
    redis.call('PEXPIRE', KEYS[k], tonumber(ARGV[8]))
  elseif not o or o == owner then
    redis.call('HSET', KEYS[k], 'o', owner, 'l', now + lease)
    redis.call('PEXPIRE', KEYS[k], lease + tonumber(ARGV[9]))
  end
end
return 1
)lua";

// KEYS: the notification's record. ARGV: owner, lease ms, kept ms, then its alerts' keys. The
// record is a hash: o the owner (the instance delivering it), l when its lease ends, n its
// alerts, y those posted, m the messages DingTalk took of it, and each alert's state.
const char kClaim[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local o = redis.call('HGET', KEYS[1], 'o')
if o and o ~= ARGV[1] then
  local l = tonumber(redis.call('HGET', KEYS[1], 'l') or '0')
  if l > now then return {'taken', l - now, 0, ''} end
end
local states, yes = {}, 0
for i = 4, #ARGV do
  local s = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
  states[#states + 1] = s
  if s == '2' then yes = yes + 1 end
end
local m = tonumber(redis.call('HGET', KEYS[1], 'm') or '0')
if #ARGV > 3 and yes == #ARGV - 3 then return {'done', 0, m, table.concat(states)} end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'l', now + tonumber(ARGV[2]), 'n', #ARGV - 3)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + tonumber(ARGV[3]))
return {'mine', 0, m, table.concat(states)}
)lua";

// KEYS: the Alertmanager's silences. ARGV: hard end (unix s), member.
const char kKeepSilence[] = R"lua(
local now = tonumber(redis.call('TIME')[1])
local ends = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], ends, ARGV[2])
if ends > now and redis.call('TTL', KEYS[1]) < ends - now then
  redis.call('EXPIRE', KEYS[1], ends - now)
end
return 1
)lua";

// KEYS: the Alertmanager's silences, its round's lock. ARGV: owner, lease ms, at most.
const char kSilenceRound[] = R"lua(
local now = tonumber(redis.call('TIME')[1])
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return {'other'}
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local out = {'mine'}
local kept = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
for i = 1, #kept do out[#out + 1] = kept[i] end
return out
)lua";

std::string sha1_hex(const char *text)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char *>(text), std::char_traits<char>::length(text), md);
    std::string hex;
    char b[3];
    for (unsigned char c : md) {
        std::snprintf(b, sizeof(b), "%02x", c);
        hex += b;
    }
    return hex;
}

uint64_t steady_ms()
{
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

// A thread that could not reach the store waits this long before trying again, so that a store
// that is down costs a send no time.
constexpr uint64_t kRetryConnectMs = 1000;

struct ReplyFree {
    void operator()(redisReply *r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;
struct ContextFree {
    void operator()(redisContext *c) const { redisFree(c); }
};

// The calling thread's connection, kept and reused; made again for another store.
struct Connection {
    std::unique_ptr<redisContext, ContextFree> c;
    std::string for_store; // host, port, db, user, password of the store it is to
    uint64_t failed_at = 0;
};
thread_local Connection tls;

std::string identity(const StoreConfig &c)
{
    return c.host + '\n' + std::to_string(c.port) + '\n' + std::to_string(c.db) + '\n' + c.user +
           '\n' + c.password;
}

timeval to_timeval(std::chrono::milliseconds ms)
{
    return timeval{static_cast<time_t>(ms.count() / 1000),
                   static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

Reply command(redisContext *c, const std::vector<std::string> &args)
{
    std::vector<const char *> argv;
    std::vector<size_t> lens;
    for (const std::string &a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    return Reply(static_cast<redisReply *>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data())));
}

// A reply that is not an error; else why (the connection is dropped when it failed).
bool check(Reply &r, std::string &error)
{
    if (!r) {
        error = tls.c && tls.c->errstr[0] ? tls.c->errstr : "no reply";
        tls.c.reset();
        tls.failed_at = steady_ms();
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        error = std::string(r->str, r->len);
        return false;
    }
    return true;
}

bool login(const StoreConfig &cfg, std::string &error)
{
    if (!cfg.password.empty()) {
        std::vector<std::string> auth{"AUTH"};
        if (!cfg.user.empty()) {
            auth.push_back(cfg.user);
        }
        auth.push_back(cfg.password);
        Reply r = command(tls.c.get(), auth);
        if (!check(r, error)) {
            error = "AUTH failed: " + error;
            return false;
        }
    }
    if (cfg.db != 0) {
        Reply r = command(tls.c.get(), {"SELECT", std::to_string(cfg.db)});
        if (!check(r, error)) {
            error = "SELECT failed: " + error;
            return false;
        }
    }
    return true;
}

// The thread's connection to this store, connected (and logged in) when it is not.
redisContext *connection(const StoreConfig &cfg, std::string &error)
{
    const std::string id = identity(cfg);
    if (tls.c && tls.for_store == id) {
        return tls.c.get();
    }
    tls.c.reset();
    if (tls.failed_at != 0 && steady_ms() - tls.failed_at < kRetryConnectMs) {
        error = "unreachable (tried less than a second ago)";
        return nullptr;
    }
    tls.c.reset(redisConnectWithTimeout(cfg.host.c_str(), cfg.port, to_timeval(cfg.timeout)));
    if (!tls.c || tls.c->err || redisSetTimeout(tls.c.get(), to_timeval(cfg.timeout)) != REDIS_OK) {
        error = tls.c ? tls.c->errstr : "out of memory";
        tls.c.reset();
        tls.failed_at = steady_ms();
        return nullptr;
    }
    tls.for_store = id;
    if (!login(cfg, error)) {
        tls.c.reset();
        tls.failed_at = steady_ms();
        return nullptr;
    }
    tls.failed_at = 0;
    return tls.c.get();
}

// The store closed the connection (as a restart does), unlike a timeout: worth one more try.
bool closed(const redisContext *c)
{
    return c->err == REDIS_ERR_EOF ||
           (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
}

// EVALSHA, and EVAL when the store does not know the script yet (restarted, flushed).
Reply run_script(const StoreConfig &cfg, const char *script, const std::string &sha,
                 std::vector<std::string> keys_args, std::size_t nkeys, std::string &error)
{
    const bool kept = tls.c && tls.for_store == identity(cfg);
    redisContext *c = connection(cfg, error);
    if (c == nullptr) {
        return nullptr;
    }
    std::vector<std::string> args{"EVALSHA", sha, std::to_string(nkeys)};
    args.insert(args.end(), keys_args.begin(), keys_args.end());
    Reply r = command(c, args);
    if (!r && kept && closed(c)) { // the store closed a kept connection (restarted): once more
        tls.c.reset();
        if ((c = connection(cfg, error)) == nullptr) {
            return nullptr;
        }
        r = command(c, args);
    }
    if (r && r->type == REDIS_REPLY_ERROR &&
        std::string_view(r->str, r->len).substr(0, 8) == "NOSCRIPT") {
        args[0] = "EVAL";
        args[1] = script;
        r = command(c, args);
    }
    if (!check(r, error)) {
        return nullptr;
    }
    return r;
}

std::string robot_prefix(const unsigned char robot[16])
{
    std::string key = "dingtalk:";
    char b[3];
    for (int i = 0; i < 16; ++i) {
        std::snprintf(b, sizeof(b), "%02x", robot[i]);
        key += b;
    }
    return key;
}

// A name for a send no other instance or thread makes.
std::string new_member()
{
    thread_local std::mt19937_64 random{std::random_device{}()};
    thread_local uint64_t seq = 0;
    char b[48];
    std::snprintf(b, sizeof(b), "%016llx-%llx", static_cast<unsigned long long>(random()),
                  static_cast<unsigned long long>(++seq));
    return b;
}

uint64_t integer(const redisReply *r)
{
    return r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? static_cast<uint64_t>(r->integer) : 0;
}

StoreReservation read_reservation(const redisReply *r, std::string member)
{
    StoreReservation res;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        res.error = "unexpected reply to the reservation script";
        return res;
    }
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    res.retry_after_ms = integer(r->element[1]);
    res.under_way = integer(r->element[2]) != 0;
    res.kind = kind == "now"         ? StoreReservation::now
               : kind == "full"      ? StoreReservation::full
               : kind == "throttled" ? StoreReservation::throttled
               : kind == "warming"   ? StoreReservation::warming
                                     : StoreReservation::failed;
    if (res.kind == StoreReservation::now) {
        res.member = std::move(member);
    }
    return res;
}

const std::string kReserveSha = sha1_hex(kReserve);
const std::string kSettleSha = sha1_hex(kSettle);
const std::string kClaimSha = sha1_hex(kClaim);
const std::string kKeepSilenceSha = sha1_hex(kKeepSilence);
const std::string kSilenceRoundSha = sha1_hex(kSilenceRound);

// How long the store keeps a record: once every alert is posted, for a second replica's copy
// (Alertmanager's peers wait 15 s each) and no longer, so that repeat_interval's reminders are
// posted again; otherwise past its lease, for Alertmanager's retries.
constexpr uint64_t kKeepPostedMs = 2 * 60 * 1000;
constexpr uint64_t kKeepMs = 60 * 60 * 1000;

std::string hex(uint64_t v)
{
    char b[17];
    std::snprintf(b, sizeof(b), "%016llx", static_cast<unsigned long long>(v));
    return b;
}

std::string record_key(const std::string &prefix, uint64_t notification)
{
    return prefix + ":n:" + hex(notification);
}

// Enough for the shared zone's table of every instance, and bounded.
constexpr std::size_t kMaxStoredSilences = 1024;

std::string silences_key(std::uint64_t alertmanager)
{
    return "dingtalk:silences:" + hex(alertmanager);
}

std::string member_of(const StoredSilence &s)
{
    return s.id + ' ' + s.fingerprint + ' ' + std::to_string(s.kept_at);
}

StoreRound read_round(const redisReply *r)
{
    StoreRound round;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        r->element[0]->type != REDIS_REPLY_STRING) {
        round.error = "unexpected reply to the silences script";
        return round;
    }
    if (std::string_view(r->element[0]->str, r->element[0]->len) == "other") {
        round.kind = StoreRound::other;
        return round;
    }
    for (std::size_t i = 1; i + 1 < r->elements; i += 2) {
        const redisReply *m = r->element[i], *score = r->element[i + 1];
        if (m->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING) {
            continue;
        }
        const std::string_view member(m->str, m->len);
        // "ID FINGERPRINT KEPT_AT" (the fingerprint may be "")
        const std::size_t space = std::min(member.find(' '), member.size());
        const std::size_t last = std::max(std::min(member.rfind(' '), member.size()), space);
        const std::size_t from = std::min(space + 1, last);
        StoredSilence s;
        s.id = std::string(member.substr(0, space));
        s.fingerprint = std::string(member.substr(from, last - from));
        s.kept_at = std::strtoll(
            std::string(member.substr(std::min(last + 1, member.size()))).c_str(), nullptr, 10);
        s.hard_end = std::strtoll(score->str, nullptr, 10);
        round.silences.push_back(std::move(s));
    }
    round.kind = StoreRound::mine;
    return round;
}

Posted posted_of(char c)
{
    return c == '2' ? Posted::yes : c == '1' ? Posted::doubtful : Posted::no;
}

StoreClaim read_claim(const redisReply *r, std::size_t alerts)
{
    StoreClaim claim;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_STRING ||
        (r->element[3]->len != alerts && r->element[3]->len != 0)) {
        claim.error = "unexpected reply to the record script";
        return claim;
    }
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    claim.kind = kind == "mine"    ? StoreClaim::mine
                 : kind == "taken" ? StoreClaim::taken
                 : kind == "done"  ? StoreClaim::done
                                   : StoreClaim::failed;
    claim.retry_after_ms = integer(r->element[1]);
    claim.messages = static_cast<uint32_t>(integer(r->element[2]));
    for (std::size_t i = 0; i < r->element[3]->len; ++i) {
        claim.states.push_back(posted_of(r->element[3]->str[i]));
    }
    return claim;
}

// The settle script's arguments after the window's: what the message did to its records.
void append_marks(const std::string &prefix, const StoreMarks &marks,
                  std::vector<std::string> &keys, std::vector<std::string> &args)
{
    args.push_back(marks.kind == StoreMarks::taken      ? "taken"
                   : marks.kind == StoreMarks::in_doubt ? "doubt"
                                                        : "");
    args.push_back(marks.owner);
    args.push_back(std::to_string(marks.lease_ms));
    args.push_back(std::to_string(kKeepPostedMs));
    args.push_back(std::to_string(kKeepMs));
    if (marks.kind == StoreMarks::none) {
        return;
    }
    for (const StoreMark &m : marks.records) {
        keys.push_back(record_key(prefix, m.notification));
        args.push_back(std::to_string(m.alerts.size()));
        for (uint64_t a : m.alerts) {
            args.push_back(hex(a));
        }
    }
}

} // namespace

StoreReservation Store::reserve(const unsigned char robot[16], const RateLimit &limit,
                                std::uint64_t attempt_ms, bool fallback_held) const noexcept
{
    try {
        const std::string prefix = robot_prefix(robot);
        std::string member = new_member();
        StoreReservation res;
        Reply r = run_script(config_, kReserve, kReserveSha,
                             {prefix + ":w", prefix + ":c", "dingtalk:since",
                              std::to_string(std::max<uint32_t>(limit.count, 1)),
                              std::to_string(limit.window_ms + limit.guard_ms),
                              std::to_string(attempt_ms), member, fallback_held ? "1" : "0"},
                             3, res.error);
        return r ? read_reservation(r.get(), std::move(member)) : res;
    } catch (const std::exception &e) {
        StoreReservation res;
        res.error = e.what();
        return res;
    }
}

bool Store::settle(const unsigned char robot[16], const std::string &member, bool sent,
                   bool throttled, const RateLimit &limit, const StoreMarks &marks,
                   std::string &error) const noexcept
{
    try {
        const std::string prefix = robot_prefix(robot);
        std::vector<std::string> keys{prefix + ":w", prefix + ":c"};
        std::vector<std::string> args{member, sent ? "1" : "0", throttled ? "1" : "0",
                                      std::to_string(limit.cooldown_ms)};
        append_marks(prefix, marks, keys, args);
        const std::size_t nkeys = keys.size();
        keys.insert(keys.end(), args.begin(), args.end());
        return run_script(config_, kSettle, kSettleSha, std::move(keys), nkeys, error) != nullptr;
    } catch (const std::exception &e) {
        error = e.what();
        return false;
    }
}

StoreClaim Store::claim(const unsigned char robot[16], std::uint64_t notification,
                        const std::vector<std::uint64_t> &alerts, const std::string &owner,
                        std::uint64_t lease_ms) const noexcept
{
    try {
        std::vector<std::string> args{record_key(robot_prefix(robot), notification), owner,
                                      std::to_string(lease_ms), std::to_string(kKeepMs)};
        for (uint64_t a : alerts) {
            args.push_back(hex(a));
        }
        StoreClaim res;
        Reply r = run_script(config_, kClaim, kClaimSha, std::move(args), 1, res.error);
        return r ? read_claim(r.get(), alerts.size()) : res;
    } catch (const std::exception &e) {
        StoreClaim res;
        res.error = e.what();
        return res;
    }
}

bool Store::keep_silence(std::uint64_t alertmanager, const StoredSilence &s,
                         std::string &error) const noexcept
{
    try {
        return run_script(config_, kKeepSilence, kKeepSilenceSha,
                          {silences_key(alertmanager), std::to_string(s.hard_end), member_of(s)}, 1,
                          error) != nullptr;
    } catch (const std::exception &e) {
        error = e.what();
        return false;
    }
}

bool Store::forget_silence(std::uint64_t alertmanager, const StoredSilence &s,
                           std::string &error) const noexcept
{
    try {
        redisContext *c = connection(config_, error);
        if (c == nullptr) {
            return false;
        }
        Reply r = command(c, {"ZREM", silences_key(alertmanager), member_of(s)});
        return check(r, error);
    } catch (const std::exception &e) {
        error = e.what();
        return false;
    }
}

StoreRound Store::silence_round(std::uint64_t alertmanager, const std::string &owner,
                                std::uint64_t lease_ms) const noexcept
{
    try {
        const std::string key = silences_key(alertmanager);
        StoreRound round;
        Reply r = run_script(config_, kSilenceRound, kSilenceRoundSha,
                             {key, key + ":round", owner, std::to_string(lease_ms),
                              std::to_string(kMaxStoredSilences)},
                             2, round.error);
        return r ? read_round(r.get()) : round;
    } catch (const std::exception &e) {
        StoreRound round;
        round.error = e.what();
        return round;
    }
}

void store_disconnect_thread()
{
    tls.c.reset();
    tls.failed_at = 0;
}

namespace
{

bool digits(std::string_view s)
{
    return !s.empty() && s.size() <= 5 &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The URL for an error message: what precedes an '@' may be a password put there by mistake.
std::string redacted(std::string_view url)
{
    const auto at = url.rfind('@');
    return at == std::string_view::npos ? std::string(url)
                                        : "redis://...@" + std::string(url.substr(at + 1));
}

} // namespace

std::optional<StoreConfig> parse_store_url(std::string_view url, std::string &error)
{
    if (url.substr(0, 9) == "rediss://") {
        error = "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14 has no TLS; reach "
                "the store over a trusted network or a TLS tunnel (stunnel) with redis://";
        return std::nullopt;
    }
    if (url.substr(0, 8) != "redis://") {
        error = "\"" + redacted(url) + "\" is not redis://[user@]host:port[/db]";
        return std::nullopt;
    }
    StoreConfig cfg;
    cfg.shown = std::string(url);
    std::string_view rest = url.substr(8);
    if (const auto at = rest.find('@'); at != std::string_view::npos) {
        cfg.user = std::string(rest.substr(0, at));
        rest = rest.substr(at + 1);
        if (cfg.user.empty() || cfg.user.find(':') != std::string::npos) {
            error = "the user of \"" + redacted(url) +
                    "\" must be a name without ':' (the password goes in password_file)";
            return std::nullopt;
        }
    }
    std::string_view db;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        db = rest.substr(slash + 1);
        rest = rest.substr(0, slash);
    }
    const auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0 || !digits(rest.substr(colon + 1)) ||
        (!db.empty() && !digits(db))) {
        error = "\"" + redacted(url) + "\" is not redis://[user@]host:port[/db]";
        return std::nullopt;
    }
    cfg.host = std::string(rest.substr(0, colon));
    cfg.port = std::stoi(std::string(rest.substr(colon + 1)));
    cfg.db = db.empty() ? 0 : std::stoi(std::string(db));
    if (cfg.port < 1 || cfg.port > 65535 || cfg.db > 15) {
        error = "\"" + redacted(url) + "\": the port is 1 to 65535, the db 0 to 15";
        return std::nullopt;
    }
    return cfg;
}

} // namespace dingtalk
