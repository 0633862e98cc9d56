// The pages of the action location (issue #25): the confirmation a link's GET answers, and the
// result of its POST, in Chinese as the messages are. One self-contained HTML document each: no
// script, no external asset, an inline style only, readable on a phone; every value escaped. Knows
// nothing of nginx.
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

// "2小时", "1天", "1小时30分钟", "1天6小时", "45秒": as the messages write durations.
std::string duration_text(std::int64_t seconds);

// How long a link's silence lasts, as the pages say it: duration_text(), or for an "until
// resolved" link "直到恢复（最长7天）".
std::string silence_duration_text(std::int64_t seconds, bool until_resolved);

using PageLabels = std::vector<std::pair<std::string, std::string>>;

struct ConfirmPage {
    PageLabels labels;      // the link's matchers: which alert
    std::string duration;   // silence_duration_text()
    std::string ends;       // when the silence would end at the latest, as shown
    std::string link_token; // posted back with the form: the POST is bound to it
    std::string form_token; // form_token() of the link
};

// The form posts to the page's own path without its query (the link's token stays out of the
// POST's request line, which nginx writes in its error log): fields "l" (the link), "t" (the form
// token), "name" and "comment" (both optional, typed by the person, bounded by maxlength and
// checked again when posted).
std::string confirm_page(const ConfirmPage &p);

constexpr std::size_t kMaxNameBytes = 64;
constexpr std::size_t kMaxCommentBytes = 256;

struct ResultPage {
    bool ok = false;     // done (or was done already) or refused
    std::string heading; // "已静默", "已在静默中", "链接无效", ...
    std::string message; // a sentence: what was done, or why not
    PageLabels details;  // rows shown under it (silence id, by whom, until when)
};

std::string result_page(const ResultPage &p);

} // namespace dingtalk
