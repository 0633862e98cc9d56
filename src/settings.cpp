#include "settings.hpp"

#include "text.hpp"

namespace dingtalk
{

std::string check_keyword(std::string_view word)
{
    if (word.empty()) {
        return "empty: name one of the robot's keywords";
    }
    if (word.size() > 64) {
        return "longer than 64 bytes";
    }
    if (plain_line(word, 64) != word || word.front() == ' ' || word.back() == ' ') {
        return "a keyword is one line of UTF-8 text, without control characters or spaces at "
               "either end";
    }
    return "";
}

} // namespace dingtalk
