// DingTalk robot signing (加签): timestamp + "\n" + secret, HMAC-SHA256 keyed by the secret,
// base64, then URL-encoded for the query string.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace dingtalk
{

std::string hmac_sha256(std::string_view key, std::string_view data); // raw 32 bytes
std::string base64(std::string_view data);
std::string url_encode(std::string_view s); // RFC 3986 unreserved kept, all else %XX

// The "sign" query value for a timestamp in milliseconds since the epoch.
std::string sign(std::string_view secret, std::int64_t timestamp_ms);

// "&timestamp=...&sign=..." for now, or "" without a secret.
std::string signed_query(std::string_view secret);

} // namespace dingtalk
