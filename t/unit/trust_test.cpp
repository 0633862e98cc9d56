// The lazy CA bundle: a chain verifies against it, only the CAs a chain needs are parsed into
// the store, and threads verifying at once against a store that holds nothing yet all succeed
// (each asks for the same CA at the same moment; the store keeps one copy). Certificates in
// certs/: root signed intermediate, intermediate signed leaf, other is unrelated; valid for
// 100 years, no keys kept.
#include "test_util.hpp"
#include "trust.hpp"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using dingtalk::add_lazy_certificates;

namespace
{

std::string cert_text(const std::string &name)
{
    return dingtalk_test::read_file("certs/" + name + ".pem");
}

struct X509Free {
    void operator()(X509 *x) const { X509_free(x); }
};
struct StoreFree {
    void operator()(X509_STORE *s) const { X509_STORE_free(s); }
};
using Cert = std::unique_ptr<X509, X509Free>;
using Store = std::unique_ptr<X509_STORE, StoreFree>;

Cert cert(const std::string &name)
{
    const std::string pem = cert_text(name);
    BIO *bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    Cert x(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr));
    BIO_free(bio);
    return x;
}

// As the sender makes them: the bundle read lazily, the flags libcurl would set.
Store lazy_store(const std::string &bundle)
{
    Store store(X509_STORE_new());
    if (add_lazy_certificates(store.get(), bundle) == 0) {
        return nullptr;
    }
    X509_STORE_set_flags(store.get(), X509_V_FLAG_TRUSTED_FIRST | X509_V_FLAG_PARTIAL_CHAIN);
    return store;
}

// The leaf, with the intermediate as the server sends it, verified against the store.
bool verify(X509_STORE *store, X509 *leaf, X509 *intermediate)
{
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    sk_X509_push(untrusted, intermediate);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    const bool ok =
        X509_STORE_CTX_init(ctx, store, leaf, untrusted) == 1 && X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    return ok;
}

int objects_in(X509_STORE *store)
{
    return sk_X509_OBJECT_num(X509_STORE_get0_objects(store));
}

} // namespace

TEST(LazyCertificates, AChainVerifiesWithItsRootAmongOtherCasAndOnlyTheRootIsParsed)
{
    const Store store = lazy_store(cert_text("other") + cert_text("root"));
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(objects_in(store.get()), 0) << "nothing parsed before a chain asks";
    const Cert leaf = cert("leaf");
    const Cert intermediate = cert("intermediate");
    EXPECT_TRUE(verify(store.get(), leaf.get(), intermediate.get()));
    EXPECT_EQ(objects_in(store.get()), 1) << "the root alone joined the store";
    EXPECT_TRUE(verify(store.get(), leaf.get(), intermediate.get())) << "found there next time";
}

TEST(LazyCertificates, AChainVerifiesWithOnlyItsIntermediateTrusted)
{
    const Store store = lazy_store(cert_text("intermediate"));
    ASSERT_NE(store, nullptr);
    const Cert leaf = cert("leaf");
    const Cert intermediate = cert("intermediate");
    EXPECT_TRUE(verify(store.get(), leaf.get(), intermediate.get()));
}

TEST(LazyCertificates, AChainOfAnotherCaIsRefused)
{
    const Store store = lazy_store(cert_text("other"));
    ASSERT_NE(store, nullptr);
    const Cert leaf = cert("leaf");
    const Cert intermediate = cert("intermediate");
    EXPECT_FALSE(verify(store.get(), leaf.get(), intermediate.get()));
}

TEST(LazyCertificates, ABundleWithoutCertificatesAddsNothing)
{
    Store store(X509_STORE_new());
    EXPECT_EQ(add_lazy_certificates(store.get(), "not a PEM bundle"), 0U);
    EXPECT_EQ(add_lazy_certificates(store.get(), ""), 0U);
    EXPECT_EQ(objects_in(store.get()), 0);
}

TEST(LazyCertificates, ThreadsVerifyingAtOnceAgainstAStoreThatHoldsNothingYetAllSucceed)
{
    const std::string bundle = cert_text("other") + cert_text("root");
    const Cert leaf = cert("leaf");
    const Cert intermediate = cert("intermediate");
    constexpr int kThreads = 8;
    // under valgrind (DINGTALK_SKIP_HUGE), which runs one thread at a time: a few rounds
    const int rounds = std::getenv("DINGTALK_SKIP_HUGE") != nullptr ? 5 : 200;
    std::atomic<int> failed{0};
    for (int round = 0; round < rounds; ++round) {
        const Store store = lazy_store(bundle);
        ASSERT_NE(store, nullptr);
        std::atomic<int> ready{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < kThreads; ++t) {
            threads.emplace_back([&] {
                ++ready;
                while (ready < kThreads) { // all at once at the cold store
                }
                failed += verify(store.get(), leaf.get(), intermediate.get()) ? 0 : 1;
            });
        }
        for (std::thread &t : threads) {
            t.join();
        }
        EXPECT_EQ(objects_in(store.get()), 1) << "one copy of the root, however many looked";
    }
    EXPECT_EQ(failed, 0);
}
