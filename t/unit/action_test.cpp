// Signed action links: what they carry, and every way a link is refused.
#include "action.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;

namespace
{

const std::string kFirst = "k2 0123456789abcdef0123456789abcdef-new\n";
const std::string kSecond = "k1 fedcba9876543210fedcba9876543210-old\n";

ActionKeys keys_of(const std::string &text)
{
    ActionKeys keys;
    std::string error;
    EXPECT_TRUE(keys.add_file(text, error)) << error;
    return keys;
}

ActionLink sample_link()
{
    ActionLink link;
    link.matchers = {{"alertname", "KubePodCrashLooping"},
                     {"namespace", "kube-ops"},
                     {"pod", "api-0 \"quoted\" <b>&"}};
    link.fingerprint = "3ed2f3b1a2c4d5e6";
    link.seconds = 7200;
    link.expires = 1'800'000'000;
    return link;
}

std::string encode(const ActionLink &link, const ActionKeys &keys)
{
    std::string error;
    const auto token = encode_link(link, keys, error);
    EXPECT_TRUE(token) << error;
    return token.value_or("");
}

bool url_safe(const std::string &s)
{
    for (const char c : s) {
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
            return false;
        }
    }
    return true;
}

} // namespace

TEST(ActionKeys, FirstKeySignsAndEveryLineIsAKey)
{
    const ActionKeys keys = keys_of("# rotation\n\n" + kFirst + kSecond);
    EXPECT_EQ(keys.current().id, "k2");
    ASSERT_NE(keys.find("k1"), nullptr);
    EXPECT_EQ(keys.find("k3"), nullptr);
}

TEST(ActionKeys, BadLinesSayWhichAndNeverShowTheSecret)
{
    const std::pair<std::string, std::string> cases[] = {
        {"k1\n", "line 1: expected \"ID SECRET\""},
        {"\nk1 short-secret\n", "line 2: the secret is shorter than 32 characters"},
        {"k/1 0123456789abcdef0123456789abcdef\n", "line 1: the key id must be"},
        {kFirst + kFirst, "line 2: the key id is used twice"},
        {"# nothing\n", "no key in the file"},
    };
    for (const auto &[text, expected] : cases) {
        ActionKeys keys;
        std::string error;
        EXPECT_FALSE(keys.add_file(text, error)) << text;
        EXPECT_EQ(error.rfind(expected, 0), 0u) << error;
        EXPECT_EQ(error.find("0123456789abcdef"), std::string::npos) << error;
    }
}

TEST(ActionLink, RoundTripsEveryField)
{
    const ActionKeys keys = keys_of(kFirst);
    ActionLink link = sample_link();
    link.until_resolved = true;
    const std::string token = encode(link, keys);
    EXPECT_TRUE(url_safe(token)) << token;
    EXPECT_EQ(token.rfind("k2.", 0), 0u);

    const VerifiedLink v = verify_link(token, keys, link.expires);
    ASSERT_EQ(v.error, LinkError::none) << to_string(v.error);
    EXPECT_EQ(v.link.matchers, link.matchers);
    EXPECT_EQ(v.link.fingerprint, link.fingerprint);
    EXPECT_EQ(v.link.seconds, 7200);
    EXPECT_EQ(v.link.expires, link.expires);
    EXPECT_TRUE(v.link.until_resolved);
}

TEST(ActionLink, AnyKeyOfTheFileVerifiesForRotation)
{
    const std::string old_token = encode(sample_link(), keys_of(kSecond));
    const ActionKeys rotated = keys_of(kFirst + kSecond);
    EXPECT_EQ(verify_link(old_token, rotated, 0).error, LinkError::none);
    EXPECT_EQ(verify_link(old_token, keys_of(kFirst), 0).error, LinkError::unknown_key);
}

TEST(ActionLink, AlteredLinksAreRefused)
{
    const ActionKeys keys = keys_of(kFirst + kSecond);
    const std::string token = encode(sample_link(), keys);
    const std::size_t payload_at = token.find('.') + 1;
    for (std::size_t i = payload_at; i < token.size(); ++i) {
        if (token[i] == '.') {
            continue;
        }
        std::string altered = token;
        altered[i] = altered[i] == 'A' ? 'B' : 'A';
        const LinkError e = verify_link(altered, keys, 0).error;
        EXPECT_TRUE(e == LinkError::altered || e == LinkError::malformed) << i;
    }
    // the same payload, claimed to be signed by the other key
    EXPECT_EQ(verify_link("k1" + token.substr(2), keys, 0).error, LinkError::altered);
}

TEST(ActionLink, ALinkFromAnotherKeyWithTheSameIdIsAltered)
{
    const std::string token = encode(sample_link(), keys_of(kFirst));
    const ActionKeys other = keys_of("k2 another-secret-of-at-least-32-bytes!!\n");
    EXPECT_EQ(verify_link(token, other, 0).error, LinkError::altered);
}

TEST(ActionLink, ExpiredLinksAreRefused)
{
    const ActionKeys keys = keys_of(kFirst);
    const ActionLink link = sample_link();
    const std::string token = encode(link, keys);
    EXPECT_EQ(verify_link(token, keys, link.expires).error, LinkError::none);
    EXPECT_EQ(verify_link(token, keys, link.expires + 1).error, LinkError::expired);
}

TEST(ActionLink, MalformedTokensAreRefused)
{
    const ActionKeys keys = keys_of(kFirst);
    const std::string token = encode(sample_link(), keys);
    for (const std::string &bad :
         {std::string(), std::string("k2"), std::string("k2.."), token + ".x", token + "=",
          token.substr(0, token.size() - 3), std::string("k2.") + std::string(5000, 'A') + ".AA"}) {
        const LinkError e = verify_link(bad, keys, 0).error;
        EXPECT_TRUE(e == LinkError::malformed || e == LinkError::altered) << bad;
    }
}

TEST(ActionLink, SizeIsBounded)
{
    const ActionKeys keys = keys_of(kFirst);
    ActionLink link = sample_link();
    link.matchers.emplace_back("huge", std::string(kMaxLinkPayload, 'x'));
    std::string error;
    EXPECT_FALSE(encode_link(link, keys, error));
    EXPECT_NE(error.find("1024 bytes"), std::string::npos) << error;

    EXPECT_FALSE(encode_link(sample_link(), ActionKeys{}, error));
    ActionLink empty = sample_link();
    empty.matchers.clear();
    EXPECT_FALSE(encode_link(empty, keys, error));
}

TEST(ActionLink, TypicalLinksAreShort)
{
    const std::string token = encode(sample_link(), keys_of(kFirst));
    EXPECT_LT(token.size(), 200u) << token;
}

TEST(ActionUrl, AppendsTheTokenAsAQueryArgument)
{
    EXPECT_EQ(action_url("https://hook.example.com/dingtalk/action", "k.p.t"),
              "https://hook.example.com/dingtalk/action?l=k.p.t");
    EXPECT_EQ(action_url("https://h/a?x=1", "k.p.t"), "https://h/a?x=1&l=k.p.t");
}

TEST(FormToken, BoundToTheLinkAndTheKeyAndTime)
{
    const ActionKeys keys = keys_of(kFirst + kSecond);
    const std::string link = encode(sample_link(), keys);
    ActionLink other_alert = sample_link();
    other_alert.seconds = 86400;
    const std::string other = encode(other_alert, keys);

    const std::string form = form_token(link, keys, 1000);
    ASSERT_FALSE(form.empty());
    EXPECT_TRUE(verify_form_token(form, link, keys, 1000, 900));
    EXPECT_TRUE(verify_form_token(form, link, keys, 1900, 900));
    EXPECT_FALSE(verify_form_token(form, link, keys, 1901, 900)) << "too old";
    EXPECT_FALSE(verify_form_token(form, link, keys, 999, 900)) << "from the future";
    EXPECT_FALSE(verify_form_token(form, other, keys, 1000, 900)) << "another link";
    EXPECT_FALSE(verify_form_token("", link, keys, 1000, 900));
    std::string forged = form;
    forged[8] = forged[8] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(verify_form_token(forged, link, keys, 1000, 900));
    EXPECT_FALSE(verify_form_token("999" + form.substr(4), link, keys, 1000, 900)) << "re-dated";
    EXPECT_FALSE(verify_form_token(form, link, keys_of("k2 " + std::string(40, 'z')), 1000, 900))
        << "another secret";
    EXPECT_EQ(form_token("not-a-link", keys, 1000), "");
}

TEST(Base64Url, RoundTripsAndRefusesOtherSpellings)
{
    for (const std::string &s : {std::string("a"), std::string("ab"), std::string("abc"),
                                 std::string("\xff\xfe\xfd\x00", 4)}) {
        std::string back;
        EXPECT_TRUE(base64url_decode(base64url(s), back));
        EXPECT_EQ(back, s);
    }
    std::string out;
    EXPECT_FALSE(base64url_decode("ab+c", out));
    EXPECT_FALSE(base64url_decode("abc=", out));
    EXPECT_FALSE(base64url_decode("abcde", out));
    EXPECT_TRUE(base64url_decode("QQ", out));
    EXPECT_FALSE(base64url_decode("QR", out)) << "unused bits set: another spelling of QQ";
}

TEST(ActionUrl, CheckedForTheDirective)
{
    EXPECT_EQ(check_action_url("https://hook.example.com/dingtalk/action"), "");
    EXPECT_EQ(check_action_url("http://10.0.0.1:5000/action?robot=ops"), "");
    EXPECT_EQ(check_action_url("ftp://x/"), "must be an http:// or https:// URL");
    EXPECT_EQ(check_action_url("https://"), "must be an http:// or https:// URL");
    EXPECT_NE(check_action_url("https://h/a b"), "");
    EXPECT_NE(check_action_url("https://h/a#top"), "");
    EXPECT_NE(check_action_url("https://h/" + std::string(600, 'a')), "");
}

TEST(ActionUrl, NothingThatWouldEndAMarkdownLink)
{
    for (const char *url : {"https://h/a(b)", "https://h/[x]", "https://h/<x>"}) {
        EXPECT_NE(check_action_url(url), "") << url;
    }
}
