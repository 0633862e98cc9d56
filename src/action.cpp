#include "action.hpp"

#include "auth.hpp"
#include "sign.hpp"

#include <cctype>
#include <exception>

namespace dingtalk
{

namespace
{

constexpr unsigned char kVersion = 1;
constexpr std::size_t kTagBytes = 16; // 128 bits of HMAC-SHA256: ample for a MAC, short in a URL
constexpr std::size_t kShortestKey = 32;
constexpr std::size_t kLongestKeyId = 16;
constexpr std::string_view kLinkPurpose = "dingtalk-action-link-v1\n";
constexpr std::string_view kFormPurpose = "dingtalk-action-form-v1\n";

bool key_id_char(char c)
{
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

bool valid_key_id(std::string_view id)
{
    if (id.empty() || id.size() > kLongestKeyId) {
        return false;
    }
    for (const char c : id) {
        if (!key_id_char(c)) {
            return false;
        }
    }
    return true;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) {
        s.remove_prefix(1);
    }
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) {
        s.remove_suffix(1);
    }
    return s;
}

// What is wrong with one line of the key file, or nullptr.
const char *parse_key_line(std::string_view line, ActionKey &key)
{
    const std::size_t space = line.find_first_of(" \t");
    if (space == std::string_view::npos) {
        return "expected \"ID SECRET\"";
    }
    const std::string_view id = line.substr(0, space);
    const std::string_view secret = trim(line.substr(space));
    if (!valid_key_id(id)) {
        return "the key id must be 1 to 16 letters, digits, '_' or '-'";
    }
    if (secret.size() < kShortestKey) {
        return "the secret is shorter than 32 characters";
    }
    if (secret.find_first_of(" \t") != std::string_view::npos) {
        return "the secret contains a space";
    }
    key.id = std::string(id);
    key.secret = std::string(secret);
    return nullptr;
}

void put_varint(std::string &out, std::uint64_t v)
{
    while (v >= 0x80) {
        out.push_back(static_cast<char>((v & 0x7F) | 0x80));
        v >>= 7;
    }
    out.push_back(static_cast<char>(v));
}

void put_string(std::string &out, std::string_view s)
{
    put_varint(out, s.size());
    out.append(s);
}

// Reads the payload's fields in order; any read past the end or out of range fails the whole.
class Reader
{
public:
    explicit Reader(std::string_view in) : in_(in) {}

    bool varint(std::uint64_t &v)
    {
        v = 0;
        for (int shift = 0; shift < 63 && !in_.empty(); shift += 7) {
            const auto b = static_cast<unsigned char>(in_.front());
            in_.remove_prefix(1);
            v |= static_cast<std::uint64_t>(b & 0x7F) << shift;
            if ((b & 0x80) == 0) {
                return true;
            }
        }
        return false;
    }

    bool string(std::string &s)
    {
        std::uint64_t n = 0;
        if (!varint(n) || n > in_.size()) {
            return false;
        }
        s.assign(in_.substr(0, n));
        in_.remove_prefix(n);
        return true;
    }

    bool done() const { return in_.empty(); }

private:
    std::string_view in_;
};

std::string payload_of(const ActionLink &link)
{
    std::string out;
    out.push_back(static_cast<char>(kVersion));
    put_varint(out, static_cast<std::uint64_t>(link.expires));
    out.push_back(link.until_resolved ? 1 : 0);
    put_varint(out, static_cast<std::uint64_t>(link.seconds));
    put_string(out, link.fingerprint);
    put_varint(out, link.matchers.size());
    for (const auto &[name, value] : link.matchers) {
        put_string(out, name);
        put_string(out, value);
    }
    return out;
}

bool read_matchers(Reader &r, ActionLink &link)
{
    std::uint64_t n = 0;
    if (!r.varint(n) || n > kMaxLinkPayload) {
        return false;
    }
    for (std::uint64_t i = 0; i < n; ++i) {
        std::string name, value;
        if (!r.string(name) || !r.string(value) || name.empty()) {
            return false;
        }
        link.matchers.emplace_back(std::move(name), std::move(value));
    }
    return !link.matchers.empty();
}

bool parse_payload(std::string_view payload, ActionLink &link)
{
    if (payload.size() < 2 || static_cast<unsigned char>(payload[0]) != kVersion) {
        return false;
    }
    Reader r(payload.substr(1));
    std::uint64_t expires = 0, flags = 0, seconds = 0;
    // flags is one byte below 0x80, so reading it as a varint is the same
    if (!r.varint(expires) || !r.varint(flags) || flags > 1 || !r.varint(seconds) ||
        !r.string(link.fingerprint) || !read_matchers(r, link) || !r.done()) {
        return false;
    }
    link.expires = static_cast<std::int64_t>(expires & 0x7FFFFFFFFFFFFFFF);
    link.seconds = static_cast<std::int64_t>(seconds & 0x7FFFFFFFFFFFFFFF);
    link.until_resolved = flags == 1;
    return true;
}

std::string tag(std::string_view purpose, const ActionKey &key, std::string_view a,
                std::string_view b)
{
    std::string data(purpose);
    data.append(a).push_back('\n');
    data.append(b);
    return hmac_sha256(key.secret, data).substr(0, kTagBytes);
}

struct Parts {
    std::string_view key_id, payload, tag;
};

std::optional<Parts> split(std::string_view token)
{
    const std::size_t first = token.find('.');
    const std::size_t second = token.find('.', first == std::string_view::npos ? 0 : first + 1);
    if (first == std::string_view::npos || second == std::string_view::npos ||
        token.find('.', second + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    return Parts{token.substr(0, first), token.substr(first + 1, second - first - 1),
                 token.substr(second + 1)};
}

// The link's key, or nullptr when the token is not a link's.
const ActionKey *link_key(std::string_view link_token, const ActionKeys &keys)
{
    const auto parts = split(link_token);
    return parts ? keys.find(parts->key_id) : nullptr;
}

} // namespace

bool ActionKeys::add_file(std::string_view text, std::string &error)
{
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const std::size_t end = std::min(text.find('\n'), text.size());
        const std::string_view line = trim(text.substr(0, end));
        text.remove_prefix(std::min(end + 1, text.size()));
        if (line.empty() || line.front() == '#') {
            continue;
        }
        ActionKey key;
        const char *what = parse_key_line(line, key);
        if (what == nullptr && find(key.id) != nullptr) {
            what = "the key id is used twice";
        }
        if (what != nullptr) {
            error = "line " + std::to_string(number) + ": " + what;
            return false;
        }
        keys_.push_back(std::move(key));
    }
    if (keys_.empty()) {
        error = "no key in the file";
        return false;
    }
    return true;
}

const ActionKey *ActionKeys::find(std::string_view id) const
{
    for (const ActionKey &k : keys_) {
        if (k.id == id) {
            return &k;
        }
    }
    return nullptr;
}

std::optional<std::string> encode_link(const ActionLink &link, const ActionKeys &keys,
                                       std::string &error)
{
    if (keys.empty()) {
        error = "no action key";
        return std::nullopt;
    }
    if (link.matchers.empty() || link.expires < 0 || link.seconds <= 0) {
        error = "a link needs a matcher, an expiry and a duration";
        return std::nullopt;
    }
    const std::string payload = payload_of(link);
    if (payload.size() > kMaxLinkPayload) {
        error = "the alert's labels take over " + std::to_string(kMaxLinkPayload) + " bytes";
        return std::nullopt;
    }
    const ActionKey &key = keys.current();
    const std::string body = base64url(payload);
    return key.id + "." + body + "." + base64url(tag(kLinkPurpose, key, key.id, body));
}

VerifiedLink verify_link(std::string_view token, const ActionKeys &keys, std::int64_t now)
{
    VerifiedLink out;
    const auto parts = split(token);
    if (!parts || parts->payload.size() > 2 * kMaxLinkPayload) {
        return out; // malformed
    }
    const ActionKey *key = keys.find(parts->key_id);
    if (key == nullptr) {
        out.error = LinkError::unknown_key;
        return out;
    }
    std::string given, payload;
    if (!base64url_decode(parts->tag, given) || !base64url_decode(parts->payload, payload)) {
        return out;
    }
    if (!equal_in_constant_time(given, tag(kLinkPurpose, *key, parts->key_id, parts->payload))) {
        out.error = LinkError::altered;
        return out;
    }
    if (!parse_payload(payload, out.link)) {
        out.link = ActionLink{};
        return out; // signed by us, yet unreadable: a version this build does not know
    }
    out.error = now > out.link.expires ? LinkError::expired : LinkError::none;
    return out;
}

const char *to_string(LinkError e)
{
    switch (e) {
    case LinkError::none:
        return "the link is valid";
    case LinkError::malformed:
        return "this is not a complete action link: it may have been cut when it was copied";
    case LinkError::unknown_key:
        return "the link was signed with a key that is no longer accepted";
    case LinkError::altered:
        return "the link was altered: its signature does not match";
    case LinkError::expired:
        return "the link has expired: use the links of a newer message";
    }
    return "unknown";
}

const char *page_text(LinkError e)
{
    switch (e) {
    case LinkError::none:
        return "链接有效。";
    case LinkError::malformed:
        return "这不是完整的操作链接：复制时可能被截断了。";
    case LinkError::unknown_key:
        return "签发这个链接的密钥已不再有效。";
    case LinkError::altered:
        return "链接被改动过：签名不符。";
    case LinkError::expired:
        return "链接已过期：请使用较新消息里的链接。";
    }
    return "链接无效。";
}

std::string form_token(std::string_view link_token, const ActionKeys &keys, std::int64_t now)
{
    const ActionKey *key = link_key(link_token, keys);
    if (key == nullptr) {
        return "";
    }
    const std::string issued = std::to_string(now);
    return issued + "." + base64url(tag(kFormPurpose, *key, issued, link_token));
}

bool verify_form_token(std::string_view form, std::string_view link_token, const ActionKeys &keys,
                       std::int64_t now, std::int64_t ttl)
{
    const ActionKey *key = link_key(link_token, keys);
    const std::size_t dot = form.find('.');
    if (key == nullptr || dot == std::string_view::npos || dot == 0 || dot > 19) {
        return false;
    }
    const std::string_view issued = form.substr(0, dot);
    for (const char c : issued) {
        if (c < '0' || c > '9') {
            return false;
        }
    }
    std::string given;
    if (!base64url_decode(form.substr(dot + 1), given) ||
        !equal_in_constant_time(given, tag(kFormPurpose, *key, issued, link_token))) {
        return false;
    }
    std::int64_t at = 0;
    try {
        at = std::stoll(std::string(issued));
    } catch (const std::exception &) {
        return false;
    }
    return at <= now && now - at <= ttl;
}

std::string check_action_url(std::string_view url)
{
    const bool http = url.rfind("http://", 0) == 0 && url.size() > 7;
    const bool https = url.rfind("https://", 0) == 0 && url.size() > 8;
    if (!http && !https) {
        return "must be an http:// or https:// URL";
    }
    if (url.size() > 512) {
        return "must be 512 bytes at most";
    }
    for (const char c : url) {
        const auto b = static_cast<unsigned char>(c);
        if (b <= 0x20 || b >= 0x7F || c == '#') {
            return "must be a URL without spaces, fragments or non-ASCII bytes";
        }
        if (c == '(' || c == ')' || c == '[' || c == ']' || c == '<' || c == '>') {
            return "must not contain ( ) [ ] < or > (they would end the markdown link)";
        }
    }
    return "";
}

std::string action_url(std::string_view base, std::string_view token)
{
    std::string url(base);
    url.append(base.find('?') == std::string_view::npos ? "?l=" : "&l=");
    url.append(token);
    return url;
}

std::string base64url(std::string_view data)
{
    std::string out = base64(data);
    while (!out.empty() && out.back() == '=') {
        out.pop_back();
    }
    for (char &c : out) {
        c = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    return out;
}

bool base64url_decode(std::string_view in, std::string &out)
{
    if (in.size() % 4 == 1) {
        return false;
    }
    std::string standard(in);
    for (char &c : standard) {
        if (c == '+' || c == '/' || c == '=') {
            return false; // one spelling only: a token means one link
        }
        c = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    standard.append((4 - standard.size() % 4) % 4, '=');
    // the unused low bits of the last character must be zero too
    return base64_decode(standard, out) && base64url(out) == in;
}

} // namespace dingtalk
