// What a message shows of a notification, as ready-to-print text: the built-in renderer and the
// templates both take their values from here, so a template sees exactly what the built-in
// message shows (escaped, cut, times in the configured time zone).
#pragma once

#include "alert.hpp"
#include "text.hpp"
#include "timezone.hpp"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace dingtalk
{

// A link a message shows with its own words: "2小时" and its URL.
struct LinkView {
    std::string label;
    std::string url;
};

// One alert, every text markdown-safe.
struct AlertView {
    const Alert *alert = nullptr;
    std::string severity;     // or "-"
    std::string alertname;    // or "-"
    std::string pod;          // pod, else pod_name, or "-"
    std::string namespace_;   // or "-"
    std::string detail;       // annotation message, else description, else summary, or "-"
    std::string target_label; // the label that names what is wrong (identity_labels()), or ""
    std::string target;       // its value
    std::string starts_at;    // in the time zone, or "-"
    std::string ends_at;      // resolved alerts only; "-" when unknown or firing
    std::string other_labels; // "k=v, k=v" of the labels not shown above nor hidden, or ""
    std::string link;         // generatorURL when http(s), or ""
    std::string silence;      // a new silence for this alert (silence_link_of), or ""
    std::vector<LinkView>
        silence_links; // dingtalk_action_url's signed links ("2小时", "1天",
                       // "直到恢复"): firing alerts, once the URL and keys are set
    bool has_severity = false, has_alertname = false, has_namespace = false, has_detail = false;
};

// Label names, for dingtalk_hide_labels.
using LabelNames = std::vector<std::string>;

// The labels a message leaves out unless told otherwise: Prometheus's own bookkeeping and the
// scrape's plumbing, which name no broken thing (prometheus, prometheus_replica, uid, endpoint,
// service).
const LabelNames &default_hidden_labels();

// The labels that name what is wrong, most specific first, with the line that shows them:
// pod (故障pod), pod_name, node (故障节点), deployment, statefulset, daemonset, job_name (a
// Kubernetes Job), instance (故障实例), job.
const std::vector<std::pair<std::string, std::string>> &identity_labels();

// The line's name for a target_label ("故障节点"), "" for none.
std::string target_title(const std::string &label);

// "" when name is a label (or annotation) name, Prometheus's [a-zA-Z_][a-zA-Z0-9_]* of 128
// bytes at most, else why not.
std::string check_label_name(std::string_view name);

// Adds a label name to `names` (dingtalk_hide_labels): "" when done, else why it cannot be one
// (check_label_name; not "off"; 64 names at most; no repeats).
std::string add_label_name(LabelNames &names, std::string_view name);

// `hidden` labels are in no line of the view (the identity line included).
AlertView make_view(const Alert &a, const TimeZone &tz, Escape esc, const LabelNames &hidden);

// How an alert looks in a template: an emoji and a colour (for <font color=...>) by severity
// (dingtalk_severity_style), matched case-insensitively; resolved alerts have their own.
struct Style {
    std::string emoji;
    std::string color;
};

struct Styles {
    std::vector<std::pair<std::string, Style>> severities; // lower case, most severe first
    Style other;    // a firing alert of a severity not listed (or none)
    Style resolved; // every resolved alert

    // 🔴 critical and error, 🟠 warning, 🔵 info, ⚪ anything else, ✅ resolved.
    static const Styles &defaults();

    // dingtalk_severity_style SEVERITY EMOJI [COLOR]: replaces the style of a severity (or of
    // "resolved", or "default" for the others), or adds one after the others. Returns why it
    // cannot, or "".
    std::string set(std::string_view severity, std::string_view emoji, std::string_view color);

    const Style &of(const Alert &a) const;
    // The group's: the most severe firing alert's, or resolved's when none fires.
    const Style &of(const Notification &n) const;
};

// The severity label in lower case (ASCII), "" when there is none.
std::string severity_key(const Alert &a);

// A well-known severity that `severity` (lower case) is one slip away from (a letter left out,
// one mistyped, two swapped), as "critcal" is from "critical": a typo that would never match;
// "" when it is none.
std::string severity_typo_of(std::string_view severity);

// How long, in words DingTalk users read: "45秒", "5分钟", "2小时3分钟", "3天4小时"; and short:
// "45s", "5m", "2h 3m", "3d 4h". Never negative.
std::string duration_words(std::chrono::seconds d);
std::string duration_short(std::chrono::seconds d);

// "[FIRING:3] KubePodCrashLooping": plain text, one line.
std::string plain_title(const Notification &n);

// Alertmanager's alert list and new-silence page for the group, or "" without externalURL.
std::string alertmanager_link(const Notification &n);
std::string silence_link(const Notification &n, const Labels &matchers);

// The new-silence link for one alert: its labels but the hidden ones as matchers; when that
// makes a link longer than kMaxSilenceLink, only those that say what it is (alertname,
// severity, namespace, the identity labels). "" without an http(s) externalURL.
constexpr std::size_t kMaxSilenceLink = 640;
std::string silence_link_of(const Notification &n, const Alert &a, const LabelNames &hidden);

// "**另有 N 条告警未显示**（...）" when alerts are left out (`omitted`: those this message does not
// show, kept or not; plus Alertmanager's truncatedAlerts), else "". No trailing newline.
std::string omitted_line(const Notification &n, std::size_t omitted);

// A link target DingTalk can render, or "" when the URL is not http(s) or too long.
std::string safe_link_url(std::string_view url);

// Caps per value keep one alert well under the message limit, so at least one always fits.
constexpr std::size_t kMaxValue = 512;
constexpr std::size_t kMaxDetail = 2048;
constexpr std::size_t kMaxOtherLabels = 1024;
constexpr std::size_t kMaxUrl = 2048;
constexpr std::size_t kMaxTitle = 128;

} // namespace dingtalk
