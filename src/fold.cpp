#include "fold.hpp"

#include "text.hpp"
#include "view.hpp"

#include <algorithm>

namespace dingtalk
{

namespace
{

void add_unique(std::vector<std::string> &to, const std::vector<std::string> &from)
{
    for (const std::string &v : from) {
        if (std::find(to.begin(), to.end(), v) == to.end()) {
            to.push_back(v);
        }
    }
}

// Whom the first k sections mention, together, within DingTalk's own caps.
Mentions mentions_of(const std::vector<Section> &sections, std::size_t k)
{
    Mentions at;
    for (std::size_t i = 0; i < k; ++i) {
        add_unique(at.mobiles, sections[i].at.mobiles);
        add_unique(at.user_ids, sections[i].at.user_ids);
        at.all = at.all || sections[i].at.all;
    }
    return at;
}

// "3 条通知: [FIRING:2] A; [RESOLVED:1] B ...", plain, at most kMaxTitle bytes.
std::string fold_title(const std::vector<Section> &sections, std::size_t k)
{
    std::string t = std::to_string(k) + " 条通知: ";
    for (std::size_t i = 0; i < k; ++i) {
        t += (i ? "; " : "") + sections[i].title;
    }
    return plain_line(t, kMaxTitle);
}

// Section i's part of a folded message's text.
std::string part_of(const std::vector<Section> &sections, std::size_t i)
{
    return (i ? "---\n\n" : "") + std::string("#### ") +
           escape_markdown(sections[i].title, kMaxTitle * 2) + "\n\n" + sections[i].text + "\n\n";
}

// How many of the first sections could fit at most: those whose parts alone, in JSON, are
// within the limit (the heading, the mentions and the keyword only add to them).
std::size_t most_that_fit(const std::vector<Section> &sections, std::size_t max_bytes)
{
    std::size_t used = 0, k = 0;
    for (; k < std::min(sections.size(), kMaxFolded); ++k) {
        used += json_escaped_size(part_of(sections, k));
        if (used > max_bytes) {
            break;
        }
    }
    return k;
}

Message compose(const std::vector<Section> &sections, std::size_t k, const RenderOptions &opt)
{
    Message m;
    m.title = fold_title(sections, k);
    std::string text = "### " + escape_markdown(m.title, kMaxTitle * 2) + "\n\n";
    for (std::size_t i = 0; i < k; ++i) {
        text += part_of(sections, i);
    }
    RenderOptions with = opt;
    with.at = mentions_of(sections, k);
    m.text = with_closing_lines(std::move(text), with);
    m.request_body = request_body(m.title, m.text, with.at);
    return m;
}

} // namespace

std::optional<Section> section_of(const Notification &n, const RenderOptions &opt, const Message &m,
                                  std::size_t messages)
{
    if (messages != 1 || opt.messages_before != 0 || m.body.empty()) {
        return std::nullopt;
    }
    Section s;
    s.title = m.title;
    s.text = m.body;
    // the built-in layout's heading (a template's text has its own, kept as it is)
    const std::string heading = "### " + escape_markdown(plain_title(n), kMaxTitle * 2) + "\n\n";
    if (!opt.settings->text_template && s.text.compare(0, heading.size(), heading) == 0) {
        s.text.erase(0, heading.size());
    }
    while (!s.text.empty() && (s.text.back() == '\n' || s.text.back() == ' ')) {
        s.text.pop_back();
    }
    s.firing = std::any_of(m.alerts.begin(), m.alerts.end(),
                           [&](std::size_t i) { return n.alerts[i].status == Status::firing; });
    s.at = opt.at;
    return s;
}

Message render_fold(const std::vector<Section> &sections, const RenderOptions &opt,
                    std::size_t &taken)
{
    // the size grows with every section added (the title is capped): the most that fit, by
    // bisection below what their parts alone allow, a few compositions of about one message
    const auto fits = [&](std::size_t k, Message &m) {
        m = compose(sections, k, opt);
        return m.request_body.size() <= opt.max_request_bytes;
    };
    Message best, m;
    std::size_t lo = 0, hi = most_that_fit(sections, opt.max_request_bytes);
    while (lo < hi) {
        const std::size_t mid = lo + (hi - lo + 1) / 2;
        if (fits(mid, m)) {
            lo = mid;
            best = std::move(m);
        } else {
            hi = mid - 1;
        }
    }
    taken = lo;
    return best;
}

} // namespace dingtalk
