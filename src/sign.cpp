#include "sign.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>

namespace dingtalk
{

std::string hmac_sha256(std::string_view key, std::string_view data)
{
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
             reinterpret_cast<const unsigned char *>(data.data()), data.size(), out,
             &len) == nullptr) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return std::string(reinterpret_cast<const char *>(out), len);
}

std::string base64(std::string_view data)
{
    std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                                  reinterpret_cast<const unsigned char *>(data.data()),
                                  static_cast<int>(data.size()));
    out.resize(n < 0 ? 0 : static_cast<std::size_t>(n));
    return out;
}

namespace
{

// RFC 3986's unreserved characters: the bytes url_encode leaves as they are.
constexpr std::array<bool, 256> kUnreserved = [] {
    std::array<bool, 256> keep{};
    for (std::size_t c = 0; c < 256; ++c) {
        keep[c] = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.' || c == '~';
    }
    return keep;
}();

} // namespace

void append_url_encoded(std::string &out, std::string_view s)
{
    static const char hex[] = "0123456789ABCDEF";
    const std::size_t at = out.size();
    out.resize(at + s.size() * 3); // the most it can take; cut to what it took
    char *p = out.data() + at;
    for (const char ch : s) {
        const unsigned char c = static_cast<unsigned char>(ch);
        if (kUnreserved[c]) {
            *p++ = ch;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 0xF];
        }
    }
    out.resize(static_cast<std::size_t>(p - out.data()));
}

std::string url_encode(std::string_view s)
{
    std::string out;
    append_url_encoded(out, s);
    return out;
}

std::string sign(std::string_view secret, std::int64_t timestamp_ms)
{
    const std::string to_sign = std::to_string(timestamp_ms) + "\n" + std::string(secret);
    return url_encode(base64(hmac_sha256(secret, to_sign)));
}

bool valid_token(std::string_view t)
{
    return !t.empty() && std::all_of(t.begin(), t.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
}

bool valid_secret(std::string_view s)
{
    // DingTalk's are 64 hex digits: fewer is a secret cut short when it was copied.
    return s.size() >= 3 + 64 && s.size() <= 3 + 256 && s.substr(0, 3) == "SEC" &&
           std::all_of(s.begin() + 3, s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
}

namespace
{

template <std::size_t N> std::array<unsigned char, N> sha256_prefix(std::string_view data)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 failed");
    }
    std::array<unsigned char, N> prefix{};
    std::copy(digest, digest + N, prefix.begin());
    return prefix;
}

} // namespace

std::array<unsigned char, 16> robot_key(std::string_view token)
{
    return sha256_prefix<16>(token);
}

std::uint64_t body_digest(std::string_view body)
{
    const auto prefix = sha256_prefix<8>(body);
    std::uint64_t d = 0;
    for (const unsigned char c : prefix) {
        d = (d << 8) | c;
    }
    return d != 0 ? d : 1; // 0 means "none" where digests are kept
}

std::string signed_query(std::string_view secret)
{
    if (secret.empty()) {
        return "";
    }
    const std::int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
    return "&timestamp=" + std::to_string(now) + "&sign=" + sign(secret, now);
}

} // namespace dingtalk
