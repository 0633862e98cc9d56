// What the action location's POST does (issue #25), without nginx: the form read, the silence
// made in Alertmanager (unless one with the same matchers is there already), and the page that
// says what was done. The handler (next) verifies the link and the form token first, then runs
// silence_from_link() in a pool thread and answers its page.
#pragma once

#include "action.hpp"
#include "page.hpp"
#include "silence.hpp"

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

enum class ActionResult {
    created, // a new silence
    already, // one with the same matchers was active or pending: nothing changed
    failed,  // Alertmanager refused or could not be asked: nothing changed
};

struct ActionOutcome {
    ActionResult result = ActionResult::failed;
    std::string silence_id; // created or already: the silence (an "until resolved" one is kept)
    std::string error;      // failed: why, for the log
    ResultPage page;
};

// Silences the alert the (verified) link names for its duration from `now`, created by
// "DingTalk: <name>".
ActionOutcome silence_from_link(const AlertmanagerApi &api, const ActionLink &link,
                                const ActionForm &form, std::int64_t now);

// For the metric's label and the log: created, already, failed.
const char *to_string(ActionResult r);

} // namespace dingtalk
