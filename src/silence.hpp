// Alertmanager's API v2 for silences (issue #25): create one, find the ones already made for the
// same matchers, expire one. Called from a pool thread (libcurl through sender.hpp, jansson);
// every call is bounded by the endpoint's timeouts and ends in a result with a clear error.
// Knows nothing of nginx.
#pragma once

#include "sender.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dingtalk
{

// Where Alertmanager is (dingtalk_alertmanager_url) and how to reach it. The URL is the base
// ("http://am:9093" or with a path prefix, no trailing '/'); the credential is never in it.
struct AlertmanagerApi {
    std::string url;
    std::string authorization;                      // the Authorization header's value, "" for none
    std::chrono::milliseconds timeout{5000};        // to connect and send
    std::chrono::milliseconds answer_timeout{5000}; // then to wait for the answer
    bool ssl_verify = true;
    std::shared_ptr<const std::string> ca_pem;
    std::string proxy;
};

// dingtalk_alertmanager_url: "" when url can be Alertmanager's base (http(s)://, ASCII, no
// query, fragment or user:password@: credentials go in a file), else why not.
std::string check_alertmanager_url(std::string_view url);

// The Authorization value of a credential file (dingtalk_alertmanager_bearer_file: one token;
// dingtalk_alertmanager_basic_file: one "user:password"), blank lines and # comments skipped.
// False and why ("line N: ...", never the credential) when the file is not that.
bool authorization_from_file(std::string_view text, bool basic, std::string &out,
                             std::string &error);

// The Authorization value for a bearer token or a "user:password".
std::string bearer_authorization(std::string_view token);
std::string basic_authorization(std::string_view user_password);

using Matchers = std::vector<std::pair<std::string, std::string>>; // name = value, each

struct NewSilence {
    Matchers matchers;
    std::int64_t starts_at = 0; // unix seconds
    std::int64_t ends_at = 0;
    std::string created_by; // "DingTalk: <typed name>"
    std::string comment;
};

struct Silence {
    std::string id;
    std::string state; // active, pending, expired
    std::string created_by;
    std::string comment;
    std::string ends_at; // as Alertmanager wrote it (RFC 3339)
    // get_silence: its matchers as filters write them (name="v", name=~"v", name!="v" ...)
    std::vector<std::string> filters;
};

struct SilenceResult {
    bool ok = false;
    std::string error;             // when !ok: what happened, for the page and the log
    bool unreachable = false;      // nothing was answered (down, timeout): worth a retry later
    bool too_large = false;        // the answer was over the sender's 64 KiB cap: not read
    std::string id;                // create_silence: the new silence's id
    std::vector<Silence> silences; // find_silences: active or pending ones, exact matchers
                                   // get_silence: the one asked for; none when Alertmanager
                                   // has no such silence (404)
    bool firing = false;           // alert_firing: the alert is among the active ones
    std::int64_t started = 0;      // alertmanager_started: unix seconds
};

SilenceResult create_silence(const AlertmanagerApi &api, const NewSilence &s);

// The active and pending silences whose matchers are exactly `matchers` (all equality, none
// more, none less): a link used twice finds the silence it made the first time.
SilenceResult find_silences(const AlertmanagerApi &api, const Matchers &matchers);

// Expires a silence; one that has expired already counts as done.
SilenceResult expire_silence(const AlertmanagerApi &api, std::string_view id);

// One silence by id (GET /api/v2/silence/{id}): its state and matchers; no silence in the
// result (and ok) when Alertmanager knows none by that id.
SilenceResult get_silence(const AlertmanagerApi &api, std::string_view id);

// Whether an alert that `filters` match still fires (GET /api/v2/alerts, silenced and
// inhibited ones included: Alertmanager lists an alert until it resolves). Sets result.firing.
SilenceResult alert_firing(const AlertmanagerApi &api, const std::vector<std::string> &filters);

// When Alertmanager started (GET /api/v2/status, its "uptime"): after a start it lists a
// firing alert again only once Prometheus resends it. Sets result.started.
SilenceResult alertmanager_started(const AlertmanagerApi &api);

// RFC 3339 in UTC, to the second: what the API's startsAt and endsAt take.
std::string rfc3339_utc(std::int64_t unix_seconds);

// A matcher as Alertmanager's filter parameter reads it: name="value", quoted and escaped.
std::string filter_matcher(std::string_view name, std::string_view value);
// ... with its operator: "=", "!=", "=~" or "!~".
std::string filter_matcher(std::string_view name, std::string_view op, std::string_view value);

} // namespace dingtalk
