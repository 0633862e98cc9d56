// The curl headers as an older libcurl (7.77, the oldest config accepts) would have them, for
// a compile check of the core: a version from before CURLOPT_PROTOCOLS_STR (7.85), and the
// option itself made unusable, so that any use of it outside the version check fails to build.
#pragma once
#include <curl/curl.h>
#undef LIBCURL_VERSION_NUM
#define LIBCURL_VERSION_NUM 0x074d00
#define CURLOPT_PROTOCOLS_STR no_such_option_before_curl_7_85
