// The single place that includes Howard Hinnant's date library. Debian builds libdate-tz with
// these definitions (see its CMake config); every user of the library must agree with them, so
// nobody includes <date/...> directly.
#pragma once

#ifndef USE_OS_TZDB
#define USE_OS_TZDB 1
#endif
#ifndef ONLY_C_LOCALE
#define ONLY_C_LOCALE 1
#endif
#ifndef HAS_STRING_VIEW
#define HAS_STRING_VIEW 1
#endif

#include <date/date.h>
#include <date/tz.h>
