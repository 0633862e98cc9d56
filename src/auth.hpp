// Who may post: the credentials Alertmanager's http_config already speaks, a bearer token
// (authorization) or a user and password (basic_auth), read from files when the configuration
// loads and compared in constant time. Knows nothing of nginx.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dingtalk
{

class Credentials
{
public:
    // One token per line (dingtalk_auth_bearer_file), or one "user:password" per line
    // (dingtalk_auth_basic_file); blank lines and lines starting with # are skipped. Several
    // lines let a credential be rotated without a gap. On failure returns false and sets error
    // to "line N: what is wrong".
    bool add_bearer_file(std::string_view text, std::string &error);
    bool add_basic_file(std::string_view text, std::string &error);

    bool empty() const { return bearer_.empty() && basic_.empty(); }
    bool wants_basic() const { return !basic_.empty(); }

    // The Authorization header's value ("" when there is none) grants access.
    bool allows(std::string_view authorization) const;

private:
    std::vector<std::string> bearer_; // tokens
    std::vector<std::string> basic_;  // "user:password"
};

// Same length and same bytes, in a time that depends on the length only.
bool equal_in_constant_time(std::string_view a, std::string_view b);

// Standard base64 (RFC 4648), padding required; nullopt-like false on anything else.
bool base64_decode(std::string_view in, std::string &out);

} // namespace dingtalk
