#!/bin/bash
# Builds the libFuzzer target over parse_notification + render_message with clang 14 (ASan and
# UBSan, every UBSan finding fatal) into build/fuzz/, and runs it for a while.
#
#   t/fuzz/run.sh [seconds]     default 60
#
# The seed corpus t/fuzz/corpus/ is copied into build/fuzz/corpus/ (which keeps what earlier
# runs found); the repository's corpus is never written. Exits non-zero on a build failure or
# on any crash, leak, sanitizer report or broken invariant; the input that caused it is saved
# as build/fuzz/crash-* (or leak-*, timeout-*, oom-*). Replay one with
#   build/fuzz/fuzz_parse_render build/fuzz/crash-<sha1>
# Needs: clang-14, libclang-rt-14-dev (libFuzzer), libjansson-dev, libcurl4-openssl-dev,
# libssl-dev, libdate-tz-dev, tzdata.
set -euo pipefail

seconds=${1:-60}
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [seconds]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")/../.."
out=build/fuzz
CXX=${CXX:-clang++-14}
# The core's sources, as the Makefile lists them (CORE_SRCS: parsing and rendering need
# alert, render and timezone, and whatever those come to depend on); the three when make cannot tell.
# shellcheck disable=SC2016 # $(CORE_SRCS) is for make, not the shell
core=$(printf 'fuzz-print-core-srcs:\n\t@echo $(CORE_SRCS)\n' |
    make -s --no-print-directory -f Makefile -f - fuzz-print-core-srcs 2>/dev/null || true)
core=${core:-src/alert.cpp src/render.cpp src/timezone.cpp}

mkdir -p "$out/corpus"
# shellcheck disable=SC2086
"$CXX" -std=c++17 -g -O1 -fno-omit-frame-pointer \
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -Werror -Isrc \
    t/fuzz/fuzz_parse_render.cpp $core \
    -o "$out/fuzz_parse_render" \
    -lsimdjson -ljansson -lcurl -lssl -lcrypto -ldate-tz -pthread

cp t/fuzz/corpus/* "$out/corpus/"

# Tokens of Alertmanager's payload and of the JSON corners the parser must survive.
cat > "$out/alertmanager.dict" <<'DICT'
"\"version\""
"\"groupKey\""
"\"truncatedAlerts\""
"\"status\""
"\"receiver\""
"\"groupLabels\""
"\"commonLabels\""
"\"commonAnnotations\""
"\"externalURL\""
"\"alerts\""
"\"labels\""
"\"annotations\""
"\"startsAt\""
"\"endsAt\""
"\"generatorURL\""
"\"fingerprint\""
"\"alertname\""
"\"severity\""
"\"pod\""
"\"pod_name\""
"\"namespace\""
"\"message\""
"\"description\""
"\"summary\""
"\"firing\""
"\"resolved\""
"\"0001-01-01T00:00:00Z\""
"\"2026-11-23T16:04:05.123456789Z\""
"\"9999-12-31T23:59:59-23:59\""
"+08:00"
"T23:59:60Z"
"\"http://x/\""
"\"https://x/\""
"null"
"true"
"false"
"9223372036854775807"
"-1"
"1e308"
"\\u0000"
"\\ud83d\\ude00"
"\\ud800"
"\\u2028"
"\xc2\x85"
"\xe2\x80\xa8"
"\xef\xbb\xbf"
"\xf0\x9f\x94\xa5"
"<script>"
"**"
"\\n# "
"[x](y)"
DICT

# Cost limits: an input may take 2 s (ASan and UBSan slow it several times over the 50 ms goal),
# the process may hold 1 GB, and no allocation may exceed 256 MB; inputs up to 1 MiB.
cd "$out"
DINGTALK_FUZZ_TEMPLATE=../../templates/default.mustache \
    ./fuzz_parse_render -max_total_time="$seconds" -max_len=1048576 -timeout=2 \
    -rss_limit_mb=1024 -malloc_limit_mb=256 -dict=alertmanager.dict -artifact_prefix=./ \
    -print_final_stats=1 corpus
