// Go's reference-time layouts ("2006-01-02 15:04:05 MST"), as Go's time.Format reads them: a
// layout is parsed once (at configuration time) into its elements and literal text, and formats
// a time in a zone's local time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

// A local time, with what a layout can print of its zone.
struct LocalTime {
    int year = 1970;
    unsigned month = 1, day = 1, hour = 0, minute = 0, second = 0;
    unsigned weekday = 4; // 0 Sunday
    unsigned yearday = 1; // 1 to 366
    std::uint32_t micros = 0;
    long offset = 0;  // seconds east of UTC
    std::string abbr; // "CST", "+08", "UTC"
};

class GoLayout
{
public:
    // Null and the reason when `layout` is not one: empty, over 64 bytes, a control character,
    // no element of the reference time at all, or strftime's or Java's way of writing one
    // (%Y, YYYY, HH, mm ...), which Go would print as it is.
    static std::shared_ptr<const GoLayout> parse(std::string_view layout, std::string &error);

    std::string format(const LocalTime &t) const;
    const std::string &text() const { return text_; }

    struct Chunk {
        int element;         // an element of the reference time, or -1: literal text
        std::string literal; // the text; a fraction's separator, and 9 when it drops zeros
        unsigned digits = 0; // a fraction's digits
    };

private:
    explicit GoLayout(std::string text, std::vector<Chunk> chunks)
        : text_(std::move(text)), chunks_(std::move(chunks))
    {
    }

    std::string text_;
    std::vector<Chunk> chunks_;
};

} // namespace dingtalk
