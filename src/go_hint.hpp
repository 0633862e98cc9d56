// Go template syntax in a mustache template ({{ .Labels.alertname }}, {{ if eq .Status "firing" }},
// {{ range .Alerts }}, {{ end }}): what a Go bridge template's author writes by habit, recognised
// when the template is parsed, with what to write instead (docs/go-templates.md has the table).
#pragma once

#include <string>

namespace dingtalk
{

// What to write instead of the Go action `tag` (a tag's text without its braces, as written), as
// "Go template syntax: ... (write ...)"; "" when it does not look like Go's.
std::string go_hint(const std::string &tag);

// A Go field (.Labels.x, .StartsAt, $.CommonLabels.x, .Alerts.Firing, .Labels.SortedPairs) as
// our name (labels.x, starts_at, common_labels.x, firing, label_list); "" when it is none we
// know. The table the hints and the converter (go_convert.hpp) share.
std::string go_field(std::string f);

} // namespace dingtalk
