// The JSON body DingTalk's robot API takes for a markdown message, written byte for byte as
// jansson would write it, and the size of a string inside it.
#pragma once

#include "mention.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// DingTalk refuses request bodies over 20000 bytes (errcode 460101). We stay a little below so
// that a different count on their side (headers, re-encoding) still passes.
constexpr std::size_t kMaxRequestBytes = 19500;

// {"msgtype":"markdown","markdown":{"title":...,"text":...},"at":{...}}. Every string in it
// must be valid UTF-8 (values are sanitized when rendered), so that this is valid JSON.
std::string request_body(const std::string &title, const std::string &text, const Mentions &at);

// One button of an actionCard message: its title and the URL it opens.
struct CardButton {
    std::string title;
    std::string url;
};

// {"msgtype":"actionCard","actionCard":{"title":...,"text":...,"btnOrientation":"0"|"1",
// "btns":[{"title":...,"actionURL":...},...]}} (dingtalk_message_type actioncard, issue #25;
// used by the renderer next). No "at": DingTalk documents mentions for text and markdown only.
// side_by_side: "1", else "0" (stacked). No buttons: a card without "btns".
std::string card_request_body(const std::string &title, const std::string &text,
                              const std::vector<CardButton> &buttons, bool side_by_side);

// Bytes the string takes inside a JSON string literal as jansson writes it.
std::size_t json_escaped_size(std::string_view s);

} // namespace dingtalk
