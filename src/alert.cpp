#include "alert.hpp"

#include "date_lib.hpp"
#include "view.hpp"

#include "json.hpp"

#include <algorithm>
#include <memory>

namespace dingtalk
{

namespace
{

// Collects the first error; every reader returns false once one is set.
class Reader
{
public:
    std::string error;

    bool fail(const std::string &path, const char *what)
    {
        if (error.empty()) {
            error = path + " " + what;
        }
        return false;
    }

    // A JSON null counts as absent: Go marshals an empty map or string that way in places.
    static bool absent(const json_t *v) { return v == nullptr || json_is_null(v); }

    bool string_field(const json_t *obj, const char *key, const std::string &path, std::string &out)
    {
        const json_t *v = json_object_get(obj, key);
        if (absent(v)) {
            return true;
        }
        if (!json_is_string(v)) {
            return fail(path + key, "must be a string");
        }
        out.assign(json_string_value(v), json_string_length(v));
        return true;
    }

    bool labels_field(const json_t *obj, const char *key, const std::string &path, Labels &out)
    {
        const json_t *v = json_object_get(obj, key);
        if (absent(v)) {
            return true;
        }
        if (!json_is_object(v)) {
            return fail(path + key, "must be an object of strings");
        }
        const char *name;
        json_t *value;
        json_object_foreach(const_cast<json_t *>(v), name, value)
        {
            if (!json_is_string(value)) {
                return fail(path + key + "." + name, "must be a string");
            }
            out.emplace(name, std::string(json_string_value(value), json_string_length(value)));
        }
        return true;
    }

    bool status_field(const json_t *obj, const std::string &path, std::optional<Status> &out)
    {
        std::string s;
        if (!string_field(obj, "status", path, s)) {
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
            return fail(path + "status", "must be \"firing\" or \"resolved\"");
        }
        return true;
    }

    bool time_field(const json_t *obj, const char *key, const std::string &path,
                    std::optional<TimePoint> &out)
    {
        std::string s;
        if (!string_field(obj, key, path, s)) {
            return false;
        }
        if (s.empty()) {
            return true;
        }
        auto t = parse_rfc3339(s);
        if (!t) {
            return fail(path + key, "is not an RFC 3339 time");
        }
        // Go's zero time.Time (year 1) means "not known": Alertmanager's endsAt while firing.
        if (*t > TimePoint(date::sys_days(date::year(2) / 1 / 1))) {
            out = t;
        }
        return true;
    }

    bool alert(const json_t *v, std::size_t index, std::optional<Status> group_status, Alert &out)
    {
        const std::string path = "alerts[" + std::to_string(index) + "].";
        if (!json_is_object(v)) {
            return fail(path.substr(0, path.size() - 1), "must be an object");
        }
        std::optional<Status> status;
        if (!status_field(v, path, status) || !labels_field(v, "labels", path, out.labels) ||
            !labels_field(v, "annotations", path, out.annotations) ||
            !time_field(v, "startsAt", path, out.starts_at) ||
            !time_field(v, "endsAt", path, out.ends_at) ||
            !string_field(v, "generatorURL", path, out.generator_url) ||
            !string_field(v, "fingerprint", path, out.fingerprint)) {
            return false;
        }
        out.status = status.value_or(group_status.value_or(Status::firing));
        return true;
    }
};

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

    json_error_t jerr;
    // NUL is allowed in values (\u0000 is valid JSON; Go writes it so): it prints as a space.
    JsonPtr root(
        json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr));
    if (!root) {
        result.error = "invalid JSON at line " + std::to_string(jerr.line) + " column " +
                       std::to_string(jerr.column) + ": " + jerr.text;
        return result;
    }
    if (!json_is_object(root.get())) {
        result.error = "body must be a JSON object (an Alertmanager webhook notification)";
        return result;
    }

    Reader rd;
    Notification n;
    const json_t *o = root.get();
    std::optional<Status> status;
    if (!rd.string_field(o, "version", "", n.version) ||
        !rd.string_field(o, "groupKey", "", n.group_key) || !rd.status_field(o, "", status) ||
        !rd.string_field(o, "receiver", "", n.receiver) ||
        !rd.labels_field(o, "groupLabels", "", n.group_labels) ||
        !rd.labels_field(o, "commonLabels", "", n.common_labels) ||
        !rd.labels_field(o, "commonAnnotations", "", n.common_annotations) ||
        !rd.string_field(o, "externalURL", "", n.external_url)) {
        result.error = rd.error;
        return result;
    }

    const json_t *truncated = json_object_get(o, "truncatedAlerts");
    if (!Reader::absent(truncated)) {
        if (!json_is_integer(truncated) || json_integer_value(truncated) < 0) {
            result.error = "truncatedAlerts must be a non-negative integer";
            return result;
        }
        // Alertmanager counts alerts here; anything near 2^63 is nonsense, keep sums safe
        n.truncated_alerts = std::min<json_int_t>(json_integer_value(truncated), 1000000000);
    }

    const json_t *alerts = json_object_get(o, "alerts");
    if (alerts == nullptr) {
        result.error = "no \"alerts\" array: not an Alertmanager webhook notification";
        return result;
    }
    if (!json_is_array(alerts)) {
        result.error = "alerts must be an array";
        return result;
    }
    if (json_array_size(alerts) == 0) {
        result.error = "alerts is empty: nothing to send";
        return result;
    }

    n.alerts.resize(json_array_size(alerts));
    for (std::size_t i = 0; i < n.alerts.size(); ++i) {
        if (!rd.alert(json_array_get(alerts, i), i, status, n.alerts[i])) {
            result.error = rd.error;
            return result;
        }
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
