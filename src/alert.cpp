#include "alert.hpp"

#include "date_lib.hpp"
#include "text.hpp"

#include "json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <array>
#include <memory>
#include <mutex>
#include <vector>

namespace dingtalk
{

namespace
{

namespace sj = simdjson;

// Where a value sits, for error messages; built into text only when something is wrong.
struct Where {
    long alert = -1; // index in "alerts", or -1 for the top level

    std::string path(std::string_view key, std::string_view sub = {}) const
    {
        std::string p = alert < 0 ? "" : "alerts[" + std::to_string(alert) + "].";
        p.append(key);
        if (!sub.empty()) {
            p.append(".").append(sub);
        }
        return p;
    }
};

// s, or when it is longer than max bytes its longest prefix that fits with "…" after it and
// does not end inside a UTF-8 sequence (the JSON parser has already checked that s is UTF-8).
std::string cut(std::string_view s, std::size_t max)
{
    if (s.size() <= max) {
        return std::string(s);
    }
    std::size_t end = max - 3; // "…"
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) {
        --end;
    }
    return std::string(s.substr(0, end)) + "…";
}

// Reads the typed fields out of simdjson's DOM. Collects the first error; every reader returns
// false once one is set. A null output means "check, do not keep": alerts past the cap are
// read that way, so a wrong type anywhere is still an error, at no cost in memory.
class Reader
{
public:
    explicit Reader(const ParseLimits &limits) : limits_(limits) {}

    std::string error;

    bool fail(std::string path, const char *what)
    {
        if (error.empty()) {
            error = std::move(path) + " " + what;
        }
        return false;
    }

    // Absent or JSON null: Go marshals an empty map or string as null in places.
    static bool get(const sj::dom::object &obj, std::string_view key, sj::dom::element &out)
    {
        return !obj.at_key(key).get(out) && !out.is_null();
    }

    // The readers below take a value that is there and not null, and the key it is under.

    bool string_value(const sj::dom::element &v, std::string_view key, Where w,
                      std::string_view &out)
    {
        return !v.get_string().get(out) || fail(w.path(key), "must be a string");
    }

    bool string_value(const sj::dom::element &v, std::string_view key, Where w, std::string *out)
    {
        std::string_view s;
        if (!string_value(v, key, w, s)) {
            return false;
        }
        if (out != nullptr) {
            *out = cut(s, limits_.max_value_bytes);
        }
        return true;
    }

    bool labels_value(const sj::dom::element &v, std::string_view key, Where w, Labels *out)
    {
        sj::dom::object labels;
        if (v.get_object().get(labels)) {
            return fail(w.path(key), "must be an object of strings");
        }
        for (const sj::dom::key_value_pair field : labels) {
            std::string_view value;
            if (field.value.get_string().get(value)) {
                return fail(w.path(key, field.key), "must be a string");
            }
            if (out != nullptr && out->size() < limits_.max_pairs) {
                out->emplace(cut(field.key, limits_.max_name_bytes),
                             cut(value, limits_.max_value_bytes));
            }
        }
        return true;
    }

    bool status_value(const sj::dom::element &v, Where w, std::optional<Status> &out)
    {
        std::string_view s;
        if (!string_value(v, "status", w, s)) {
            return false;
        }
        if (s == "firing") {
            out = Status::firing;
        } else if (s == "resolved") {
            out = Status::resolved;
        } else if (!s.empty()) {
            return fail(w.path("status"), "must be \"firing\" or \"resolved\"");
        }
        return true;
    }

    bool time_value(const sj::dom::element &v, std::string_view key, Where w,
                    std::optional<TimePoint> &out, Offset &written)
    {
        std::string_view s;
        if (!string_value(v, key, w, s)) {
            return false;
        }
        if (s.empty()) {
            return true;
        }
        auto t = parse_rfc3339(s, &written);
        if (!t) {
            return fail(w.path(key), "is not an RFC 3339 time");
        }
        // Go's zero time.Time (year 1) means "not known": Alertmanager's endsAt while firing.
        if (*t > TimePoint(date::sys_days(date::year(2) / 1 / 1))) {
            out = t;
        }
        return true;
    }

    // One field of an alert; unknown ones are ignored. Kept in out when keep is set.
    bool alert_field(std::string_view key, const sj::dom::element &v, Where w, Alert &out,
                     bool keep, std::optional<Status> &status)
    {
        if (key == "status") {
            return status_value(v, w, status);
        }
        if (key == "labels" || key == "annotations") {
            Labels *into = !keep ? nullptr : key == "labels" ? &out.labels : &out.annotations;
            return labels_value(v, key, w, into);
        }
        if (key == "startsAt" || key == "endsAt") {
            const bool starts = key == "startsAt";
            return time_value(v, key, w, starts ? out.starts_at : out.ends_at,
                              starts ? out.starts_at_offset : out.ends_at_offset);
        }
        if (key == "generatorURL" || key == "fingerprint") {
            std::string *into = !keep                  ? nullptr
                                : key == "fingerprint" ? &out.fingerprint
                                                       : &out.generator_url;
            return string_value(v, key, w, into);
        }
        return true;
    }

    // One alert into out, or only checked when keep is false; in one pass over its fields
    // (keys are known to be unique). Its status is in out either way.
    bool alert(const sj::dom::element &v, long index, std::optional<Status> group_status,
               Alert &out, bool keep)
    {
        const Where w{index};
        sj::dom::object obj;
        if (v.get_object().get(obj)) {
            return fail("alerts[" + std::to_string(index) + "]", "must be an object");
        }
        std::optional<Status> status;
        for (const sj::dom::key_value_pair field : obj) {
            if (!field.value.is_null() &&
                !alert_field(field.key, field.value, w, out, keep, status)) {
                return false;
            }
        }
        out.status = status.value_or(group_status.value_or(Status::firing));
        return true;
    }

    // A top-level field read with one of the readers above, when it is there.
    template <class Read> bool top(const sj::dom::object &o, std::string_view key, Read read)
    {
        sj::dom::element v;
        return !get(o, key, v) || read(v, key, Where{});
    }

    // The top-level fields other than "alerts".
    bool header(const sj::dom::object &o, Notification &n, std::optional<Status> &status)
    {
        auto text = [&](std::string *into) {
            return [this, into](const sj::dom::element &v, std::string_view k, Where w) {
                return string_value(v, k, w, into);
            };
        };
        auto labels = [&](Labels *into) {
            return [this, into](const sj::dom::element &v, std::string_view k, Where w) {
                return labels_value(v, k, w, into);
            };
        };
        auto status_read = [&](const sj::dom::element &v, std::string_view, Where w) {
            return status_value(v, w, status);
        };
        return top(o, "version", text(&n.version)) && top(o, "groupKey", text(&n.group_key)) &&
               top(o, "status", status_read) && top(o, "receiver", text(&n.receiver)) &&
               top(o, "groupLabels", labels(&n.group_labels)) &&
               top(o, "commonLabels", labels(&n.common_labels)) &&
               top(o, "commonAnnotations", labels(&n.common_annotations)) &&
               top(o, "externalURL", text(&n.external_url)) && truncated(o, n);
    }

    bool truncated(const sj::dom::object &o, Notification &n)
    {
        sj::dom::element truncated;
        if (!get(o, "truncatedAlerts", truncated)) {
            return true;
        }
        int64_t value = 0;
        if (!truncated.is_int64() || truncated.get_int64().get(value) || value < 0) {
            return fail("truncatedAlerts", "must be a non-negative integer");
        }
        // Alertmanager counts alerts here; anything near 2^63 is nonsense, keep sums safe
        n.truncated_alerts = std::min<int64_t>(value, 1000000000);
        return true;
    }

    // Every alert is checked and counted; the first max_alerts firing ones are kept, and
    // resolved ones while there is room (firing first: what still burns matters most). At
    // most twice the cap is held at once, whatever the body. While there is room for either
    // status an alert is read once, into its place; past that, checked first and read again
    // only when kept.
    bool alerts(const sj::dom::array &list, std::optional<Status> group_status, Notification &n)
    {
        const std::size_t cap = limits_.max_alerts;
        std::size_t kept_resolved = 0;
        long i = 0;
        for (const sj::dom::element v : list) {
            const bool room = n.firing_total < cap && kept_resolved < cap;
            Alert checked;
            Alert &a = room ? n.alerts.emplace_back() : checked;
            if (!alert(v, i, group_status, a, room)) {
                return false;
            }
            const bool firing = a.status == Status::firing;
            const bool keep = firing ? n.firing_total < cap : kept_resolved < cap;
            (firing ? n.firing_total : n.resolved_total) += 1;
            if (keep && !room) {
                alert(v, i, group_status, n.alerts.emplace_back(), true);
            }
            kept_resolved += keep && !firing;
            ++i;
        }
        // Resolved alerts only fill what firing ones left of the cap.
        std::size_t room = cap - std::min(cap, n.firing_total);
        std::vector<Alert> kept;
        kept.reserve(n.alerts.size());
        for (Alert &a : n.alerts) {
            if (a.status == Status::firing || room > 0) {
                room -= a.status == Status::resolved;
                kept.push_back(std::move(a));
            }
        }
        n.alerts.swap(kept);
        return true;
    }

private:
    const ParseLimits &limits_;
};

// simdjson accepts what jansson (and JSON's object model) would not: the same key twice in an
// object, and NUL in a key. Both are refused, anywhere in the document.
bool keys_are_sound(const sj::dom::element &e);

// Whether two keys are the same; most that differ do so in length or first byte, which are
// compared before memcmp is called.
bool same_key(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && (a.empty() || (a[0] == b[0] && a == b));
}

// No NUL in a key, no key twice. Objects are small (a dozen labels): their keys are compared
// pairwise from an array on the stack; the rare big one is sorted.
bool object_is_sound(const sj::dom::object &obj)
{
    std::array<std::string_view, 16> small;
    std::size_t n = 0;
    for (const sj::dom::key_value_pair field : obj) {
        if (field.key.find('\0') != std::string_view::npos || !keys_are_sound(field.value)) {
            return false;
        }
        if (n < small.size()) {
            small[n] = field.key;
        }
        ++n;
    }
    if (n <= small.size()) {
        for (std::size_t a = 0; a < n; ++a) {
            for (std::size_t b = a + 1; b < n; ++b) {
                if (same_key(small[a], small[b])) {
                    return false;
                }
            }
        }
        return true;
    }
    std::vector<std::string_view> keys;
    keys.reserve(n);
    for (const sj::dom::key_value_pair field : obj) {
        keys.push_back(field.key);
    }
    std::sort(keys.begin(), keys.end());
    return std::adjacent_find(keys.begin(), keys.end()) == keys.end();
}

bool keys_are_sound(const sj::dom::element &e)
{
    sj::dom::object obj;
    sj::dom::array arr;
    if (!e.get_object().get(obj)) {
        return object_is_sound(obj);
    }
    if (!e.get_array().get(arr)) {
        for (const sj::dom::element item : arr) {
            if (!keys_are_sound(item)) {
                return false;
            }
        }
    }
    return true;
}

// Why a body is not JSON, as jansson says it (with line and column); simdjson's own error
// codes say less. Only on the error path.
std::string json_error(std::string_view body, sj::error_code code)
{
    json_error_t jerr;
    JsonPtr root(
        json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr));
    if (!root) {
        return "invalid JSON at line " + std::to_string(jerr.line) + " column " +
               std::to_string(jerr.column) + ": " + jerr.text;
    }
    return std::string("invalid JSON: ") +
           (code ? sj::error_message(code) : "a key appears twice in one object or holds NUL");
}

int digits(std::string_view s, std::size_t pos, std::size_t n)
{
    if (pos + n > s.size()) {
        return -1;
    }
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

} // namespace

void Notification::count_alerts()
{
    firing_total = resolved_total = 0;
    for (const auto &a : alerts) {
        (a.status == Status::firing ? firing_total : resolved_total) += 1;
    }
}

const char *to_string(Status s)
{
    return s == Status::firing ? "firing" : "resolved";
}

std::optional<TimePoint> parse_rfc3339(std::string_view s, Offset *written)
{
    // 2006-01-02T15:04:05[.999999999](Z|+07:00)
    const int year = digits(s, 0, 4), month = digits(s, 5, 2), day = digits(s, 8, 2);
    const int hour = digits(s, 11, 2), minute = digits(s, 14, 2), second = digits(s, 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || second < 0 || s[4] != '-' ||
        s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':') {
        return std::nullopt;
    }
    const date::year_month_day ymd{date::year(year), date::month(unsigned(month)),
                                   date::day(unsigned(day))};
    if (!ymd.ok() || hour > 23 || minute > 59 || second > 60) {
        return std::nullopt;
    }

    std::size_t pos = 19;
    std::int64_t micros = 0;
    if (pos < s.size() && s[pos] == '.') {
        std::size_t n = 0;
        for (++pos; pos < s.size() && s[pos] >= '0' && s[pos] <= '9'; ++pos, ++n) {
            if (n < 6) {
                micros = micros * 10 + (s[pos] - '0');
            }
        }
        if (n == 0) {
            return std::nullopt;
        }
        for (; n < 6; ++n) {
            micros *= 10;
        }
    }

    std::chrono::minutes offset{0};
    if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
        ++pos;
    } else if (pos < s.size() && (s[pos] == '+' || s[pos] == '-')) {
        const int oh = digits(s, pos + 1, 2), om = digits(s, pos + 4, 2);
        if (oh < 0 || om < 0 || s[pos + 3] != ':' || oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset = std::chrono::minutes(oh * 60 + om);
        if (s[pos] == '-') {
            offset = -offset;
        }
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) {
        return std::nullopt;
    }

    if (written != nullptr) {
        *written = offset;
    }
    // A leap second (:60) is shown as the second before it; nobody reads alerts that closely.
    const auto t = TimePoint(date::sys_days(ymd)) + std::chrono::hours(hour) +
                   std::chrono::minutes(minute) + std::chrono::seconds(second > 59 ? 59 : second) +
                   std::chrono::microseconds(micros) - offset;
    return t;
}

namespace
{

// simdjson's parsers keep their buffers (about 14 bytes per byte of the largest body parsed) for
// the next body. A few are kept for small bodies, shared by all threads; a larger body gets a
// parser of its own, freed with it, so no thread holds on to a storm's memory.
class ParserPool
{
public:
    static constexpr std::size_t kReusedUpTo = 64 * 1024;
    static constexpr std::size_t kKept = 4;

    std::unique_ptr<sj::dom::parser> take(std::size_t size)
    {
        if (size <= kReusedUpTo) {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!free_.empty()) {
                auto p = std::move(free_.back());
                free_.pop_back();
                return p;
            }
        }
        return std::make_unique<sj::dom::parser>();
    }

    void give_back(std::unique_ptr<sj::dom::parser> p)
    {
        if (p->capacity() > kReusedUpTo) {
            return;
        }
        std::lock_guard<std::mutex> lock(mutex_);
        if (free_.size() < kKept) {
            free_.push_back(std::move(p));
        }
    }

private:
    std::mutex mutex_;
    std::vector<std::unique_ptr<sj::dom::parser>> free_;
};

ParserPool parsers;

// The body as a JSON object, or the reason it is not one.
std::optional<sj::dom::object> root_object(sj::dom::parser &parser, std::string_view body,
                                           std::string &error)
{
    if (body.empty()) {
        error = "empty body: expected an Alertmanager webhook notification (JSON)";
        return std::nullopt;
    }
    if (body.substr(0, 3) == "\xEF\xBB\xBF") {
        error = json_error(body, sj::SUCCESS); // JSON has no byte order mark
        return std::nullopt;
    }
    const sj::padded_string padded(body.data(), body.size());
    sj::dom::element root;
    if (const sj::error_code code = parser.parse(padded).get(root); code) {
        error = json_error(body, code);
        return std::nullopt;
    }
    if (!keys_are_sound(root)) {
        error = json_error(body, sj::SUCCESS);
        return std::nullopt;
    }
    sj::dom::object o;
    if (root.get_object().get(o)) {
        error = root.is_array()
                    ? "body must be a JSON object (an Alertmanager webhook notification)"
                    : json_error(body, sj::SUCCESS); // a bare scalar is not a document
        return std::nullopt;
    }
    return o;
}

ParseResult parse(sj::dom::parser &parser, std::string_view body, const ParseLimits &limits)
{
    ParseResult result;
    if (body.size() > limits.max_body_bytes) {
        result.error = "body of " + std::to_string(body.size()) + " bytes is over the limit of " +
                       std::to_string(limits.max_body_bytes) + " bytes";
        return result;
    }
    std::optional<sj::dom::object> o = root_object(parser, body, result.error);
    if (!o) {
        return result;
    }

    Reader rd(limits);
    Notification n;
    std::optional<Status> status;
    if (!rd.header(*o, n, status)) {
        result.error = rd.error;
        return result;
    }
    sj::dom::element alerts_value;
    sj::dom::array alerts;
    if (o->at_key("alerts").get(alerts_value)) {
        result.error = "no \"alerts\" array: not an Alertmanager webhook notification";
    } else if (alerts_value.get_array().get(alerts)) {
        result.error = "alerts must be an array";
    } else if (alerts.begin() == alerts.end()) { // size() saturates at 2^24-1: never used
        result.error = "alerts is empty: nothing to send";
    } else if (!rd.alerts(alerts, status, n)) {
        result.error = rd.error;
    }
    if (!result.error.empty()) {
        return result;
    }
    // The group is firing while any alert fires, whatever a hand-written body claims.
    n.status = n.firing_total > 0 ? Status::firing : Status::resolved;
    result.notification = std::move(n);
    return result;
}

} // namespace

ParseResult parse_notification(std::string_view body, const ParseLimits &limits)
{
    std::unique_ptr<sj::dom::parser> parser = parsers.take(body.size());
    ParseResult r = parse(*parser, body, limits);
    parsers.give_back(std::move(parser));
    // The error quotes input (label names, jansson's "near '...'" with cut characters): one
    // line of valid UTF-8, since it goes into a JSON reply and a log line.
    r.error = plain_line(r.error, 1024);
    return r;
}

} // namespace dingtalk
