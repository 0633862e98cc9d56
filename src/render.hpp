// Notification -> one DingTalk markdown message that always fits DingTalk's size limit, from
// the built-in layout or a mustache template.
#pragma once

#include "alert.hpp"
#include "mention.hpp"
#include "request.hpp"
#include "settings.hpp"

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// What one render takes: the location's settings, and what only this render knows.
struct RenderOptions {
    const Settings *settings = nullptr; // required, with a time zone
    Mentions at;                        // whom the first message mentions
    TimePoint now{};                    // for the age of firing alerts; unset: the clock's now
    std::size_t max_request_bytes = kMaxRequestBytes;
    // A notification sent in part before: its alerts DingTalk already posted (by position in
    // n.alerts; empty: none), left out, and how many of its messages DingTalk took, which the
    // part numbers go on from (and take from dingtalk_max_messages).
    std::vector<bool> posted;
    std::size_t messages_before = 0;
};

struct Message {
    std::string title;
    std::string text;
    std::string body; // the text before its closing lines (mentions, keyword); one message only
    std::string request_body; // the JSON POSTed to DingTalk, <= max_request_bytes
    std::size_t shown = 0;    // alerts in the text
    std::size_t omitted = 0;  // alerts of the body not shown: past the cap, or left out to fit
                              // (Alertmanager's truncatedAlerts not included)
    std::vector<std::size_t> alerts; // positions in n.alerts it shows, or counts in "N more"
};

// dingtalk_message_type actioncard: a message that shows exactly one firing alert (resolved ones
// aside) and mentions nobody goes as DingTalk's actionCard, that alert's action links (and its
// runbook_url) as buttons opening in DingTalk's side panel on the desktop, and no action line in
// its text; every other message, and one whose alert has no link for a button, is markdown.
// Buttons side by side ("btnOrientation":"1") up to this many, else stacked.
constexpr std::size_t kSideBySideButtons = 3;

Message render_message(const Notification &n, const RenderOptions &opt);

// The text as a message ends it: the mentions of opt.at it does not name, then the robot's
// keyword when it lacks it.
std::string with_closing_lines(std::string text, const RenderOptions &opt);

// dingtalk_max_messages: a notification that does not fit in one message goes out as up to
// settings->max_messages (1 to kMaxMessages), each under the size limit, titled " (1/3)", "
// (2/3)"..., firing first, no alert split across two; the last ends with "N more" when even they
// are not enough. Only the first mentions anyone. One message when it fits, or max_messages is 1.
constexpr std::size_t kMaxMessages = 10;
std::vector<Message> render_messages(const Notification &n, const RenderOptions &opt);

} // namespace dingtalk
