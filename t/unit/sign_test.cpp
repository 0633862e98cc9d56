// DingTalk signing (加签) against vectors computed independently with openssl(1) and python3.
#include "sign.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <regex>
#include <string>

using namespace dingtalk;

namespace
{

// A secret of the shape DingTalk hands out: "SEC" and 64 hex digits (67 bytes, so longer than
// SHA-256's 64-byte block: HMAC hashes the key first).
const std::string kSecret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

std::string hex(const std::string &raw)
{
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (const char ch : raw) {
        const unsigned char c = static_cast<unsigned char>(ch);
        out += digits[c >> 4];
        out += digits[c & 0xF];
    }
    return out;
}

std::int64_t now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

TEST(HmacSha256, KnownVectors)
{
    // printf 'what do ya want for nothing?' | openssl dgst -sha256 -hmac Jefe -hex
    EXPECT_EQ(hex(hmac_sha256("Jefe", "what do ya want for nothing?")),
              "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    // printf 'The quick brown fox jumps over the lazy dog' | openssl dgst -sha256 -hmac key -hex
    EXPECT_EQ(hex(hmac_sha256("key", "The quick brown fox jumps over the lazy dog")),
              "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
    // printf '' | openssl dgst -sha256 -hmac '' -hex
    EXPECT_EQ(hex(hmac_sha256("", "")),
              "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    // printf 'Hi There' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0b0b...0b (20 bytes) -hex
    EXPECT_EQ(hex(hmac_sha256(std::string(20, '\x0b'), "Hi There")),
              "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    // python3: hmac.new('密钥'.encode(), '数据'.encode(), hashlib.sha256).hexdigest()
    EXPECT_EQ(hex(hmac_sha256("密钥", "数据")),
              "3a6a24a2a7b7f98e5be6100bf436c715bb7c028103cd8f33637af6c425df73cb");
}

TEST(HmacSha256, KeyLongerThanTheBlockAndEmbeddedNul)
{
    // printf '1700000000000\n%s' "$S" | openssl dgst -sha256 -hmac "$S" -hex   (S = kSecret)
    EXPECT_EQ(hex(hmac_sha256(kSecret, "1700000000000\n" + kSecret)),
              "6d3818db20db7a9fb07ac4bb8ca88d8feb2bb07a000c44b8f82e1ff0b08716d5");
    const std::string raw = hmac_sha256("k", std::string("a\0b", 3));
    EXPECT_EQ(raw.size(), 32u);
    EXPECT_NE(raw, hmac_sha256("k", "a"));
}

TEST(Base64, Rfc4648Vectors)
{
    // for s in "" f fo foo foob fooba foobar; do printf '%s' "$s" | base64; done
    EXPECT_EQ(base64(""), "");
    EXPECT_EQ(base64("f"), "Zg==");
    EXPECT_EQ(base64("fo"), "Zm8=");
    EXPECT_EQ(base64("foo"), "Zm9v");
    EXPECT_EQ(base64("foob"), "Zm9vYg==");
    EXPECT_EQ(base64("fooba"), "Zm9vYmE=");
    EXPECT_EQ(base64("foobar"), "Zm9vYmFy");
}

TEST(Base64, PlusSlashAndBinary)
{
    // printf '\xfb\xff\xbf' | base64; printf '\xfb\xef' | base64
    EXPECT_EQ(base64("\xfb\xff\xbf"), "+/+/");
    EXPECT_EQ(base64("\xfb\xef"), "++8=");
    EXPECT_EQ(base64(std::string(1, '\0')), "AA==");
    // A 32-byte digest is 44 characters with one '=' and no line breaks.
    const std::string b = base64(std::string(32, '\xff'));
    EXPECT_EQ(b.size(), 44u);
    EXPECT_EQ(b.find('\n'), std::string::npos);
    EXPECT_EQ(b.back(), '=');
}

TEST(UrlEncode, KeepsOnlyUnreserved)
{
    // python3: urllib.parse.quote(s.encode(), safe='-_.~')
    EXPECT_EQ(url_encode("abcXYZ019-_.~"), "abcXYZ019-_.~");
    EXPECT_EQ(url_encode("a b+c/d=e&f?g"), "a%20b%2Bc%2Fd%3De%26f%3Fg");
    EXPECT_EQ(url_encode("钉钉告警 a+b"), "%E9%92%89%E9%92%89%E5%91%8A%E8%AD%A6%20a%2Bb");
    EXPECT_EQ(url_encode(std::string("\0\x7f\xff%", 4)), "%00%7F%FF%25");
    EXPECT_EQ(url_encode("SEC+/="), "SEC%2B%2F%3D");
    EXPECT_EQ(url_encode(""), "");
}

TEST(Sign, MatchesPythonReference)
{
    // python3 -c 'import hmac,hashlib,base64,urllib.parse as u; s=b"SEC0123...cdef";
    //   ts=1700000000000; print(u.quote_plus(base64.b64encode(
    //   hmac.new(s, b"%d\n%s" % (ts, s), hashlib.sha256).digest())))'
    // base64 is bTgY2yDbep+wesS7jKiNj+srsHoADES4+C4f8LCHFtU= ('+' and '=' must be encoded)
    EXPECT_EQ(sign(kSecret, 1700000000000), "bTgY2yDbep%2BwesS7jKiNj%2BsrsHoADES4%2BC4f8LCHFtU%3D");
    // ts=1700000000004: base64 ZeaJlNY30xUaF/p+hFzRR5gZ4qFj+i4uxCJUEwchUXQ= (a '/' as well)
    EXPECT_EQ(sign(kSecret, 1700000000004), "ZeaJlNY30xUaF%2Fp%2BhFzRR5gZ4qFj%2Bi4uxCJUEwchUXQ%3D");
    // the same with s=b"SECshort", ts=1732345678901
    EXPECT_EQ(sign("SECshort", 1732345678901), "XCJBXRw1uGrVTSvvRNmBTYP2BSkJscOHLy2Yxxvloa8%3D");
}

TEST(Sign, NoRawBase64SpecialsInTheQueryValue)
{
    for (std::int64_t ts = 1700000000000; ts < 1700000000020; ++ts) {
        const std::string s = sign(kSecret, ts);
        EXPECT_EQ(s.find_first_of("+/="), std::string::npos) << s;
        EXPECT_NE(s.find("%3D"), std::string::npos) << s;
    }
    EXPECT_NE(sign(kSecret, 1700000000000), sign(kSecret, 1700000000001));
    EXPECT_NE(sign(kSecret, 1700000000000), sign(kSecret + "0", 1700000000000));
}

TEST(SignedQuery, EmptyWithoutASecret)
{
    EXPECT_EQ(signed_query(""), "");
}

TEST(SignedQuery, TimestampIsNowAndSignMatchesIt)
{
    const std::int64_t before = now_ms();
    const std::string q = signed_query(kSecret);
    const std::int64_t after = now_ms();

    std::smatch m;
    ASSERT_TRUE(std::regex_match(q, m, std::regex(R"(&timestamp=(\d{13})&sign=([A-Za-z0-9%]+))")))
        << q;
    const std::int64_t ts = std::stoll(m[1].str());
    EXPECT_GE(ts, before - 2000);
    EXPECT_LE(ts, after + 2000);
    EXPECT_EQ(m[2].str(), sign(kSecret, ts));
    EXPECT_EQ(q.find(kSecret), std::string::npos) << "the secret itself must not be sent";
}

TEST(Credentials, TokensAreLettersAndDigits)
{
    EXPECT_TRUE(valid_token("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
    EXPECT_TRUE(valid_token("AbC123"));
    for (const char *bad : {"", "abc def", "abc&x=1", "abc#", "tok/../x", "abc\n", "令牌", "*"}) {
        EXPECT_FALSE(valid_token(bad)) << bad;
    }
}

TEST(Credentials, SecretsAreSecAndHex)
{
    EXPECT_TRUE(valid_secret(kSecret));
    EXPECT_TRUE(valid_secret("SEC" + std::string(64, 'A')));
    EXPECT_TRUE(valid_secret("SEC" + std::string(80, 'f'))) << "a longer one some day";
    for (const std::string &bad : std::vector<std::string>{
             "", "SEC", "sec0123", "SEC012g", "0123abcd", "SEC01 23", "SEC+/=", "SECABCDEF0",
             kSecret.substr(0, kSecret.size() - 1), "SEC" + std::string(257, '0')}) {
        EXPECT_FALSE(valid_secret(bad)) << bad << " (" << bad.size() << " bytes)";
    }
}
