// Folding (dingtalk_fold): notifications for one robot that wait for a rate-limit slot go out
// together when one frees, as one message with a section each, instead of one message each
// over minutes (DingTalk takes 20 a minute per robot; its documentation says to summarize).
#pragma once

#include "render.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace dingtalk
{

// A notification's part of a folded message: the title its own message would have, what that
// message shows under its heading, and whom it mentions.
struct Section {
    std::string title; // plain text, one line
    std::string text;  // markdown
    bool firing = false;
    Mentions at;
};

// The section of a notification that went out as one message m (rendered with opt): its
// message's text without the heading and the closing lines. Nothing when it is not the
// notification's only message (it was cut into pages, or its first pages went before): such a
// notification goes alone.
std::optional<Section> section_of(const Notification &n, const RenderOptions &opt, const Message &m,
                                  std::size_t messages);

// One message of the first sections (in the order given: the caller puts firing first) that fit
// together under DingTalk's limit: a heading that says how many notifications it holds, each
// section under its own title, the mentions of them all, the keyword once. `taken` is how many
// went in: 0 when not even the first fits so (it then goes as its own message).
Message render_fold(const std::vector<Section> &sections, const RenderOptions &opt,
                    std::size_t &taken);

// Sections a folded message holds at most (each is a few hundred bytes at least).
constexpr std::size_t kMaxFolded = 64;

} // namespace dingtalk
