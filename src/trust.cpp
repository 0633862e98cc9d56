#include "trust.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>
#include <memory>
#include <string>
#include <unordered_map>

namespace dingtalk
{

namespace
{

// DER by the subject's hash (X509_NAME_hash_ex, as a hashed directory names its files).
using Index = std::unordered_multimap<unsigned long, std::string>;

// One PEM block: its type and its DER bytes.
struct Block {
    char *name = nullptr;
    char *header = nullptr;
    unsigned char *data = nullptr;
    long len = 0;
    ~Block() { clear(); }
    bool read(BIO *bio)
    {
        clear();
        return PEM_read_bio(bio, &name, &header, &data, &len) == 1;
    }
    bool is(const char *type) const { return std::strcmp(name, type) == 0; }
    void clear()
    {
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = nullptr;
        data = nullptr;
    }
};

// A certificate, with the trust settings of a TRUSTED CERTIFICATE block if it has them.
X509 *parse(const unsigned char *der, long len)
{
    return d2i_X509_AUX(nullptr, &der, len);
}

void add_certificate(Index &index, const Block &b)
{
    X509 *x = parse(b.data, b.len);
    int ok = 0;
    const unsigned long hash =
        x != nullptr ? X509_NAME_hash_ex(X509_get_subject_name(x), nullptr, nullptr, &ok) : 0;
    if (ok == 1) {
        index.emplace(hash, std::string(reinterpret_cast<const char *>(b.data),
                                        static_cast<std::size_t>(b.len)));
    }
    X509_free(x);
}

void add_crl(X509_STORE *store, const Block &b)
{
    const unsigned char *p = b.data;
    X509_CRL *crl = d2i_X509_CRL(nullptr, &p, b.len);
    if (crl != nullptr) {
        X509_STORE_add_crl(store, crl);
        X509_CRL_free(crl);
    }
}

int borrow(X509_STORE *store, const X509_NAME *name, X509_OBJECT *ret)
{
    if (X509_STORE_lock(store) != 1) {
        return 0;
    }
    const X509_OBJECT *held =
        X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), X509_LU_X509, name);
    X509 *x = held != nullptr ? X509_OBJECT_get0_X509(held) : nullptr;
    const int found = x != nullptr && X509_OBJECT_set1_X509(ret, x) == 1 ? 1 : 0;
    if (found == 1) {
        X509_free(x); // the reference ret took: the store's stands for it
    }
    X509_STORE_unlock(store);
    return found;
}

// Every certificate of the bundle with that subject joins the store (which keeps it for the
// next lookups). `ret` then borrows the store's own object, as OpenSSL's own lookups do:
// X509_STORE_CTX_get_by_subject takes a reference of its own and never frees `ret`. The
// store's, not ours: a thread that looked the same subject up at the same moment may have
// added its copy first, and the store keeps only one (ours is then freed here).
int by_subject(X509_LOOKUP *lookup, X509_LOOKUP_TYPE type, const X509_NAME *name, X509_OBJECT *ret)
{
    const auto *index = static_cast<const Index *>(X509_LOOKUP_get_method_data(lookup));
    int ok = 0;
    const unsigned long hash = X509_NAME_hash_ex(name, nullptr, nullptr, &ok);
    if (type != X509_LU_X509 || index == nullptr || ok != 1) {
        return 0;
    }
    X509_STORE *store = X509_LOOKUP_get_store(lookup);
    bool added = false;
    const auto [first, last] = index->equal_range(hash);
    for (auto it = first; it != last; ++it) {
        X509 *x = parse(reinterpret_cast<const unsigned char *>(it->second.data()),
                        static_cast<long>(it->second.size()));
        if (x != nullptr && X509_NAME_cmp(X509_get_subject_name(x), name) == 0) {
            added = X509_STORE_add_cert(store, x) == 1 || added;
        }
        X509_free(x);
    }
    return added ? borrow(store, name, ret) : 0;
}

void free_index(X509_LOOKUP *lookup)
{
    delete static_cast<Index *>(X509_LOOKUP_get_method_data(lookup));
}

// One for the process, never freed: every store made with it may live until the process ends.
X509_LOOKUP_METHOD *lazy_method()
{
    static X509_LOOKUP_METHOD *const method = [] {
        X509_LOOKUP_METHOD *m = X509_LOOKUP_meth_new("dingtalk lazy PEM bundle");
        if (m != nullptr) {
            X509_LOOKUP_meth_set_get_by_subject(m, by_subject);
            X509_LOOKUP_meth_set_free(m, free_index);
        }
        return m;
    }();
    return method;
}

} // namespace

std::size_t add_lazy_certificates(X509_STORE *store, std::string_view pem)
{
    auto index = std::make_unique<Index>();
    const std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
    for (Block b; bio != nullptr && b.read(bio.get());) {
        // the labels PEM_X509_INFO_read_bio reads certificates under
        if (b.is("CERTIFICATE") || b.is("X509 CERTIFICATE") || b.is("TRUSTED CERTIFICATE")) {
            add_certificate(*index, b);
        } else if (b.is("X509 CRL")) {
            add_crl(store, b);
        }
    }
    ERR_clear_error(); // the end of the bundle reads as "no start line"
    const std::size_t n = index->size();
    X509_LOOKUP_METHOD *method = lazy_method();
    X509_LOOKUP *lookup =
        n > 0 && method != nullptr ? X509_STORE_add_lookup(store, method) : nullptr;
    if (lookup == nullptr || X509_LOOKUP_set_method_data(lookup, index.get()) != 1) {
        return 0;
    }
    index.release(); // the lookup's now, freed with the store
    return n;
}

} // namespace dingtalk
