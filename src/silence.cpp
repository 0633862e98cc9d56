#include "silence.hpp"

#include "alert.hpp"
#include "sign.hpp"

#include <jansson.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>

namespace dingtalk
{

namespace
{

struct JsonDeleter {
    void operator()(json_t *j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonDeleter>;

struct FreeDeleter {
    void operator()(char *p) const { std::free(p); }
};

constexpr std::size_t kShownBody = 200; // of an error answer, in the error

// Printable ASCII only, at most kShownBody bytes: an answer's text is safe in a log line.
std::string shown(std::string_view body)
{
    std::string out;
    for (const char c : body.substr(0, kShownBody)) {
        out.push_back(c >= 0x20 && c < 0x7F ? c : ' ');
    }
    while (!out.empty() && out.back() == ' ') {
        out.pop_back();
    }
    return out;
}

HttpRequest request_to(const AlertmanagerApi &api, std::string path, HttpMethod method)
{
    HttpRequest req;
    std::string_view base = api.url;
    while (!base.empty() && base.back() == '/') {
        base.remove_suffix(1); // "http://am:9093/" + "/api/v2/..." would be a path of its own
    }
    req.url = std::string(base) + path;
    req.method = method;
    req.authorization = api.authorization;
    req.timeout = api.timeout;
    req.answer_timeout = api.answer_timeout;
    req.ssl_verify = api.ssl_verify;
    req.ca_pem = api.ca_pem;
    req.proxy = api.proxy;
    return req;
}

// The reply as JSON when it is a 200 with a JSON body; otherwise result says why.
Json answer(const HttpReply &reply, SilenceResult &result)
{
    if (reply.too_large) {
        result.too_large = true;
        result.error = "Alertmanager's answer is larger than the 64 KiB this module reads";
        return nullptr;
    }
    if (reply.transport != Transport::ok) {
        result.unreachable = true;
        result.error = std::string("Alertmanager could not be reached (") +
                       to_string(reply.transport) + "): " + reply.error;
        return nullptr;
    }
    if (reply.status != 200) {
        result.error = "Alertmanager answered " + std::to_string(reply.status);
        if (!shown(reply.body).empty()) {
            result.error += ": " + shown(reply.body);
        }
        return nullptr;
    }
    json_error_t error;
    Json json(json_loadb(reply.body.data(), reply.body.size(), JSON_DECODE_ANY, &error));
    if (!json) {
        result.error = "Alertmanager's answer is not JSON: " + shown(reply.body);
    }
    return json;
}

// The matchers as the API takes them, or null when one cannot be written (not UTF-8): a
// silence with a matcher left out would silence more than the link says, so none is made.
json_t *matchers_json(const Matchers &matchers)
{
    Json list(json_array());
    if (!list) {
        return nullptr;
    }
    for (const auto &[name, value] : matchers) {
        json_t *m = json_pack("{s:s%, s:s%, s:b, s:b}", "name", name.data(), name.size(), "value",
                              value.data(), value.size(), "isRegex", 0, "isEqual", 1);
        if (json_array_append_new(list.get(), m) != 0) {
            return nullptr; // json_array_append_new took m, or m was null
        }
    }
    return list.release();
}

std::string string_of(json_t *object, const char *key)
{
    const char *s = json_string_value(json_object_get(object, key));
    return s != nullptr ? s : "";
}

// The silence's matchers are exactly `matchers`: equality ones, the same set.
bool same_matchers(json_t *silence, const Matchers &matchers)
{
    json_t *list = json_object_get(silence, "matchers");
    if (!json_is_array(list) || json_array_size(list) != matchers.size()) {
        return false;
    }
    Matchers theirs;
    std::size_t i = 0;
    json_t *m = nullptr;
    json_array_foreach(list, i, m)
    {
        json_t *equal = json_object_get(m, "isEqual"); // absent before 0.22: equal
        if (json_is_true(json_object_get(m, "isRegex")) || json_is_false(equal)) {
            return false;
        }
        theirs.emplace_back(string_of(m, "name"), string_of(m, "value"));
    }
    Matchers ours = matchers;
    std::sort(theirs.begin(), theirs.end());
    std::sort(ours.begin(), ours.end());
    return theirs == ours;
}

bool valid_silence_id(std::string_view id)
{
    return !id.empty() && id.size() <= 64 && std::all_of(id.begin(), id.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c == '-';
    });
}

} // namespace

std::string check_alertmanager_url(std::string_view url)
{
    const std::size_t host_at = url.rfind("https://", 0) == 0  ? 8
                                : url.rfind("http://", 0) == 0 ? 7
                                                               : 0;
    if (host_at == 0 || url.size() == host_at) {
        return "must be an http:// or https:// URL";
    }
    for (const char c : url) {
        const auto b = static_cast<unsigned char>(c);
        if (b <= 0x20 || b >= 0x7F || c == '#' || c == '?') {
            return "must be a URL without spaces, a query, a fragment or non-ASCII bytes";
        }
    }
    const std::size_t path_at = std::min(url.find('/', host_at), url.size());
    if (url.substr(host_at, path_at - host_at).find('@') != std::string_view::npos) {
        return "must not hold credentials: use dingtalk_alertmanager_bearer_file or _basic_file";
    }
    return "";
}

bool authorization_from_file(std::string_view text, bool basic, std::string &out,
                             std::string &error)
{
    std::size_t number = 0, found = 0;
    while (!text.empty()) {
        ++number;
        const std::size_t end = std::min(text.find('\n'), text.size());
        std::string_view line = text.substr(0, end);
        text.remove_prefix(std::min(end + 1, text.size()));
        while (!line.empty() &&
               (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
            line.remove_suffix(1);
        }
        if (line.empty() || line.front() == '#') {
            continue;
        }
        const bool printable =
            std::all_of(line.begin(), line.end(), [](char c) { return c > 0x20 && c < 0x7F; });
        const char *what = ++found > 1  ? "more than one credential"
                           : !printable ? "spaces or non-ASCII bytes"
                           : basic && line.find(':') == std::string_view::npos
                               ? "expected user:password"
                               : nullptr;
        if (what != nullptr) {
            error = "line " + std::to_string(number) + ": " + what;
            return false;
        }
        out = basic ? basic_authorization(line) : bearer_authorization(line);
    }
    if (found == 0) {
        error = "no credential in the file";
    }
    return found == 1;
}

std::string bearer_authorization(std::string_view token)
{
    return "Bearer " + std::string(token);
}

std::string basic_authorization(std::string_view user_password)
{
    return "Basic " + base64(user_password);
}

std::string rfc3339_utc(std::int64_t unix_seconds)
{
    const std::time_t t = static_cast<std::time_t>(unix_seconds);
    std::tm tm{};
    char out[32] = {0};
    if (gmtime_r(&t, &tm) == nullptr ||
        std::strftime(out, sizeof out, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        return "";
    }
    return out;
}

std::string filter_matcher(std::string_view name, std::string_view value)
{
    return filter_matcher(name, "=", value);
}

std::string filter_matcher(std::string_view name, std::string_view op, std::string_view value)
{
    std::string out(name);
    out.append(op).append("\"");
    for (const char c : value) {
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(c);
        } else if (c == '\n') {
            out.append("\\n");
        } else {
            out.push_back(c);
        }
    }
    out.push_back('"');
    return out;
}

SilenceResult create_silence(const AlertmanagerApi &api, const NewSilence &s)
{
    SilenceResult result;
    Json body(json_pack("{s:o, s:s, s:s, s:s%, s:s%}", "matchers", matchers_json(s.matchers),
                        "startsAt", rfc3339_utc(s.starts_at).c_str(), "endsAt",
                        rfc3339_utc(s.ends_at).c_str(), "createdBy", s.created_by.data(),
                        s.created_by.size(), "comment", s.comment.data(), s.comment.size()));
    const std::unique_ptr<char, FreeDeleter> text(body ? json_dumps(body.get(), JSON_COMPACT)
                                                       : nullptr);
    if (!text) {
        result.error = "the silence could not be written as JSON (not UTF-8?)";
        return result;
    }
    HttpRequest req = request_to(api, "/api/v2/silences", HttpMethod::post);
    req.body = text.get();
    const Json json = answer(http_post(req), result);
    if (json) {
        result.id = string_of(json.get(), "silenceID");
        result.ok = valid_silence_id(result.id);
        if (!result.ok) {
            result.error = "Alertmanager's answer has no silenceID";
        }
    }
    return result;
}

SilenceResult find_silences(const AlertmanagerApi &api, const Matchers &matchers)
{
    SilenceResult result;
    std::string query;
    for (const auto &[name, value] : matchers) {
        query.append(query.empty() ? "?filter=" : "&filter=");
        append_url_encoded(query, filter_matcher(name, value));
    }
    const Json json =
        answer(http_post(request_to(api, "/api/v2/silences" + query, HttpMethod::get)), result);
    if (!json) {
        return result;
    }
    if (!json_is_array(json.get())) {
        result.error = "Alertmanager's answer is not a list of silences";
        return result;
    }
    std::size_t i = 0;
    json_t *s = nullptr;
    json_array_foreach(json.get(), i, s)
    {
        const std::string state = string_of(json_object_get(s, "status"), "state");
        // an id that is no UUID-like id is no silence this module can name (in a log line)
        if ((state == "active" || state == "pending") && same_matchers(s, matchers) &&
            valid_silence_id(string_of(s, "id"))) {
            result.silences.push_back(Silence{string_of(s, "id"),
                                              state,
                                              string_of(s, "createdBy"),
                                              string_of(s, "comment"),
                                              string_of(s, "endsAt"),
                                              {}});
        }
    }
    result.ok = true;
    return result;
}

SilenceResult expire_silence(const AlertmanagerApi &api, std::string_view id)
{
    SilenceResult result;
    if (!valid_silence_id(id)) {
        result.error = "not a silence id";
        return result;
    }
    const HttpReply reply =
        http_post(request_to(api, "/api/v2/silence/" + std::string(id), HttpMethod::del));
    // Alertmanager 0.25 answers 500 "silence ... already expired" for one expired before.
    if (reply.transport == Transport::ok &&
        (reply.status == 200 || reply.body.find("already expired") != std::string::npos)) {
        result.ok = true;
        result.id = std::string(id);
        return result;
    }
    answer(reply, result); // not 200: says why
    return result;
}

SilenceResult get_silence(const AlertmanagerApi &api, std::string_view id)
{
    SilenceResult result;
    if (!valid_silence_id(id)) {
        result.error = "not a silence id";
        return result;
    }
    const HttpReply reply =
        http_post(request_to(api, "/api/v2/silence/" + std::string(id), HttpMethod::get));
    if (reply.transport == Transport::ok && reply.status == 404) {
        result.ok = true; // none by that id (deleted, or past the retention of expired ones)
        return result;
    }
    const Json json = answer(reply, result);
    if (!json) {
        return result;
    }
    json_t *list = json_object_get(json.get(), "matchers");
    if (!json_is_array(list) || json_array_size(list) == 0) {
        result.error = "Alertmanager's answer is not a silence";
        return result;
    }
    Silence s{string_of(json.get(), "id"),
              string_of(json_object_get(json.get(), "status"), "state"),
              string_of(json.get(), "createdBy"),
              string_of(json.get(), "comment"),
              string_of(json.get(), "endsAt"),
              {}};
    std::size_t i = 0;
    json_t *m = nullptr;
    json_array_foreach(list, i, m)
    {
        const bool regex = json_is_true(json_object_get(m, "isRegex"));
        const bool equal = !json_is_false(json_object_get(m, "isEqual")); // absent before 0.22
        s.filters.push_back(filter_matcher(string_of(m, "name"),
                                           regex ? (equal ? "=~" : "!~") : (equal ? "=" : "!="),
                                           string_of(m, "value")));
    }
    result.silences.push_back(std::move(s));
    result.ok = true;
    return result;
}

SilenceResult alertmanager_started(const AlertmanagerApi &api)
{
    SilenceResult result;
    const Json json = answer(http_post(request_to(api, "/api/v2/status", HttpMethod::get)), result);
    if (!json) {
        return result;
    }
    const auto t = parse_rfc3339(string_of(json.get(), "uptime"));
    if (!t) {
        result.error = "Alertmanager's status has no uptime";
        return result;
    }
    result.started =
        std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count();
    result.ok = true;
    return result;
}

SilenceResult alert_firing(const AlertmanagerApi &api, const std::vector<std::string> &filters)
{
    SilenceResult result;
    std::string query = "?active=true&silenced=true&inhibited=true&unprocessed=true";
    for (const std::string &f : filters) {
        query.append("&filter=");
        append_url_encoded(query, f);
    }
    const Json json =
        answer(http_post(request_to(api, "/api/v2/alerts" + query, HttpMethod::get)), result);
    if (!json) {
        return result;
    }
    if (!json_is_array(json.get())) {
        result.error = "Alertmanager's answer is not a list of alerts";
        return result;
    }
    result.firing = json_array_size(json.get()) > 0;
    result.ok = true;
    return result;
}

} // namespace dingtalk
