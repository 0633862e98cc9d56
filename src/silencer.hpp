// What the action location's POST does (issue #25), without nginx: the form read, the silence
// made in Alertmanager (unless one with the same matchers is there already), and the page that
// says what was done. The handler verifies the link and the form token first, then runs
// silence_from_link() in a pool thread and answers its page.
#pragma once

#include "action.hpp"
#include "page.hpp"
#include "silence.hpp"
#include "timezone.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace dingtalk
{

// A POST body of the confirmation page's form is at most this long; a longer one is refused.
constexpr std::size_t kMaxActionForm = 4096;

struct ActionForm {
    std::string link;    // "l": the link's token
    std::string token;   // "t": the form token
    std::string name;    // typed, at most kMaxNameBytes, one line
    std::string comment; // typed, at most kMaxCommentBytes, one line (line breaks as spaces)
};

// An application/x-www-form-urlencoded body: the four fields (others ignored, none twice), every
// value valid UTF-8 without control characters. False and why otherwise.
bool parse_action_form(std::string_view body, ActionForm &form, std::string &error);

// The request's Content-Type is application/x-www-form-urlencoded (parameters allowed).
bool is_form_type(std::string_view content_type);

// Why a POST is refused as cross-site, or nullptr when it is not. Refused: an Origin that is
// not "null" and whose host[:port] is not `host` (the request's Host: behind a proxy that ends
// TLS the scheme differs, the host does not), or a Sec-Fetch-Site other than same-origin or
// none. "Origin: null" passes: the pages are served with Referrer-Policy no-referrer, under
// which browsers send it with the page's own form; Sec-Fetch-Site and the form token judge it.
// Empty views stand for headers that are absent.
const char *cross_site(std::string_view origin, std::string_view fetch_site, std::string_view host);

// In this order in metrics.hpp's action_label() (kActionResults).
enum class ActionResult {
    created, // a new silence
    already, // one with the same matchers was active or pending: nothing changed
    failed,  // Alertmanager refused or could not be asked (or the pool was full): nothing changed
    refused, // the POST itself was refused (link, form token, origin, form): Alertmanager not asked
};

struct ActionOutcome {
    ActionResult result = ActionResult::failed;
    std::string silence_id; // created or already: the silence
    // The silence is an "until resolved" one (made by this link, or found made by such a link
    // before): the action location keeps it, to expire it once the alert resolves.
    bool until_resolved = false;
    std::string error; // failed: why, for the log
    ResultPage page;
};

// Silences the alert the (verified) link names for its duration from `now`, created by
// "DingTalk: <name>". The page shows times in `zone` (the location's dingtalk_timezone).
ActionOutcome silence_from_link(const AlertmanagerApi &api, const ActionLink &link,
                                const ActionForm &form, std::int64_t now, const TimeZone &zone);

// A time as the pages show it: in the location's dingtalk_timezone ("2026-11-24 00:04:05 +08:00").
std::string page_time(const TimeZone &zone, std::int64_t unix_seconds);

// The silence was made by an "until resolved" link (its comment says so).
bool made_until_resolved(const Silence &s);

// For the metric's label and the log: created, already, failed, refused.
const char *to_string(ActionResult r);

} // namespace dingtalk
