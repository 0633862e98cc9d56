#include "text.hpp"

#include <array>

namespace dingtalk
{

namespace
{

const char *const kReplacement = "\xEF\xBF\xBD"; // U+FFFD

bool is_continuation(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

// Line breaks and controls of every kind, Unicode's too (NEL, C1 controls, LS, PS): in a value
// they become spaces, so no value can start a markdown line of its own. So do the invisible
// format characters that reorder or hide text (bidi embeddings, overrides and isolates, zero
// width spaces and joiners, marks, the BOM): a value cannot show other text than it holds.
bool is_break_or_control(char32_t cp)
{
    return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2060 && cp <= 0x2069) || cp == 0x061C || cp == 0x180E || cp == 0xFEFF ||
           (cp >= 0xE0000 && cp <= 0xE007F); // tag characters: text no one sees
}

// What a markdown or HTML special becomes in a value; nullptr for any other byte.
constexpr const char *markdown_escape(unsigned char c)
{
    switch (c) {
    case '\\':
        return "\\\\";
    case '`':
        return "\\`";
    case '*':
        return "\\*";
    case '_':
        return "\\_";
    case '[':
        return "\\[";
    case ']':
        return "\\]";
    case '~':
        return "\\~";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '&':
        return "&amp;";
    default:
        return nullptr;
    }
}

// Printable ASCII that is no special: the common case, looked up rather than switched on.
constexpr std::array<bool, 256> kMarkdownPlain = [] {
    std::array<bool, 256> plain{};
    for (std::size_t c = 0x20; c < 0x7F; ++c) {
        plain[c] = markdown_escape(static_cast<unsigned char>(c)) == nullptr;
    }
    return plain;
}();

} // namespace

std::size_t utf8_length(std::string_view s, std::size_t i, char32_t &cp)
{
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = byte(0);
    std::size_t len;
    char32_t min;
    if (c < 0x80) {
        cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (i + len > s.size()) {
        return 0;
    }
    for (std::size_t k = 1; k < len; ++k) {
        if (!is_continuation(byte(k))) {
            return 0;
        }
        cp = (cp << 6) | (byte(k) & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0; // overlong, out of range, or a surrogate
    }
    return len;
}

std::string plain_line(std::string_view in, std::size_t max_bytes)
{
    std::string out;
    for (std::size_t i = 0; i < in.size();) {
        char32_t cp = 0;
        const std::size_t len = utf8_length(in, i, cp);
        if (out.size() >= max_bytes) {
            out += "…";
            break;
        }
        if (len == 0) {
            out += kReplacement; // not UTF-8: shown as such, never passed on broken
            ++i;
            continue;
        }
        if (is_break_or_control(cp)) {
            if (!out.empty() && out.back() != ' ') {
                out += ' ';
            }
        } else {
            out.append(in.substr(i, len));
        }
        i += len;
    }
    return out;
}

std::string escape_markdown(std::string_view in, std::size_t max_bytes)
{
    std::string out;
    out.reserve(in.size() < max_bytes ? in.size() + 16 : max_bytes + 8);
    std::size_t run = 0; // start of bytes copied through unchanged, appended in one go
    auto flush = [&](std::size_t to) { out.append(in.data() + run, to - run); };
    for (std::size_t i = 0; i < in.size();) {
        // plain bytes stay in the run, as far as max_bytes lets it go
        const std::size_t room = max_bytes > out.size() ? max_bytes - out.size() : 0;
        const std::size_t stop = room >= in.size() - run ? in.size() : run + room;
        while (i < stop && kMarkdownPlain[static_cast<unsigned char>(in[i])]) {
            ++i;
        }
        if (i == in.size()) {
            break;
        }
        if (out.size() + (i - run) >= max_bytes) {
            flush(i);
            out += "…";
            return out;
        }
        const unsigned char c = static_cast<unsigned char>(in[i]);
        const char *special = markdown_escape(c);
        std::size_t len = 1;
        if (special == nullptr) {
            char32_t cp = 0;
            len = c < 0x80 ? 1 : utf8_length(in, i, cp);
            if (c < 0x80) {
                cp = c;
            }
            if (len == 0) {
                special = kReplacement; // not UTF-8: shown as such, never passed on broken
                len = 1;
            } else if (is_break_or_control(cp)) {
                special = (!out.empty() || i > run) && (i == run ? out.back() : in[i - 1]) != ' '
                              ? " "
                              : "";
            } else {
                i += len; // valid multi-byte character: part of the run
                continue;
            }
        }
        flush(i);
        out += special;
        i += len;
        run = i;
    }
    flush(in.size());
    return out;
}

} // namespace dingtalk
