// Text as a message shows it: one value markdown-safe, or one plain line, always valid UTF-8.
// The lowest room of the core: it knows nothing of alerts or messages.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace dingtalk
{

// What a value becomes in a message: escape_markdown for text, plain_line for titles.
using Escape = std::string (*)(std::string_view, std::size_t);

// Markdown-safe text for one value: control characters and line breaks become spaces, markdown
// and HTML specials are escaped, and the result is cut at a UTF-8 boundary to max_bytes.
std::string escape_markdown(std::string_view in, std::size_t max_bytes);

// Length of the well-formed UTF-8 character at s[i] (its code point in cp), or 0 when the bytes
// there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i, char32_t &cp);

// One line of plain text (no escaping), cut at a UTF-8 boundary to max_bytes. Invalid UTF-8
// becomes U+FFFD, so the result is always safe to put in JSON.
std::string plain_line(std::string_view in, std::size_t max_bytes);

} // namespace dingtalk
