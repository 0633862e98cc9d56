// Credentials from files, checked against the Authorization header as Alertmanager sends it.
#include "auth.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace dingtalk;

namespace
{

const std::string kToken = "s3cr3t-bearer-token-0123456789";

Credentials bearer(const std::string &file)
{
    Credentials c;
    std::string error;
    EXPECT_TRUE(c.add_bearer_file(file, error)) << error;
    return c;
}

} // namespace

TEST(Auth, BearerTokenFromAFile)
{
    const Credentials c =
        bearer("# rotated on 2026-11-30\n" + kToken + "\n\nolder-token-still-valid-42\n");
    EXPECT_TRUE(c.allows("Bearer " + kToken));
    EXPECT_TRUE(c.allows("bearer older-token-still-valid-42")) << "the scheme is case-insensitive";
    EXPECT_FALSE(c.allows("Bearer " + kToken + "x"));
    EXPECT_FALSE(c.allows("Bearer " + kToken.substr(1)));
    EXPECT_FALSE(c.allows(""));
    EXPECT_FALSE(c.allows(kToken));
    EXPECT_FALSE(c.allows("Basic " + kToken));
    EXPECT_FALSE(c.wants_basic());
}

TEST(Auth, BasicUserAndPassword)
{
    Credentials c;
    std::string error;
    ASSERT_TRUE(c.add_basic_file("alertmanager:correct-horse-battery\n", error)) << error;
    // "alertmanager:correct-horse-battery"
    EXPECT_TRUE(c.allows("Basic YWxlcnRtYW5hZ2VyOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ=="));
    // "alertmanager:correct-horse-batterz"
    EXPECT_FALSE(c.allows("Basic YWxlcnRtYW5hZ2VyOmNvcnJlY3QtaG9yc2UtYmF0dGVyeg=="));
    EXPECT_FALSE(c.allows("Basic !!!!"));
    EXPECT_FALSE(c.allows("Basic YWxlcnRtYW5hZ2VyOmNvcnJlY3QtaG9yc2UtYmF0dGVyeQ"));
    EXPECT_TRUE(c.wants_basic());
}

TEST(Auth, WeakOrBrokenFilesAreRefusedWithTheirLine)
{
    struct Case {
        bool basic;
        std::string text, error;
    };
    for (const Case &c : {Case{false, "", "no bearer token in the file"},
                          Case{false, "# only a comment\n", "no bearer token in the file"},
                          Case{false, "short\n", "line 1: a bearer token needs 16 characters"},
                          Case{false, kToken + "\nwith space in it and long\n",
                               "line 2: a bearer token is printable ASCII"},
                          Case{true, "nopassword\n", "line 1: not user:password"},
                          Case{true, ":password-without-a-user\n", "line 1: not user:password"},
                          Case{true, "am:short\n", "line 1: a password needs 16 characters"}}) {
        Credentials cred;
        std::string error;
        EXPECT_FALSE(c.basic ? cred.add_basic_file(c.text, error)
                             : cred.add_bearer_file(c.text, error))
            << c.text;
        EXPECT_EQ(error.substr(0, c.error.size()), c.error) << error;
    }
}

TEST(Auth, Base64)
{
    std::string out;
    ASSERT_TRUE(base64_decode("YWI=", out));
    EXPECT_EQ(out, "ab");
    ASSERT_TRUE(base64_decode("YWJj", out));
    EXPECT_EQ(out, "abc");
    EXPECT_FALSE(base64_decode("YWJ", out));
    EXPECT_FALSE(base64_decode("", out));
    EXPECT_FALSE(base64_decode("YW\nJ", out));
}

TEST(Auth, ConstantTimeCompare)
{
    EXPECT_TRUE(equal_in_constant_time("abc", "abc"));
    EXPECT_FALSE(equal_in_constant_time("abc", "abd"));
    EXPECT_FALSE(equal_in_constant_time("abc", "abcd"));
    EXPECT_TRUE(equal_in_constant_time("", ""));
}
