// A prometheus-webhook-dingtalk (Go bridge) template converted into this module's template
// language: `dingtalk-render --from-go-template FILE.tmpl` (docs/go-templates.md). The bridge's
// message is its "ding.link.content" template (its title "ding.link.title"); each `define` it
// uses becomes a block, each construct the language has no way to say is named with its line.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dingtalk
{

// One Go template file, as the bridge loads them: in order, a later `define` replacing an
// earlier one of the same name.
struct GoFile {
    std::string name; // for the problems' "FILE line N"
    std::string text;
};

struct GoConversion {
    std::string text;                    // the template, blocks and the directives' block first
    std::vector<std::string> directives; // the nginx directives it needs (also in `text`)
    std::vector<std::string> problems;   // "FILE line N: `action`: why", one a construct left out
};

constexpr std::size_t kMaxGoTemplateBytes = 1 << 20; // all the files together

GoConversion convert_go_template(const std::vector<GoFile> &files);

} // namespace dingtalk
