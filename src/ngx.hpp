// nginx's C headers, seen from C++. The glue includes this first (nginx sets _FILE_OFFSET_BITS
// and friends), and nothing in the core ever includes it.
#pragma once

static_assert(__cplusplus >= 201703L, "ngx_http_dingtalk_module is C++17");

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#if (nginx_version < 1018000)
#error "ngx_http_dingtalk_module needs nginx 1.18 or newer headers"
#endif

// Without threads the module would load and then silently never send: refuse to build instead.
#if !(NGX_THREADS)
#error "nginx was configured without --with-threads: use Debian's conf_flags (make does)"
#endif

extern "C" {
#include <ngx_thread_pool.h>
}
