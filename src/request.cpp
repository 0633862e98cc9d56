#include "request.hpp"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>

namespace dingtalk
{

namespace
{

// Bytes each byte takes inside a JSON string literal beyond its own, as jansson writes it: 1 for
// the two-character escapes, 5 for the other controls (\u00XX), 0 for every other byte.
constexpr std::array<unsigned char, 256> kJsonExtra = [] {
    std::array<unsigned char, 256> extra{};
    for (std::size_t c = 0; c < 0x20; ++c) {
        extra[c] = 5;
    }
    for (const unsigned char c : {'"', '\\', '\b', '\f', '\n', '\r', '\t'}) {
        extra[c] = 1;
    }
    return extra;
}();

// The bytes of s[i, i + 8) that may need an escape in JSON, as the high bit of each byte of the
// result (byte k of s in bits 8k to 8k + 7): every control, '"' and '\\', and runs of ' ', '#'
// or ']' just above one of them (the zero-byte test of Bit Twiddling Hacks, against each: a
// borrow out of a byte that matched can mark the bytes above it, never hide one).
std::uint64_t escape_marks(std::string_view s, std::size_t i)
{
    constexpr std::uint64_t ones = 0x0101010101010101, highs = 0x8080808080808080;
    std::uint64_t word;
    std::memcpy(&word, s.data() + i, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    word = __builtin_bswap64(word);
#endif
    const auto below = [&](std::uint64_t w, std::uint64_t c) {
        return (w - ones * c) & ~w & highs;
    };
    return below(word, 0x20) | below(word ^ (ones * '"'), 1) | below(word ^ (ones * '\\'), 1);
}

// Calls f(k, c) for each byte c = s[k] that needs an escape in JSON, in order: eight bytes at a
// time, and within those only at the bytes escape_marks points to.
template <class F> void for_each_json_escape(std::string_view s, F f)
{
    std::size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        for (std::uint64_t m = escape_marks(s, i); m != 0; m &= m - 1) {
            const std::size_t k = i + static_cast<std::size_t>(__builtin_ctzll(m)) / 8;
            const unsigned char c = static_cast<unsigned char>(s[k]);
            if (kJsonExtra[c] != 0) {
                f(k, c);
            }
        }
    }
    for (; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (kJsonExtra[c] != 0) {
            f(i, c);
        }
    }
}

// The escape of a byte that kJsonExtra says needs one, written at p; returns the end.
char *write_json_escape(char *p, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    *p++ = '\\';
    switch (c) {
    case '\n':
        *p++ = 'n';
        break;
    case '\t':
        *p++ = 't';
        break;
    case '\r':
        *p++ = 'r';
        break;
    case '\b':
        *p++ = 'b';
        break;
    case '\f':
        *p++ = 'f';
        break;
    case '"':
    case '\\':
        *p++ = static_cast<char>(c);
        break;
    default:
        *p++ = 'u';
        *p++ = '0';
        *p++ = '0';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 0xF];
    }
    return p;
}

// The request body is written directly rather than through jansson: it is on every delivery's
// path, and jansson's dump (UTF-8 decoding per character) was a third of the rendering time.
// Sized first, then written in place, runs of plain bytes copied at once.
void append_json_string(std::string &out, std::string_view s)
{
    const std::size_t at = out.size();
    out.resize(at + json_escaped_size(s) + 2);
    char *p = &out[at];
    *p++ = '"';
    std::size_t run = 0;
    for_each_json_escape(s, [&](std::size_t k, unsigned char c) {
        p = write_json_escape(std::copy(s.data() + run, s.data() + k, p), c);
        run = k + 1;
    });
    p = std::copy(s.data() + run, s.data() + s.size(), p);
    *p = '"';
}

void append_json_array(std::string &out, const std::vector<std::string> &v)
{
    out += '[';
    for (std::size_t i = 0; i < v.size(); ++i) {
        if (i > 0) {
            out += ',';
        }
        append_json_string(out, v[i]);
    }
    out += ']';
}

} // namespace

std::size_t json_escaped_size(std::string_view s)
{
    std::size_t n = s.size();
    for_each_json_escape(s, [&](std::size_t, unsigned char c) { n += kJsonExtra[c]; });
    return n;
}

std::string request_body(const std::string &title, const std::string &text, const Mentions &at)
{
    std::string out;
    out.reserve(64 + title.size() + text.size() + text.size() / 8);
    out += R"({"msgtype":"markdown","markdown":{"title":)";
    append_json_string(out, title);
    out += R"(,"text":)";
    append_json_string(out, text);
    out += '}';
    if (!at.empty()) {
        out += R"(,"at":{"atMobiles":)";
        append_json_array(out, at.mobiles);
        out += R"(,"atUserIds":)";
        append_json_array(out, at.user_ids);
        out += at.all ? R"(,"isAtAll":true})" : R"(,"isAtAll":false})";
    }
    out += '}';
    return out;
}

std::string card_request_body(const std::string &title, const std::string &text,
                              const std::vector<CardButton> &buttons, bool side_by_side)
{
    std::string out;
    out.reserve(96 + title.size() + text.size() + text.size() / 8 + buttons.size() * 256);
    out += R"({"msgtype":"actionCard","actionCard":{"title":)";
    append_json_string(out, title);
    out += R"(,"text":)";
    append_json_string(out, text);
    out += side_by_side ? R"(,"btnOrientation":"1")" : R"(,"btnOrientation":"0")";
    for (std::size_t i = 0; i < buttons.size(); ++i) {
        out += i == 0 ? R"(,"btns":[{"title":)" : R"(,{"title":)";
        append_json_string(out, buttons[i].title);
        out += R"(,"actionURL":)";
        append_json_string(out, buttons[i].url);
        out += '}';
    }
    out += buttons.empty() ? "}}" : "]}}";
    return out;
}

} // namespace dingtalk
