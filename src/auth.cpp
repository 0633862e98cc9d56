#include "auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cctype>

namespace dingtalk
{

namespace
{

// Shorter secrets can be guessed: Alertmanager's credentials are generated, so ask for enough.
constexpr std::size_t kShortestSecret = 16;

bool is_token_char(char c)
{
    return c > 0x20 && c < 0x7F; // printable ASCII, no space: what a header value can carry
}

// Calls line(number, text) for every line that is not blank or a comment; stops at the first
// false.
template <class F> bool each_line(std::string_view text, std::string &error, F line)
{
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        const std::size_t end = std::min(text.find('\n'), text.size());
        std::string_view l = text.substr(0, end);
        text.remove_prefix(std::min(end + 1, text.size()));
        while (!l.empty() && std::isspace(static_cast<unsigned char>(l.back()))) {
            l.remove_suffix(1);
        }
        while (!l.empty() && std::isspace(static_cast<unsigned char>(l.front()))) {
            l.remove_prefix(1);
        }
        if (l.empty() || l.front() == '#') {
            continue;
        }
        if (const char *what = line(l)) {
            error = "line " + std::to_string(number) + ": " + what;
            return false;
        }
    }
    return true;
}

bool starts_with_ci(std::string_view s, std::string_view prefix)
{
    if (s.size() < prefix.size()) {
        return false;
    }
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) {
            return false;
        }
    }
    return true;
}

bool any_equal(const std::vector<std::string> &known, std::string_view given)
{
    bool found = false;
    for (const std::string &k : known) {
        found = equal_in_constant_time(k, given) || found; // every one compared, always
    }
    return found;
}

} // namespace

bool Credentials::add_bearer_file(std::string_view text, std::string &error)
{
    const bool ok = each_line(text, error, [this](std::string_view l) -> const char * {
        for (const char c : l) {
            if (!is_token_char(c)) {
                return "a bearer token is printable ASCII without spaces";
            }
        }
        if (l.size() < kShortestSecret) {
            return "a bearer token needs 16 characters at least";
        }
        bearer_.emplace_back(l);
        return nullptr;
    });
    if (ok && bearer_.empty()) {
        error = "no bearer token in the file";
        return false;
    }
    return ok;
}

bool Credentials::add_basic_file(std::string_view text, std::string &error)
{
    const bool ok = each_line(text, error, [this](std::string_view l) -> const char * {
        const std::size_t colon = l.find(':');
        if (colon == 0 || colon == std::string_view::npos) {
            return "not user:password";
        }
        for (const char c : l) {
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
                return "control characters are not allowed";
            }
        }
        if (l.size() - colon - 1 < kShortestSecret) {
            return "a password needs 16 characters at least";
        }
        basic_.emplace_back(l);
        return nullptr;
    });
    if (ok && basic_.empty()) {
        error = "no user:password in the file";
        return false;
    }
    return ok;
}

bool Credentials::allows(std::string_view authorization) const
{
    if (starts_with_ci(authorization, "bearer ")) {
        std::string_view token = authorization.substr(7);
        while (!token.empty() && token.front() == ' ') {
            token.remove_prefix(1);
        }
        return any_equal(bearer_, token);
    }
    if (starts_with_ci(authorization, "basic ")) {
        std::string decoded;
        return base64_decode(authorization.substr(6), decoded) && any_equal(basic_, decoded);
    }
    return false;
}

bool equal_in_constant_time(std::string_view a, std::string_view b)
{
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool base64_decode(std::string_view in, std::string &out)
{
    while (!in.empty() && in.front() == ' ') {
        in.remove_prefix(1);
    }
    if (in.empty() || in.size() % 4 != 0 || in.size() > 4096) {
        return false;
    }
    for (const char c : in) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '/' && c != '=') {
            return false;
        }
    }
    out.assign(in.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(&out[0]),
                                  reinterpret_cast<const unsigned char *>(in.data()),
                                  static_cast<int>(in.size()));
    if (n < 0) {
        return false;
    }
    // EVP_DecodeBlock counts the padding as zero bytes: drop them.
    std::size_t size = static_cast<std::size_t>(n);
    for (std::size_t i = in.size(); i > 0 && in[i - 1] == '='; --i) {
        --size;
    }
    out.resize(size);
    return true;
}

} // namespace dingtalk
