// Mustache templates for the message text and title (kainjow::mustache, header-only).
//
// Every value a template sees is already safe for DingTalk's markdown (escaped and cut, as the
// built-in message shows it), so {{x}} and {{{x}}} print the same. The names are listed in the
// README ("Templates") and in text_names()/title_names(); "nginx -t" rejects a template that
// does not parse or names something that does not exist.
#pragma once

#include "alert.hpp"
#include "view.hpp"

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace dingtalk
{

struct Mentions;

class Template
{
public:
    enum class Kind { text, title };

    // Parses and checks a template (valid UTF-8, known names). On failure returns null and sets
    // error to "line N: what is wrong".
    static std::shared_ptr<const Template> parse(std::string source, Kind kind, std::string &error);

    // The data for the text: the notification, the first `shown` alerts of `order` (firing
    // first), and what was left out. Thread-safe.
    std::string render_text(const Notification &n, const std::vector<const AlertView *> &shown,
                            std::size_t omitted, const Mentions &at) const;

    // The data for the title: the notification's top-level fields as plain text. Thread-safe.
    std::string render_title(const Notification &n, const Mentions &at) const;

private:
    Template(std::string source, std::set<std::string> used);
    std::string render(const void *data) const;

    std::string source_;
    std::set<std::string> used_; // the names the template uses (first segments)
    std::uint64_t id_;           // identifies this template in each thread's cache of parsed copies
};

// The names a template may use (first segment of a dotted name).
const std::vector<std::string> &text_names();
const std::vector<std::string> &title_names();

} // namespace dingtalk
