// The CAs of a PEM bundle, read as verification needs them: a store that holds every CA of the
// system's bundle parsed takes about 1.8 MB; DingTalk's chains need two or three of them.
#pragma once

#include <openssl/x509_vfy.h>

#include <cstddef>
#include <string_view>

namespace dingtalk
{

// Indexes the certificates of `pem` (CERTIFICATE, X509 CERTIFICATE and TRUSTED CERTIFICATE
// blocks) for `store`, keeping their DER; one is parsed into the store when verification first
// asks for its subject, as OpenSSL's hashed-directory lookup does for a CA directory. CRLs go
// to the store at once. Returns the number of certificates found: 0 adds nothing. The store may
// then be shared by threads verifying at once.
std::size_t add_lazy_certificates(X509_STORE *store, std::string_view pem);

} // namespace dingtalk
