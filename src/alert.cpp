#include "alert.hpp"

#include "date_lib.hpp"
#include "view.hpp"

#include "json.hpp"

#include <simdjson.h>

#include <algorithm>
#include <memory>
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

// Reads the typed fields out of simdjson's DOM. Collects the first error; every reader returns
// false once one is set.
class Reader
{
public:
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

    bool string_field(const sj::dom::object &obj, std::string_view key, Where w,
                      std::string_view &out)
    {
        sj::dom::element v;
        if (!get(obj, key, v)) {
            return true;
        }
        if (v.get_string().get(out)) {
            return fail(w.path(key), "must be a string");
        }
        return true;
    }

    bool string_field(const sj::dom::object &obj, std::string_view key, Where w, std::string &out)
    {
        std::string_view v;
        if (!string_field(obj, key, w, v)) {
            return false;
        }
        out.assign(v);
        return true;
    }

    bool labels_field(const sj::dom::object &obj, std::string_view key, Where w, Labels &out)
    {
        sj::dom::element v;
        if (!get(obj, key, v)) {
            return true;
        }
        sj::dom::object labels;
        if (v.get_object().get(labels)) {
            return fail(w.path(key), "must be an object of strings");
        }
        for (const sj::dom::key_value_pair field : labels) {
            std::string_view value;
            if (field.value.get_string().get(value)) {
                return fail(w.path(key, field.key), "must be a string");
            }
            out.emplace_hint(out.end(), field.key, value);
        }
        return true;
    }

    bool status_field(const sj::dom::object &obj, Where w, std::optional<Status> &out)
    {
        std::string_view s;
        if (!string_field(obj, "status", w, s)) {
            return false;
        }
        if (s.empty()) {
            return true;
        }
        if (s == "firing") {
            out = Status::firing;
        } else if (s == "resolved") {
            out = Status::resolved;
        } else {
            return fail(w.path("status"), "must be \"firing\" or \"resolved\"");
        }
        return true;
    }

    bool time_field(const sj::dom::object &obj, std::string_view key, Where w,
                    std::optional<TimePoint> &out)
    {
        std::string_view s;
        if (!string_field(obj, key, w, s)) {
            return false;
        }
        if (s.empty()) {
            return true;
        }
        auto t = parse_rfc3339(s);
        if (!t) {
            return fail(w.path(key), "is not an RFC 3339 time");
        }
        // Go's zero time.Time (year 1) means "not known": Alertmanager's endsAt while firing.
        if (*t > TimePoint(date::sys_days(date::year(2) / 1 / 1))) {
            out = t;
        }
        return true;
    }

    bool alert(const sj::dom::element &v, long index, std::optional<Status> group_status,
               Alert &out)
    {
        const Where w{index};
        sj::dom::object obj;
        if (v.get_object().get(obj)) {
            return fail("alerts[" + std::to_string(index) + "]", "must be an object");
        }
        std::optional<Status> status;
        if (!status_field(obj, w, status) || !labels_field(obj, "labels", w, out.labels) ||
            !labels_field(obj, "annotations", w, out.annotations) ||
            !time_field(obj, "startsAt", w, out.starts_at) ||
            !time_field(obj, "endsAt", w, out.ends_at) ||
            !string_field(obj, "generatorURL", w, out.generator_url) ||
            !string_field(obj, "fingerprint", w, out.fingerprint)) {
            return false;
        }
        out.status = status.value_or(group_status.value_or(Status::firing));
        return true;
    }
};

// simdjson accepts what jansson (and JSON's object model) would not: the same key twice in an
// object, and NUL in a key. Both are refused, anywhere in the document.
bool keys_are_sound(const sj::dom::element &e)
{
    sj::dom::object obj;
    sj::dom::array arr;
    if (!e.get_object().get(obj)) {
        // Objects are small (a dozen labels): compare pairwise on the stack; sort the rare big
        // one.
        std::string_view small[32];
        std::vector<std::string_view> big;
        std::size_t n = 0;
        for (const sj::dom::key_value_pair field : obj) {
            if (field.key.find('\0') != std::string_view::npos || !keys_are_sound(field.value)) {
                return false;
            }
            if (n < 32) {
                for (std::size_t k = 0; k < n; ++k) {
                    if (small[k] == field.key) {
                        return false;
                    }
                }
                small[n] = field.key;
            } else {
                if (big.empty()) {
                    big.assign(small, small + 32);
                }
                big.push_back(field.key);
            }
            ++n;
        }
        std::sort(big.begin(), big.end());
        return std::adjacent_find(big.begin(), big.end()) == big.end();
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

std::size_t Notification::count(Status s) const
{
    std::size_t n = 0;
    for (const auto &a : alerts) {
        n += a.status == s;
    }
    return n;
}

const char *to_string(Status s)
{
    return s == Status::firing ? "firing" : "resolved";
}

std::optional<TimePoint> parse_rfc3339(std::string_view s)
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

    // A leap second (:60) is shown as the second before it; nobody reads alerts that closely.
    const auto t = TimePoint(date::sys_days(ymd)) + std::chrono::hours(hour) +
                   std::chrono::minutes(minute) + std::chrono::seconds(second > 59 ? 59 : second) +
                   std::chrono::microseconds(micros) - offset;
    return t;
}

namespace
{

ParseResult parse(std::string_view body)
{
    ParseResult result;
    if (body.empty()) {
        result.error = "empty body: expected an Alertmanager webhook notification (JSON)";
        return result;
    }
    if (body.substr(0, 3) == "\xEF\xBB\xBF") {
        result.error = json_error(body, sj::SUCCESS); // JSON has no byte order mark
        return result;
    }

    // simdjson, because parsing is most of the cost of a delivery (jansson took 60-70% of
    // parse + render; measured in bench/results.md). A parser per thread keeps its buffers for
    // the next body; a huge body gets its own, so a storm does not pin its memory in a thread.
    thread_local sj::dom::parser shared;
    sj::dom::parser own;
    sj::dom::parser &parser = body.size() <= (1u << 20) ? shared : own;
    const sj::padded_string padded(body.data(), body.size());
    sj::dom::element root;
    if (const sj::error_code code = parser.parse(padded).get(root); code) {
        result.error = json_error(body, code);
        return result;
    }
    if (!keys_are_sound(root)) {
        result.error = json_error(body, sj::SUCCESS);
        return result;
    }
    sj::dom::object o;
    if (root.get_object().get(o)) {
        result.error = root.is_array()
                           ? "body must be a JSON object (an Alertmanager webhook notification)"
                           : json_error(body, sj::SUCCESS); // a bare scalar is not a document
        return result;
    }

    Reader rd;
    Notification n;
    std::optional<Status> status;
    const Where top;
    if (!rd.string_field(o, "version", top, n.version) ||
        !rd.string_field(o, "groupKey", top, n.group_key) || !rd.status_field(o, top, status) ||
        !rd.string_field(o, "receiver", top, n.receiver) ||
        !rd.labels_field(o, "groupLabels", top, n.group_labels) ||
        !rd.labels_field(o, "commonLabels", top, n.common_labels) ||
        !rd.labels_field(o, "commonAnnotations", top, n.common_annotations) ||
        !rd.string_field(o, "externalURL", top, n.external_url)) {
        result.error = rd.error;
        return result;
    }

    sj::dom::element truncated;
    if (Reader::get(o, "truncatedAlerts", truncated)) {
        int64_t value = 0;
        if (!truncated.is_int64() || truncated.get_int64().get(value) || value < 0) {
            result.error = "truncatedAlerts must be a non-negative integer";
            return result;
        }
        // Alertmanager counts alerts here; anything near 2^63 is nonsense, keep sums safe
        n.truncated_alerts = std::min<int64_t>(value, 1000000000);
    }

    sj::dom::element alerts_value;
    if (o.at_key("alerts").get(alerts_value)) {
        result.error = "no \"alerts\" array: not an Alertmanager webhook notification";
        return result;
    }
    sj::dom::array alerts;
    if (alerts_value.get_array().get(alerts)) {
        result.error = "alerts must be an array";
        return result;
    }
    if (alerts.size() == 0) {
        result.error = "alerts is empty: nothing to send";
        return result;
    }

    n.alerts.resize(alerts.size());
    long i = 0;
    for (const sj::dom::element a : alerts) {
        if (!rd.alert(a, i, status, n.alerts[static_cast<std::size_t>(i)])) {
            result.error = rd.error;
            return result;
        }
        ++i;
    }

    // The group is firing while any alert fires, whatever a hand-written body claims.
    n.status = n.count(Status::firing) > 0 ? Status::firing : Status::resolved;
    result.notification = std::move(n);
    return result;
}

} // namespace

ParseResult parse_notification(std::string_view body)
{
    ParseResult r = parse(body);
    // The error quotes input (label names, jansson's "near '...'" with cut characters): one
    // line of valid UTF-8, since it goes into a JSON reply and a log line.
    r.error = plain_line(r.error, 1024);
    return r;
}

} // namespace dingtalk
