// Mustache templates for the message text and title (kainjow::mustache, header-only), with what
// the Go bridge's users do with Go templates and sprig: per-severity style, every value in three
// forms (escaped for text, URL-encoded for links, raw), times in several forms and Go layouts,
// durations, any value as a condition, counts compared with a number, blocks defined once in
// the file ({{<x}}...{{/x}}, used as {{>x}}), and functions as lambdas, some with arguments
// (template_call.hpp).
//
// Text values are safe for DingTalk's markdown (escaped and cut, as the built-in message shows
// them), title values are plain text; {{x}} and {{{x}}} print the same. "nginx -t" rejects a
// template that does not parse, is not UTF-8, names something that does not exist (Go template
// syntax with what to write instead), has a bad argument, or uses a partial that is not one of
// its blocks or a delimiter change (its own tags are checked, not its text). A line that holds
// only a section, inverted section, closing or comment tag (or a block's definition or use)
// vanishes with its line, as the mustache spec says. The names are listed in docs/messages.md
// ("Names") and in template_names().
#pragma once

#include "alert.hpp"
#include "mention.hpp"
#include "view.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace dingtalk
{

// What one render sees: the notification, the alerts shown (firing first) and how many are
// not, the mentions, and how times and styles look.
struct TemplateInput {
    const Notification *n = nullptr;
    std::vector<const AlertView *> shown;
    std::size_t not_shown = 0; // alerts of the body not shown (past the cap or left out to fit)
    const Mentions *at = nullptr;
    const TimeZone *timezone = nullptr;
    const Styles *styles = nullptr;
    TimePoint now;             // for the age of firing alerts
    bool silence_links = true; // dingtalk_silence_link: off empties silence_url
    std::string part;          // " (2/3)" in one of several messages, else ""
    bool last_part = true;     // only the last of several says what is not shown
    bool buttons = false;      // an actionCard: its one firing alert's silence_links are buttons
};

// Watches a render as its text comes out, and may stop it: render_messages tries several runs of
// alerts for each message, and a run too long is known before all of it is rendered. What it is
// told also says how far the render so far is the same as one of fewer alerts, or of another
// message of the same notification that starts at the same alert and has the same part label
// and mentions: the same until it reaches an alert the other does not show, or looks up a value
// that depends on how many alerts a message shows or whether it is the last (shown, omitted,
// more, has_more, more_count, truncated, truncated_alerts, has_buttons).
class RenderWatch
{
public:
    virtual ~RenderWatch() = default;
    // The next piece of the text (in order, a line or more at a time); false stops the render.
    virtual bool output(const std::string &piece) = 0;
    // What comes next depends on alert i of TemplateInput::shown (told once for each, in order:
    // the render reached it, or asked whether a list that starts with it is empty).
    virtual void alert(std::size_t i) = 0;
    // What comes next depends on the number of alerts shown, or on whether it is the last.
    virtual void varies() = 0;
};

// What renders of one notification with one template keep between them: the notification's
// data, and each alert's, built the first time a render shows it (by its AlertView, whose address
// must not change meanwhile). For one notification, template and settings.
class TemplateCache
{
public:
    TemplateCache();
    ~TemplateCache();
    TemplateCache(TemplateCache &&) noexcept;
    TemplateCache &operator=(TemplateCache &&) noexcept;

    struct Impl; // template.cpp's

private:
    friend class Template;
    std::unique_ptr<Impl> impl_;
};

struct TemplateCalls; // template.cpp's

class Template
{
public:
    enum class Kind { text, title };

    // Parses and checks a template. On failure returns null and sets error to
    // "line N: what is wrong".
    static std::shared_ptr<const Template> parse(std::string source, Kind kind, std::string &error);

    // Thread-safe.
    std::string render(const TemplateInput &in) const;
    // The same, with what earlier renders of the same notification built (cache: one per thread);
    // nothing when watch stopped it.
    std::optional<std::string> render(const TemplateInput &in, TemplateCache &cache,
                                      RenderWatch *watch = nullptr) const;

    // Whether what it renders can change with the alerts a message shows or whether it is the
    // last (it names a list of alerts, or shown, omitted, more...).
    bool varies_by_page() const;

    // The names of labels and annotations the template asks for that no alert (or group map)
    // of this notification has: a typo renders as nothing (dingtalk-render --strict).
    std::vector<std::string> unset_names(const Notification &n) const;

private:
    Template(std::string source, Kind kind, std::set<std::string> used, std::set<std::string> keys,
             std::shared_ptr<const TemplateCalls> calls);

    std::string source_; // after standalone lines are removed
    Kind kind_;
    std::set<std::string> used_;                 // the names the template uses (first segments)
    std::set<std::string> map_keys_;             // "labels.instance", ... as written
    std::shared_ptr<const TemplateCalls> calls_; // label_is.x.y, {{#trunc 20}} ... parsed
    std::uint64_t id_;                           // identifies this template in each thread's cache
};

// The names a template may use (first segment of a dotted name).
const std::vector<std::string> &template_names();

} // namespace dingtalk
