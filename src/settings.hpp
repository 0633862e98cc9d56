// One location's settings: what its directives, and those of the levels around it, say. Built
// once when nginx reads the configuration, then only read: by every delivery, its pool threads
// and the renderer. A new directive is a field here, a parser, a merge line and its use.
#pragma once

#include "action.hpp"
#include "alert.hpp"
#include "auth.hpp"
#include "mention.hpp"
#include "ratelimit.hpp"
#include "sender.hpp"
#include "store.hpp"
#include "template.hpp"
#include "timezone.hpp"
#include "view.hpp"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

struct Settings {
    // Where and how messages go.
    std::string api_url = "https://oapi.dingtalk.com/robot/send"; // dingtalk_api_url
    std::chrono::milliseconds timeout{10000};                     // dingtalk_timeout
    std::chrono::milliseconds answer_timeout{300000};             // dingtalk_answer_timeout
    std::chrono::seconds keepalive{60};                           // dingtalk_keepalive_timeout
    bool ssl_verify = true;                                       // dingtalk_ssl_verify
    std::shared_ptr<const std::string> ca_pem;   // dingtalk_ssl_trusted_certificate; null: system
    std::shared_ptr<const Proxy> proxy;          // dingtalk_proxy; null: straight to DingTalk
    std::optional<RateLimit> rate = RateLimit{}; // dingtalk_rate_limit; nullopt: off
    bool fold = true;                            // dingtalk_fold
    std::shared_ptr<const Store> store;          // dingtalk_store; null: the shared zone only

    // What a webhook may be, and who may post one.
    ParseLimits limits;                      // dingtalk_max_body_size, dingtalk_max_alerts
    std::shared_ptr<const Credentials> auth; // dingtalk_auth_*_file; null: anyone
    bool verbose_replies = false;            // dingtalk_verbose_replies

    // What a message looks like.
    std::size_t max_messages = 1;                    // dingtalk_max_messages
    std::shared_ptr<const TimeZone> timezone;        // dingtalk_timezone; required to render
    std::shared_ptr<const Template> text_template;   // dingtalk_template; null: built-in layout
    std::shared_ptr<const Template> title_template;  // dingtalk_title_template; null: built-in
    std::shared_ptr<const Styles> styles;            // dingtalk_severity_style; null: defaults
    std::shared_ptr<const LabelNames> hidden_labels; // dingtalk_hide_labels; null: the default set
    std::string keyword;                             // dingtalk_keyword; "": none
    bool silence_link = true;                        // dingtalk_silence_link
    bool action_card = false; // dingtalk_message_type actioncard (else markdown)

    // Silencing from the chat (issue #25; docs/design.md). Links need an action_url and keys;
    // the action location uses alertmanager_url and its credential.
    std::string action_url;                        // dingtalk_action_url; "": no action links
    std::shared_ptr<const ActionKeys> action_keys; // dingtalk_action_key_file
    std::vector<std::chrono::seconds> action_durations{std::chrono::hours(2),
                                                       std::chrono::hours(24)}; // ..._durations
    std::chrono::seconds action_until_resolved{std::chrono::hours(24 * 7)};     // 0: no such link
    std::string alertmanager_url;           // dingtalk_alertmanager_url
    std::string alertmanager_authorization; // dingtalk_alertmanager_*_file; never logged

    // Whom it mentions.
    std::shared_ptr<const std::vector<MentionRule>> mentions; // dingtalk_at_*; null: nobody
    MentionSources mentions_from;                             // dingtalk_at_*_from
};

// dingtalk_keyword: "" when the word can be one of a robot's keywords, else why not.
std::string check_keyword(std::string_view word);

} // namespace dingtalk
