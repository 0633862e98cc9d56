// Go template syntax in a mustache template ({{ .Labels.alertname }}, {{ if eq .Status "firing" }},
// {{ range .Alerts }}, {{ end }}): what a Go bridge template's author writes by habit, recognised
// when the template is parsed, with what to write instead (docs/go-templates.md has the table).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace dingtalk
{

// What to write instead of the Go action `tag` (a tag's text without its braces, as written), as
// "Go template syntax: ... (write ...)"; "" when it does not look like Go's.
std::string go_hint(const std::string &tag);

// A Go field (.Labels.x, .StartsAt, $.CommonLabels.x, .Alerts.Firing, .Labels.SortedPairs) as
// our name (labels.x, starts_at, common_labels.x, firing, label_list); "" when it is none we
// know. The table the hints and the converter (go_convert.hpp) share.
std::string go_field(std::string f);

// A function Go bridge templates call around a value, by Go's or sprig's name: ours is a section
// around the value with the `args` arguments before it ({{#trunc 20}}...{{/trunc}}), the value
// being argument `value_at` (sprig's regexReplaceAll takes it second); "" (markdown, html): the
// value as it is, escaped already. The table the hints and the converter share.
struct GoFunction {
    const char *go, *ours;
    std::size_t args, value_at;
};

const std::vector<GoFunction> &go_functions();

} // namespace dingtalk
