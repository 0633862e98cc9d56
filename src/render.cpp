#include "render.hpp"

#include "action.hpp"
#include "sign.hpp"
#include "text.hpp"
#include "view.hpp"

#include <algorithm>
#include <optional>

namespace dingtalk
{

namespace
{

// "**title**: value" and a blank line.
void add_line(std::string &b, std::string_view title, std::string_view value)
{
    b.append("**").append(title).append("**: ").append(value).append("\n\n");
}

// A firing alert's action links (issue #25): "2小时", "1天", "直到恢复", each a signed link to
// dingtalk_action_url naming the alert by its shown labels. None without an action URL and keys
// (the default), for a resolved alert, or when the labels make a link too long.
std::vector<LinkView> action_links(const Alert &a, const Settings &s, const LabelNames &hidden,
                                   TimePoint now)
{
    if (s.action_url.empty() || !s.action_keys || s.action_keys->empty() ||
        a.status != Status::firing) {
        return {};
    }
    ActionLink link;
    for (const auto &[name, value] : a.labels) {
        if (std::find(hidden.begin(), hidden.end(), name) == hidden.end()) {
            link.matchers.emplace_back(name, value);
        }
    }
    link.fingerprint = a.fingerprint;
    link.expires =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count() +
        kActionLinkSeconds;
    std::vector<LinkView> links;
    const auto add = [&](std::chrono::seconds d, bool until, const std::string &label) {
        link.seconds = d.count();
        link.until_resolved = until;
        std::string error;
        const auto token = encode_link(link, *s.action_keys, error);
        if (token) {
            links.push_back({label, action_url(s.action_url, *token)});
        }
        return token.has_value();
    };
    for (const std::chrono::seconds d : s.action_durations) {
        if (!add(d, false, duration_words(d))) {
            return {};
        }
    }
    if (s.action_until_resolved.count() > 0 && !add(s.action_until_resolved, true, "直到恢复")) {
        return {};
    }
    return links;
}

// The built-in layout's line of them: "**静默**: [2小时](…) · [1天](…) · [直到恢复](…)", or "".
std::string action_line(const std::vector<LinkView> &links)
{
    std::string line;
    for (const LinkView &l : links) {
        line.append(line.empty() ? "**静默**: " : " · ").append("[").append(l.label);
        line.append("](").append(l.url).append(")");
    }
    return line.empty() ? "" : line + "\n\n";
}

// A URL DingTalk opens in its side panel on the desktop (in its own browser on phones), as its
// "message link" page documents: a plain https URL opens the system's browser on the desktop.
std::string side_panel_url(const std::string &url)
{
    return "dingtalk://dingtalkclient/page/link?url=" + url_encode(url) + "&pc_slide=true";
}

// The buttons of an actionCard that shows this one firing alert: "静默2小时"... then "处理手册"
// (its runbook_url annotation) when it has one; none when it has neither.
std::vector<CardButton> card_buttons(const AlertView &v)
{
    std::vector<CardButton> buttons;
    for (const LinkView &l : v.silence_links) {
        buttons.push_back({"静默" + l.label, side_panel_url(l.url)});
    }
    const auto runbook = v.alert->annotations.find("runbook_url");
    if (runbook != v.alert->annotations.end()) {
        const std::string url = safe_link_url(runbook->second);
        if (!url.empty()) {
            buttons.push_back({"处理手册", side_panel_url(url)});
        }
    }
    return buttons;
}

std::string builtin_block(const AlertView &v, const std::string &silence,
                          const std::string &actions)
{
    std::string b;
    b.reserve(256 + v.detail.size() + v.other_labels.size() + v.link.size() + silence.size() +
              actions.size());
    if (v.has_severity) {
        add_line(b, "告警级别", v.severity);
    }
    if (v.has_alertname) {
        add_line(b, "告警类型", v.alertname);
    }
    if (!v.target.empty()) {
        add_line(b, target_title(v.target_label), v.target);
    }
    if (v.has_namespace) {
        add_line(b, "故障namespace", v.namespace_);
    }
    if (v.has_detail) {
        add_line(b, "告警详情", v.detail);
    }
    add_line(b, "告警状态", to_string(v.alert->status));
    add_line(b, "触发时间", v.starts_at);
    if (v.alert->status == Status::resolved) {
        add_line(b, "结束时间", v.ends_at);
    }
    if (!v.other_labels.empty()) {
        add_line(b, "其他标签", v.other_labels);
    }
    if (!v.link.empty()) {
        b.append("[查看图表](").append(v.link).append(")");
    }
    if (!silence.empty()) {
        b.append(v.link.empty() ? "" : " · ").append("[静默](").append(silence).append(")");
    }
    if (!v.link.empty() || !silence.empty()) {
        b += "\n\n";
    }
    b += actions;
    return b;
}

void collapse_blank_lines(std::string &text)
{
    std::string tidy;
    tidy.reserve(text.size());
    std::size_t newlines = 0;
    for (const char c : text) {
        newlines = c == '\n' ? newlines + 1 : 0;
        if (newlines <= 2 && !(c == '\n' && tidy.empty())) {
            tidy += c;
        }
    }
    text.swap(tidy);
}

void trim_end(std::string &text)
{
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
        text.pop_back();
    }
}

// What must follow the text so that DingTalk highlights every mention: it does so only when
// the text names the mention too, whatever a template printed. "" when nothing is missing.
std::string mention_suffix(const std::string &text, const Mentions &at)
{
    bool missing = at.all && at.mobiles.empty() && at.user_ids.empty() &&
                   text.find("@所有人") == std::string::npos;
    for (const auto *list : {&at.mobiles, &at.user_ids}) {
        for (const auto &m : *list) {
            missing = missing || text.find("@" + m) == std::string::npos;
        }
    }
    return missing ? "\n\n" + mention_line(at) : "";
}

// What follows the text: the mentions it lacks, then the robot's keyword when the text lacks it
// (DingTalk refuses a message without one, 310000): last, as after a template's own mentions.
std::string closing_lines(const std::string &text, const RenderOptions &opt)
{
    std::string lines = mention_suffix(text, opt.at);
    if (!opt.settings->keyword.empty() && text.find(opt.settings->keyword) == std::string::npos &&
        lines.find(opt.settings->keyword) == std::string::npos) {
        lines += "\n\n" + opt.settings->keyword;
    }
    return lines;
}

std::string with_closing(std::string text, const RenderOptions &opt)
{
    trim_end(text);
    return text + closing_lines(text, opt);
}

// The longest run of whole lines of text whose JSON-escaped size is at most budget; a single
// line too long for it is cut at a UTF-8 boundary, and an emphasis left open by the cut is
// dropped. A last resort for templates whose fixed part alone is too large: what is left must
// still read as markdown, and the mentions after it must stay whole.
std::string cut_to_fit(const std::string &text, std::size_t budget)
{
    const std::string ellipsis = "…";
    std::size_t used = json_escaped_size("\n\n" + ellipsis), end = 0, line_end = 0;
    while (end < text.size()) {
        std::size_t next = end + 1;
        while (next < text.size() && (static_cast<unsigned char>(text[next]) & 0xC0) == 0x80) {
            ++next;
        }
        const std::size_t cost = json_escaped_size(std::string_view(text).substr(end, next - end));
        if (used + cost > budget) {
            break;
        }
        used += cost;
        end = next;
        line_end = text[end - 1] == '\n' ? end : line_end;
    }
    if (end == text.size()) {
        return text;
    }
    std::string kept = text.substr(0, line_end > 0 ? line_end : end);
    if (line_end == 0) {
        std::size_t stars = 0;
        for (std::size_t p = kept.find("**"); p != std::string::npos; p = kept.find("**", p + 2)) {
            ++stars;
        }
        if (stars % 2 == 1) {
            kept.erase(kept.rfind("**"));
        }
        while (!kept.empty() && kept.back() == '\\') {
            kept.pop_back(); // a dangling escape would swallow what follows
        }
    }
    trim_end(kept);
    return kept + (kept.empty() ? "" : "\n\n") + ellipsis;
}

// " (2/3)": the part of one of several messages.
std::string part_label(std::size_t i, std::size_t of)
{
    return " (" + std::to_string(i) + "/" + std::to_string(of) + ")";
}

// What the messages of one notification share: the alerts that may be shown, firing first, and
// what each looks like (views, built-in blocks, template data), made the first time a message
// shows it. A notification with several messages makes each once, however its pages are fitted.
class Shown
{
public:
    Shown(const Notification &n, const RenderOptions &opt)
        : n_(n), s_(*opt.settings),
          hidden_(s_.hidden_labels ? *s_.hidden_labels : default_hidden_labels())
    {
        // Firing first: when space runs out, what is still burning matters most. Alerts posted
        // before are not shown again.
        order_.reserve(n.alerts.size());
        for (const Status s : {Status::firing, Status::resolved}) {
            for (std::size_t i = 0; i < n.alerts.size(); ++i) {
                if (n.alerts[i].status == s && (i >= opt.posted.size() || !opt.posted[i])) {
                    order_.push_back(&n.alerts[i]);
                }
            }
        }
        // views are handed out by address: never reallocate
        views_.reserve(order_.size());
        plain_views_.reserve(order_.size());
        now_ = opt.now != TimePoint{} ? opt.now
                                      : std::chrono::time_point_cast<std::chrono::microseconds>(
                                            std::chrono::system_clock::now());
    }
    Shown(const Shown &) = delete;

    std::size_t total() const { return order_.size(); }
    const Alert &alert(std::size_t i) const { return *order_[i]; }
    const Notification &notification() const { return n_; }
    TimePoint now() const { return now_; }

    const AlertView &view(std::size_t i) { return view(i, views_, escape_markdown); }
    const AlertView &plain_view(std::size_t i) { return view(i, plain_views_, plain_line); }

    const std::string &block(std::size_t i)
    {
        while (blocks_.size() <= i) {
            const AlertView &v = view(blocks_.size());
            const bool firing = v.alert->status == Status::firing;
            blocks_.push_back(builtin_block(v, firing ? v.silence : "", ""));
        }
        return blocks_[i];
    }

    // The built-in layout's action line of alert i, after its block unless they are buttons.
    std::string actions(std::size_t i) { return action_line(view(i).silence_links); }

    TemplateCache text_cache, title_cache;

private:
    const AlertView &view(std::size_t i, std::vector<AlertView> &views, Escape esc)
    {
        while (views.size() <= i) {
            const Alert &a = *order_[views.size()];
            views.push_back(make_view(a, *s_.timezone, esc, hidden_));
            views.back().silence = s_.silence_link ? silence_link_of(n_, a, hidden_) : "";
            views.back().silence_links = action_links(a, s_, hidden_, now_);
        }
        return views[i];
    }

    const Notification &n_;
    const Settings &s_;
    const LabelNames &hidden_;
    std::vector<const Alert *> order_;
    std::vector<AlertView> views_;       // built as needed: a big group shows a few dozen
    std::vector<AlertView> plain_views_; // the same, as plain text, for the title template
    std::vector<std::string> blocks_;
    TimePoint now_;
};

class Composer
{
public:
    Composer(Shown &shown, const RenderOptions &opt)
        : shown_(shown), n_(shown.notification()), opt_(opt), s_(*opt.settings)
    {
        const std::size_t part = opt.messages_before + 1;
        set_page(Page{0, opt.messages_before > 0 ? part_label(part, part) : "", true});
    }

    // Which alerts of the order a message shows: from `begin`; " (1/3)" after its title when
    // it is one of several; whether it is the last (only the last says what is not shown).
    struct Page {
        std::size_t begin = 0;
        std::string part;
        bool last = true;
    };

    void set_page(Page p)
    {
        page_ = std::move(p);
        header_ = "### " + escape_markdown(plain_title(n_) + page_.part, kMaxTitle * 2) + "\n\n";
    }

    // The title with k alerts of the page shown: the title template's, else the built-in one.
    std::string title(std::size_t k)
    {
        std::string t;
        if (s_.title_template) {
            TemplateInput in = input(k, true, card_alert(k) != nullptr);
            in.part.clear(); // added below, whatever the template makes of the title
            t = *s_.title_template->render(in, shown_.title_cache);
        }
        return (t.empty() ? plain_title(n_) : t) + page_.part;
    }

    std::size_t total() const { return shown_.total(); } // the alerts that may be shown
    std::size_t begin() const { return page_.begin; }
    bool templated() const { return s_.text_template != nullptr; }
    bool title_varies() const { return s_.title_template && s_.title_template->varies_by_page(); }
    const std::string &part() const { return page_.part; }
    bool last() const { return page_.last; }

    // Positions in n.alerts of the alerts a message with k alerts of the page shows, and when it
    // is the last, of those after them it counts in its "N more" line.
    std::vector<std::size_t> covered(std::size_t k) const
    {
        std::vector<std::size_t> out;
        const std::size_t end = page_.last ? total() : page_.begin + k;
        out.reserve(end - page_.begin);
        for (std::size_t i = page_.begin; i < end; ++i) {
            out.push_back(static_cast<std::size_t>(&shown_.alert(i) - n_.alerts.data()));
        }
        return out;
    }

    // Alerts of the notification a message with k alerts of the page does not show: all but
    // those shown by it and the pages before it, when it is the last; none before the last.
    std::size_t not_shown(std::size_t k) const
    {
        return page_.last ? total() - page_.begin - k + n_.not_kept() : 0;
    }

    // dingtalk_message_type actioncard: the view of the one firing alert a message with k
    // alerts of the page shows, when that message is a card (the alert has links for buttons,
    // and the message mentions nobody: DingTalk documents no "at" for actionCard); else null.
    const AlertView *card_alert(std::size_t k)
    {
        if (!s_.action_card || !opt_.at.empty() || k == 0 ||
            shown_.alert(page_.begin).status != Status::firing ||
            (k > 1 && shown_.alert(page_.begin + 1).status == Status::firing)) {
            return nullptr; // firing first: the first alert, and not the second
        }
        const AlertView &v = shown_.view(page_.begin);
        return card_buttons(v).empty() ? nullptr : &v;
    }

    // The request of a message with k alerts of the page: an actionCard with the buttons of its
    // one firing alert (card_alert), else markdown mentioning `at` (the caller's: a plan counts
    // the first message's mentions on every page).
    std::string request(const std::string &title, const std::string &text, std::size_t k,
                        const Mentions &at)
    {
        const AlertView *one = card_alert(k);
        if (one == nullptr) {
            return request_body(title, text, at);
        }
        const std::vector<CardButton> buttons = card_buttons(*one);
        return card_request_body(title, text, buttons, buttons.size() <= kSideBySideButtons);
    }

    // Text with k alerts of the page, mentions not yet added; nothing when watch stopped the
    // template's render. markdown: as a markdown message would show it, whatever the message is.
    std::optional<std::string> body(std::size_t k, RenderWatch *watch = nullptr,
                                    bool markdown = false)
    {
        const bool card = !markdown && card_alert(k) != nullptr;
        if (s_.text_template) {
            std::optional<std::string> t =
                s_.text_template->render(input(k, false, card), shown_.text_cache, watch);
            if (t) {
                // Blank lines collapse into one: markdown gives them no meaning.
                collapse_blank_lines(*t);
            }
            return t;
        }
        std::string t = header_;
        for (std::size_t i = page_.begin; i < page_.begin + k; ++i) {
            const Status s = shown_.alert(i).status;
            if (i == page_.begin || s != shown_.alert(i - 1).status) {
                t += s == Status::firing
                         ? "#### 告警中 (" + std::to_string(n_.count(Status::firing)) + ")\n\n"
                         : "#### 已恢复 (" + std::to_string(n_.count(Status::resolved)) + ")\n\n";
            } else {
                t += "---\n\n";
            }
            t += shown_.block(i);
            t += card ? "" : shown_.actions(i); // a card's buttons are its one alert's links
        }
        const std::string more = page_.last ? omitted_line(n_, not_shown(k)) : "";
        t += more.empty() ? "" : more + "\n\n";
        return t;
    }

    std::string text(std::size_t k) { return with_closing(*body(k), opt_); }

    // How many alerts could fit at most, judging by their blocks alone (built-in layout).
    std::size_t upper_bound(std::size_t budget)
    {
        if (s_.text_template) {
            return total() - page_.begin;
        }
        std::size_t used = json_escaped_size(header_), k = 0;
        while (page_.begin + k < total()) {
            used += json_escaped_size(shown_.block(page_.begin + k));
            if (used > budget) {
                break;
            }
            ++k;
        }
        return k;
    }

private:
    TemplateInput input(std::size_t k, bool plain, bool card = false)
    {
        TemplateInput in;
        in.n = &n_;
        in.shown.reserve(k);
        for (std::size_t i = page_.begin; i < page_.begin + k; ++i) {
            in.shown.push_back(plain ? &shown_.plain_view(i) : &shown_.view(i));
        }
        in.not_shown = not_shown(k);
        in.part = page_.part;
        in.last_part = page_.last;
        in.at = &opt_.at;
        in.timezone = s_.timezone.get();
        in.styles = s_.styles ? s_.styles.get() : &Styles::defaults();
        in.now = shown_.now();
        in.silence_links = s_.silence_link;
        in.buttons = card;
        return in;
    }

    Shown &shown_;
    const Notification &n_;
    const RenderOptions &opt_;
    const Settings &s_;
    std::string header_;
    Page page_;
};

// The least a request can take with the text a template has rendered so far, as it comes out:
// blank lines collapse and the end is trimmed (collapse_blank_lines, with_closing_lines), and
// what follows only adds, so the text up to its last byte other than a space or a line feed is
// in the request whatever comes next. Stops the render once that is over the limit, and notes
// it each time an alert is reached.
class Meter : public RenderWatch
{
public:
    Meter(std::size_t overhead, std::size_t max) : overhead_(overhead), max_(max) {}

    bool output(const std::string &piece) override
    {
        for (std::size_t at = 0; at < piece.size();) {
            if (piece[at] == '\n') {
                newlines_ += 1;
                size_ += started_ && newlines_ <= 2 ? 2 : 0; // "\n" in JSON
                ++at;
                continue;
            }
            const std::size_t end = std::min(piece.find('\n', at), piece.size());
            const std::string_view run(piece.data() + at, end - at);
            size_ += json_escaped_size(run);
            const std::size_t last = run.find_last_not_of(' ');
            if (last != std::string_view::npos) {
                solid_ = size_ - (run.size() - last - 1); // a space is one byte in JSON
            }
            newlines_ = 0;
            started_ = true;
            at = end;
        }
        return least() <= max_;
    }

    void alert(std::size_t) override { reached_.push_back(least()); }
    void varies() override { same_ = false; }

    std::size_t least() const { return overhead_ + solid_; }
    std::size_t overhead() const { return overhead_; }
    bool stopped() const { return least() > max_; }

    // The least size of the request when each alert was reached, for those that were.
    const std::vector<std::size_t> &reached() const { return reached_; }

    // When the render stopped before it looked up anything that depends on the number of alerts
    // shown or on whether the message is the last, every message of the page (same first alert,
    // part label, title size and mentions) that shows as many alerts as it reached (one at
    // least) renders the same text up to there: none of them fits. The fewest such alerts.
    std::optional<std::size_t> none_fit_from() const
    {
        if (!stopped() || !same_) {
            return std::nullopt;
        }
        return std::max<std::size_t>(reached_.size(), 1);
    }

private:
    std::size_t overhead_, max_;
    std::size_t size_ = 0;     // of the text as it will be, in JSON
    std::size_t solid_ = 0;    // the same, up to its last byte other than a space or a line feed
    std::size_t newlines_ = 0; // line feeds in a row at its end
    bool started_ = false;     // whether anything but line feeds came out
    bool same_ = true;         // nothing that depends on the page's size looked up yet
    std::vector<std::size_t> reached_;
};

} // namespace

namespace
{

// The most alerts of the composer's page that fit in one request, with m the message that shows
// them; nothing when not even the text without alerts fits. The built-in layout's text grows
// with every alert shown (the "N more" line changes by a digit at most).
std::optional<std::size_t> fit_builtin(Composer &c, const RenderOptions &opt, Message &m)
{
    const std::size_t max = opt.max_request_bytes;
    std::size_t tried = SIZE_MAX;
    auto attempt = [&](std::size_t k) {
        tried = k;
        m.title = c.title(k);
        m.body = *c.body(k);
        m.text = with_closing(m.body, opt);
        m.request_body = c.request(m.title, m.text, k, opt.at);
        return m.request_body.size() <= max;
    };

    // Grown from a few, in proportion to what the alerts so far took (at most x4 a step), then
    // bisected: a few renders, each of what is shown, never of the whole body.
    std::size_t fit = 0, limit = c.upper_bound(max);
    for (std::size_t k = std::min<std::size_t>(16, limit); k > fit;) {
        if (!attempt(k)) {
            limit = k - 1;
            break;
        }
        fit = k;
        const std::size_t estimate = fit * max / std::max<std::size_t>(m.request_body.size(), 1);
        k = std::min({std::max(estimate, fit + 1), fit * 4, limit});
    }
    while (fit < limit) {
        const std::size_t mid = fit + (limit - fit + 1) / 2;
        if (attempt(mid)) {
            fit = mid;
        } else {
            limit = mid - 1;
        }
    }
    if (fit == 0 && !attempt(0)) {
        return std::nullopt;
    }
    if (tried != fit) {
        attempt(fit);
    }
    return fit;
}

// What the first render of a page with a text template said: every alert left rendered, stopped
// by the Meter as soon as the text cannot fit. Holds for every message that starts at the same
// alert with the same part label and mentions, the last of several or not.
struct Probe {
    bool ran = false;
    std::optional<std::size_t> none_fit_from; // Meter::none_fit_from()
    std::vector<std::size_t> reached;         // Meter::reached()
};

// What the fits of one notification's pages learn for the next: what followed the alerts in the
// last render that was not stopped (the tail: "N more", links, mentions), as the last message
// and not, and how many alerts the last fit found.
struct Learned {
    std::size_t tail[2] = {0, 0};
    std::size_t fit = 0;
};

// The most alerts of the composer's page that fit with a text template, whose output per alert
// may be anything from nothing to more than a page, and whose every render walks what it shows.
// Rendered first with every alert left (the probe; stopped as soon as the text is known to be
// too long), then where that says the page is full: when the probe's stop holds for every run
// that long or longer, one more render that fits proves the most (whether or not a longer run
// makes a shorter text); else found from there by galloping and bisecting, which finds the most
// that fit where each alert shown makes the message longer, as a bisection over all would. Each
// render stops soon after the page is full: a fit costs two or three renders of a page.
class TemplateFit
{
public:
    TemplateFit(Composer &c, const RenderOptions &opt, Learned &learned)
        : c_(c), opt_(opt), learned_(learned)
    {
    }

    // Whether every alert left fits (m then shows them): the probe, when it has not run.
    bool all_fit(Probe &probe, Message &m)
    {
        const std::size_t limit = c_.total() - c_.begin();
        Meter meter(0, 0);
        if (attempt(limit, m, &meter)) {
            return true;
        }
        if (!probe.ran) {
            probe = Probe{true, meter.none_fit_from(), meter.reached()};
        }
        return false;
    }

    // The most that fit, m the message that shows them; nothing when not even the text without
    // alerts fits. all_failed: all_fit() said no for this very message.
    std::optional<std::size_t> most(Probe &probe, Message &m, bool all_failed = false)
    {
        const std::size_t limit = c_.total() - c_.begin();
        std::size_t hi = all_failed ? limit : limit + 1; // the fewest alerts known not to fit
        if (probe.ran && probe.none_fit_from) {
            hi = std::min(hi, *probe.none_fit_from);
        }
        if (hi > limit) {
            if (all_fit(probe, m)) {
                return limit;
            }
            hi = limit;
            if (probe.none_fit_from) {
                hi = std::min(hi, *probe.none_fit_from);
            }
        }
        if (hi == 0) {
            return std::nullopt;
        }
        // Down from where the page is likely full until a run fits, by steps that double when
        // the guess is wrong; then up from there, then bisected.
        std::size_t lo = 0, k = guess(probe, hi);
        for (std::size_t step = 1;; step *= 2) {
            if (attempt(k, m, nullptr, &probe)) {
                lo = k;
                break;
            }
            hi = k;
            if (hi == 0) {
                return std::nullopt; // not even the text without alerts fits
            }
            k = std::min(guess(probe, hi), hi > step ? hi - step : 0);
        }
        for (std::size_t step = 1; lo + step < hi; step *= 2) {
            if (!attempt(lo + step, m, nullptr, &probe)) {
                hi = lo + step;
                break;
            }
            lo += step;
        }
        while (hi - lo > 1) {
            const std::size_t mid = lo + (hi - lo) / 2;
            (attempt(mid, m, nullptr, &probe) ? lo : hi) = mid;
        }
        learned_.fit = lo;
        return lo; // m: the last attempt that fit, which is lo's (lo only ever moves up to it)
    }

    // Whether k alerts of the page fit (m then shows them).
    bool fits(std::size_t k, Message &m) { return attempt(k, m); }

private:
    // The most alerts, fewer than `below`, that the probe says fit: it reached alert j when the
    // request took at least reached[j] (with the alerts before j), and what follows the alerts
    // is taken as long as it was last time. When the alerts the probe reached showed nothing it
    // could see (a list inside a function's section, whose text comes out at its end), from
    // as many as the last page's fit (or one), up.
    std::size_t guess(const Probe &probe, std::size_t below) const
    {
        const std::vector<std::size_t> &reached = probe.reached;
        std::size_t j = std::min(below, reached.size());
        const std::size_t tail = learned_.tail[c_.last()];
        while (j > 1 && reached[j - 1] + tail > opt_.max_request_bytes) {
            --j;
        }
        if (j == 0) {
            return below > 0 ? below - 1 : 0;
        }
        if (j > 2 && reached[j - 1] == reached.front()) {
            return std::min(j - 1, std::max<std::size_t>(learned_.fit, 1));
        }
        return j - 1;
    }

    // Renders k alerts of the page (the text first: it may stop early, then the title);
    // whether they fit, m the message when they do. watch: the probe's, kept; probe: the
    // probe's findings, to learn the tail from.
    bool attempt(std::size_t k, Message &m, Meter *watch = nullptr, const Probe *probe = nullptr)
    {
        // The Meter counts the title as much as any title of the page takes: it is the same
        // for every number of alerts shown unless a title template names what changes with
        // it (then its part label only: the probe's stop must hold for all of them).
        const std::size_t max = opt_.max_request_bytes;
        Meter own =
            c_.title_varies()
                ? Meter(request_body("", "", opt_.at).size() + json_escaped_size(c_.part()), max)
                : Meter(request_body(c_.title(0), "", opt_.at).size(), max);
        Meter &meter = watch != nullptr ? *watch : own;
        meter = own;
        std::optional<std::string> body = c_.body(k, &meter);
        if (!body) {
            return false;
        }
        std::string text = with_closing(*body, opt_);
        // the request with the title counted as the Meter counts it: no title render when
        // the text alone is too long
        const std::size_t least = meter.overhead() + json_escaped_size(text);
        if (probe != nullptr && k < probe->reached.size() && least >= probe->reached[k]) {
            learned_.tail[c_.last()] = least - probe->reached[k];
        }
        if (least > max) {
            return false;
        }
        Message t;
        t.title = c_.title(k);
        t.body = std::move(*body);
        t.text = std::move(text);
        t.request_body = c_.request(t.title, t.text, k, opt_.at);
        if (t.request_body.size() > max) {
            return false;
        }
        m = std::move(t);
        return true;
    }

    Composer &c_;
    const RenderOptions &opt_;
    Learned &learned_;
};

// What a message with k alerts of the composer's page covers. The body of a card is kept as a
// markdown message shows it (its action line in the text): dingtalk_fold makes markdown of it.
void cover(Composer &c, std::size_t k, Message &m)
{
    m.shown = k;
    m.omitted = c.not_shown(k);
    m.alerts = c.covered(k);
    if (c.card_alert(k) != nullptr) {
        m.body = c.body(k, nullptr, true).value_or(m.body);
    }
}

// The most alerts of the composer's page that fit, with m the message that shows them; nothing
// when not even the text without alerts fits. probe: what a render of the page said before (a
// text template's), all_failed: that not all fit.
std::optional<std::size_t> fit_alerts(Composer &c, const RenderOptions &opt, Message &m,
                                      Probe &probe, bool all_failed)
{
    Learned learned;
    const auto fit = c.templated() ? TemplateFit(c, opt, learned).most(probe, m, all_failed)
                                   : fit_builtin(c, opt, m);
    if (fit) {
        cover(c, *fit, m);
    }
    return fit;
}

std::optional<std::size_t> fit_alerts(Composer &c, const RenderOptions &opt, Message &m)
{
    Probe probe;
    return fit_alerts(c, opt, m, probe, false);
}

Message render_message(Shown &shown, const RenderOptions &opt, Probe &probe, bool all_failed)
{
    Message m;
    Composer c(shown, opt);
    if (!fit_alerts(c, opt, m, probe, all_failed)) {
        // Not even the text without alerts fits (a template's fixed part, a huge mention
        // list): cut whole lines of it, and keep the keyword and the mentions whole after the
        // cut (room for all of them: the cut may take those the text had).
        const std::size_t max = opt.max_request_bytes;
        m.title = c.title(0);
        std::string text = *c.body(0);
        trim_end(text);
        const std::size_t overhead = request_body(m.title, closing_lines("", opt), opt.at).size();
        m.text = cut_to_fit(text, max > overhead ? max - overhead : 0);
        m.text += closing_lines(m.text, opt);
        m.request_body = request_body(m.title, m.text, opt.at);
        cover(c, 0, m);
    }
    return m;
}

} // namespace

std::string with_closing_lines(std::string text, const RenderOptions &opt)
{
    return with_closing(std::move(text), opt);
}

Message render_message(const Notification &n, const RenderOptions &opt)
{
    Shown shown(n, opt);
    Probe probe;
    return render_message(shown, opt, probe, false);
}

namespace
{

using Plan = std::vector<std::pair<std::size_t, std::size_t>>; // (begin, alerts) per message

// Where each message of several starts and how many alerts it shows: as many as fit, firing
// first, the last one ending with "N more" when even max_messages are not enough. Empty when
// they cannot be planned (a page that holds no alert): one message then. Planned with the
// widest part label, so that the real one fits as well.
Plan plan_pages(Composer &first, Composer &others, const RenderOptions &opt,
                std::size_t max_messages)
{
    const std::size_t last = opt.messages_before + max_messages;
    const std::string widest = part_label(last, last);
    Plan plan;
    for (std::size_t begin = 0; begin < first.total();) {
        Composer &c = plan.empty() ? first : others;
        Message m;
        c.set_page({begin, widest, true});
        const auto k = fit_alerts(c, opt, m);
        if (!k || *k == 0) {
            return {};
        }
        if (begin + *k == c.total() || plan.size() + 1 == max_messages) {
            plan.emplace_back(begin, *k);
            return plan;
        }
        c.set_page({begin, widest, false}); // not the last: no "N more" line to make room for
        std::size_t take = fit_alerts(c, opt, m).value_or(*k);
        if (begin + take >= c.total()) {
            take = *k; // the rest fits only without "N more": the last page says it, after this
        }
        plan.emplace_back(begin, take);
        begin += take;
    }
    return plan;
}

// The same pages with a text template, with fewer renders: the most that fit as the last page is
// needed only when it is the last (all left fit, or the most messages are reached), is not zero
// (some fit), or when all left fit only without "N more" (the fit as the last is taken then);
// one probe of the page serves both fits. Where each alert shown makes a message longer, the
// fits are plan_pages' and so are the pages.
Plan plan_template_pages(Composer &first, Composer &others, const RenderOptions &opt,
                         std::size_t max_messages)
{
    const std::size_t last = opt.messages_before + max_messages;
    const std::string widest = part_label(last, last);
    Plan plan;
    Learned learned;
    for (std::size_t begin = 0; begin < first.total();) {
        Composer &c = plan.empty() ? first : others;
        TemplateFit fit(c, opt, learned);
        Probe probe;
        Message m;
        c.set_page({begin, widest, true});
        if (fit.all_fit(probe, m)) {
            plan.emplace_back(begin, c.total() - begin);
            return plan;
        }
        if (plan.size() + 1 == max_messages) {
            const auto k = fit.most(probe, m, true);
            if (!k || *k == 0) {
                return {};
            }
            plan.emplace_back(begin, *k);
            return plan;
        }
        // none fits as the last page: planned as one message
        if (c.total() - begin == 1 || probe.none_fit_from == std::size_t{1} || !fit.fits(1, m)) {
            return {};
        }
        c.set_page({begin, widest, false}); // not the last: no "N more" line to make room for
        std::optional<std::size_t> take = fit.most(probe, m);
        if (!take || begin + *take >= c.total()) {
            // all left fit only without "N more": the last page says it, after this
            c.set_page({begin, widest, true});
            take = fit.most(probe, m, true);
        }
        plan.emplace_back(begin, *take);
        begin += *take;
    }
    return plan;
}

} // namespace

std::vector<Message> render_messages(const Notification &n, const RenderOptions &opt)
{
    // the messages taken before count against dingtalk_max_messages
    const std::size_t max_messages =
        std::min(opt.settings->max_messages, kMaxMessages) -
        std::min(opt.messages_before, std::min(opt.settings->max_messages, kMaxMessages) - 1);
    Shown shown(n, opt);
    RenderOptions rest = opt;
    rest.at = Mentions{}; // the first message mentions; the others would only ring again
    Composer first(shown, opt), others(shown, rest);
    Plan plan;
    Probe probe;
    bool all_failed = false;
    if (!opt.settings->text_template) {
        std::vector<Message> out{render_message(shown, opt, probe, false)};
        if (max_messages <= 1 || out[0].alerts.size() == out[0].shown) {
            return out; // one message: it shows every alert left, or only one may go
        }
        plan = plan_pages(first, others, opt, max_messages);
        if (plan.size() < 2) {
            return out;
        }
    } else {
        // the same, without fitting the one message unless it goes out
        Message one;
        Learned learned;
        if (TemplateFit(first, opt, learned).all_fit(probe, one)) {
            cover(first, first.total(), one);
            return {std::move(one)};
        }
        all_failed = true;
        if (max_messages > 1) {
            plan = plan_template_pages(first, others, opt, max_messages);
        }
        if (plan.size() < 2) {
            return {render_message(shown, opt, probe, all_failed)};
        }
    }
    std::vector<Message> out;
    const std::size_t before = opt.messages_before;
    for (std::size_t i = 0; i < plan.size(); ++i) {
        Composer &c = i == 0 ? first : others;
        c.set_page({plan[i].first, part_label(before + i + 1, before + plan.size()),
                    i + 1 == plan.size()});
        Message m;
        m.title = c.title(plan[i].second);
        m.text = c.text(plan[i].second);
        m.request_body = c.request(m.title, m.text, plan[i].second, i == 0 ? opt.at : rest.at);
        cover(c, plan[i].second, m);
        out.push_back(std::move(m));
    }
    return out;
}

} // namespace dingtalk
