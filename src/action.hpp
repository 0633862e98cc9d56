// Signed action links (issue #25, "silence from the chat"): a link in a DingTalk message names
// one alert (its labels as equality matchers), how long to silence it, and until when the link
// itself may be used, signed with HMAC-SHA256 by a key of dingtalk_action_key_file. The link
// never carries Alertmanager's address or any credential. Knows nothing of nginx.
//
// A link's token is "KEYID.PAYLOAD.TAG": PAYLOAD is the fields, length-prefixed, in base64url;
// TAG is the first 16 bytes of HMAC-SHA256(key, purpose + KEYID + PAYLOAD), base64url. The key
// id is outside the payload, so nothing untrusted is parsed before the tag was checked.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dingtalk
{

struct ActionKey {
    std::string id;     // 1 to 16 of [A-Za-z0-9_-]
    std::string secret; // 32 bytes or more; never logged, never in an error
};

// The keys of dingtalk_action_key_file, read by the master: one "ID SECRET" per line, blank
// lines and lines starting with # skipped. The first key signs; every key verifies, so a new
// key is added first, then moved to the top, and the old one removed once its links expired.
class ActionKeys
{
public:
    // On failure returns false and sets error to "line N: what is wrong" (never the secret).
    bool add_file(std::string_view text, std::string &error);

    bool empty() const { return keys_.empty(); }
    const ActionKey &current() const { return keys_.front(); } // not when empty()
    const ActionKey *find(std::string_view id) const;

private:
    std::vector<ActionKey> keys_;
};

// What a link asks for.
struct ActionLink {
    // label name and value: one equality matcher each (the alert's labels the view shows)
    std::vector<std::pair<std::string, std::string>> matchers;
    std::string fingerprint;  // Alertmanager's, to lift an "until resolved" silence; may be ""
    std::int64_t seconds = 0; // the silence's length; until resolved: its hard end
    bool until_resolved = false;
    std::int64_t expires = 0; // unix seconds after which the link is refused
};

// A link's payload is at most this many bytes (about 1.4 KB of URL): an alert whose labels take
// more gets no links rather than a message DingTalk refuses.
constexpr std::size_t kMaxLinkPayload = 1024;

// The token for a link, signed with keys.current(); nothing (and why) when keys is empty or the
// link is over kMaxLinkPayload.
std::optional<std::string> encode_link(const ActionLink &link, const ActionKeys &keys,
                                       std::string &error);

enum class LinkError {
    none,
    malformed,   // not a token this module writes
    unknown_key, // its key is no longer (or never was) in the key file
    altered,     // the signature does not match
    expired,
};

struct VerifiedLink {
    LinkError error = LinkError::malformed;
    ActionLink link; // only when error == none
};

// The link a token names, if it was signed by one of keys and has not expired at `now`.
VerifiedLink verify_link(std::string_view token, const ActionKeys &keys, std::int64_t now);

// For the page that refuses a link: what is wrong, in a sentence.
const char *to_string(LinkError e);
// The same, in Chinese, for the pages people read (to_string is for the log).
const char *page_text(LinkError e);

// The confirmation page's form token: "ISSUED.TAG", TAG an HMAC (a purpose of its own) of the
// link's token and the time it was issued, keyed by the key that signed the link. A POST
// without it, or with one for another link, is refused: the page alone can make it. The link
// must have been verified; "" if its key is not in keys.
std::string form_token(std::string_view link_token, const ActionKeys &keys, std::int64_t now);
// True when form was issued for link_token, by form_token(), at most ttl seconds before now.
bool verify_form_token(std::string_view form, std::string_view link_token, const ActionKeys &keys,
                       std::int64_t now, std::int64_t ttl);

// dingtalk_action_url: "" when url can be the public base of the action location (http(s)://,
// ASCII, no spaces, no fragment, 512 bytes at most), else why not.
std::string check_action_url(std::string_view url);

// How long a link may be used after the message that carries it was rendered.
constexpr std::int64_t kActionLinkSeconds = 24 * 3600;

// base + "?l=" + token (or "&l=" when base has a query already). The token is URL-safe.
std::string action_url(std::string_view base, std::string_view token);

std::string base64url(std::string_view data); // RFC 4648 section 5, no padding
bool base64url_decode(std::string_view in, std::string &out);

} // namespace dingtalk
