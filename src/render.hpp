// Notification -> one DingTalk markdown message that always fits DingTalk's size limit.
#pragma once

#include "alert.hpp"
#include "zone.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// DingTalk refuses request bodies over 20000 bytes (errcode 460101). We stay a little below so
// that a different count on their side (headers, re-encoding) still passes.
constexpr std::size_t kMaxRequestBytes = 19500;

struct Mentions {
    std::vector<std::string> mobiles;
    std::vector<std::string> user_ids;
    bool all = false;

    bool empty() const { return mobiles.empty() && user_ids.empty() && !all; }
};

struct RenderOptions {
    const Zone *zone = nullptr; // required
    Mentions at;
    std::size_t max_request_bytes = kMaxRequestBytes;
};

struct Message {
    std::string title;
    std::string text;
    std::string request_body; // the JSON POSTed to DingTalk, <= max_request_bytes
    std::size_t shown = 0;    // alerts in the text
    std::size_t omitted = 0; // alerts left out to fit (Alertmanager's truncatedAlerts not included)
};

Message render_message(const Notification &n, const RenderOptions &opt);

// Markdown-safe text for one value: control characters and line breaks become spaces, markdown
// and HTML specials are escaped, and the result is cut at a UTF-8 boundary to max_bytes.
std::string escape_markdown(std::string_view in, std::size_t max_bytes);

// A link target DingTalk can render, or "" when the URL is not http(s) or too long.
std::string safe_link_url(std::string_view url);

// Bytes the string takes inside a JSON string literal as jansson writes it.
std::size_t json_escaped_size(std::string_view s);

} // namespace dingtalk
