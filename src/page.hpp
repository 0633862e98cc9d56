// The pages of the action location (issue #25): the confirmation a link's GET answers, and the
// result of its POST. One self-contained HTML document each: no script, no external asset, an
// inline style only, readable on a phone; every value escaped. Knows nothing of nginx.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dingtalk
{

// The headers every page goes with. The CSP allows nothing but the inline style and a form
// posted back to the same origin; no framing (clickjacking). The link's token is in the page's
// URL, so no Referer may carry it off, and no cache may keep the page.
constexpr std::string_view kPageSecurityPolicy =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'";
constexpr std::string_view kPageReferrerPolicy = "no-referrer";
constexpr std::string_view kPageCacheControl = "no-store";
constexpr std::string_view kPageContentType = "text/html; charset=utf-8";

// &, <, >, " and ' as entities; control characters but tab and newline dropped.
std::string html_escape(std::string_view s);

// "2 hours", "1 day", "90 minutes", "1 day 6 hours"
std::string duration_text(std::int64_t seconds);

using PageLabels = std::vector<std::pair<std::string, std::string>>;

struct ConfirmPage {
    PageLabels labels;      // the link's matchers: which alert
    std::string duration;   // duration_text(), or "until resolved (at most 7 days)"
    std::string ends;       // when the silence would end at the latest, as shown
    std::string link_token; // posted back with the form: the POST is bound to it
    std::string form_token; // form_token() of the link
};

// The form posts to the page's own URL: fields "l" (the link), "t" (the form token), "name"
// and "comment" (both optional, typed by the person, bounded by maxlength and checked again
// when posted).
std::string confirm_page(const ConfirmPage &p);

constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxCommentBytes = 256;

struct ResultPage {
    bool ok = false;     // done (or was done already) or refused
    std::string heading; // "Silenced", "Already silenced", "Link refused", ...
    std::string message; // a sentence: what was done, or why not
    PageLabels details;  // rows shown under it (silence id, by whom, until when)
};

std::string result_page(const ResultPage &p);

} // namespace dingtalk
