// DingTalk robot signing (加签): timestamp + "\n" + secret, HMAC-SHA256 keyed by the secret,
// base64, then URL-encoded for the query string.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace dingtalk
{

std::string hmac_sha256(std::string_view key, std::string_view data); // raw 32 bytes
std::string base64(std::string_view data);
std::string url_encode(std::string_view s); // RFC 3986 unreserved kept, all else %XX
void append_url_encoded(std::string &out, std::string_view s); // the same, onto out

// The "sign" query value for a timestamp in milliseconds since the epoch.
std::string sign(std::string_view secret, std::int64_t timestamp_ms);

// What DingTalk issues: tokens are letters and digits; secrets are "SEC" and 64 hex digits (more
// are accepted, fewer are a secret cut short).
// Anything else is refused before it can reach a URL.
bool valid_token(std::string_view token);
bool valid_secret(std::string_view secret);

// A robot's identity for bookkeeping (rate limits, metrics): the first 16 bytes of the token's
// SHA-256. The token itself never leaves the request.
std::array<unsigned char, 16> robot_key(std::string_view token);

// A webhook body's identity (the first 8 bytes of its SHA-256, never 0): the same notification
// sent again is known by it.
std::uint64_t body_digest(std::string_view body);

// "&timestamp=...&sign=..." for now, or "" without a secret.
std::string signed_query(std::string_view secret);

} // namespace dingtalk
