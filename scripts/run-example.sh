#!/usr/bin/env bash
# `make run`: nginx with the freshly built module on nginx.conf.example, in the foreground, on
# 127.0.0.1 port DINGTALK_PORT (default 5000).
#
# With ROBOT_TOKEN set, messages go to DingTalk for real. Without it, a local stand-in on port
# STANDIN_PORT (default 5001) prints each message in this terminal. Post a sample with
# scripts/send-sample.sh (it reads DINGTALK_PORT too).
#
#   DINGTALK_PORT      the port nginx listens on (the example's "listen ...:5000" is changed)
#   STANDIN_PORT       the stand-in's port
#   DINGTALK_CONF      the configuration to run (default: nginx.conf.example)
#   DINGTALK_RUN_DIR   nginx's prefix: its copy of the configuration, logs, temp files
#                      (default: build/run)
#   DINGTALK_MODULE    the module to load (default: build/ngx_http_dingtalk_module.so)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=${DINGTALK_RUN_DIR:-$repo/build/run}
example=${DINGTALK_CONF:-$repo/nginx.conf.example}
module=${DINGTALK_MODULE:-$repo/build/ngx_http_dingtalk_module.so}
nginx=${NGINX_BIN:-/usr/sbin/nginx}
port=${DINGTALK_PORT:-5000}
standin_port=${STANDIN_PORT:-5001}

for p in "$port" "$standin_port"; do
    if ! [[ $p =~ ^[0-9]{1,5}$ ]] || ((10#$p < 1 || 10#$p > 65535)); then
        echo "error: DINGTALK_PORT and STANDIN_PORT are ports, 1 to 65535 (not \"$p\")" >&2
        exit 2
    fi
done
port=$((10#$port)) standin_port=$((10#$standin_port))

mkdir -p "$prefix/logs" "$prefix/modules"
# nginx's workers (nobody, when this runs as root) must reach the prefix
[ -n "${DINGTALK_RUN_DIR:-}" ] || chmod 755 "$repo/build"
chmod 755 "$prefix"
# replaced, never overwritten in place: another nginx may have the old file mapped
cp "$module" "$prefix/modules/.ngx_http_dingtalk_module.so.tmp"
mv -f "$prefix/modules/.ngx_http_dingtalk_module.so.tmp" "$prefix/modules/ngx_http_dingtalk_module.so"
conf=$prefix/nginx.conf
cp "$example" "$conf"

# Relative names in a directive (dingtalk_template templates/oncall.mustache) are from the
# configuration's folder, the prefix here: the repository's templates are found there, as they
# are next to the installed example in /usr/share/ngx-dingtalk.
ln -sfn "$repo/templates" "$prefix/templates"

# The port: each "listen [ADDRESS:]5000" listens on DINGTALK_PORT instead.
sed -i -E "s/^([[:space:]]*listen[[:space:]]+([^;[:space:]]*:)?)5000([;[:space:]])/\1$port\3/" "$conf"
if ! grep -qE "^[[:space:]]*listen[[:space:]]+([^;[:space:]]*:)?$port[;[:space:]]" "$conf"; then
    echo "error: $example has no \"listen [ADDRESS:]5000;\" line for DINGTALK_PORT=$port" >&2
    exit 1
fi

# Temp files inside the prefix, so this also runs without root.
sed -i "s|^http {|http {\n    client_body_temp_path $prefix/body;\n    proxy_temp_path $prefix/proxy;\n    fastcgi_temp_path $prefix/fastcgi;\n    uwsgi_temp_path $prefix/uwsgi;\n    scgi_temp_path $prefix/scgi;|" "$conf"

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

standin=""
nginx_pid=""
stop() {
    if [ -n "$nginx_pid" ]; then
        kill -QUIT "$nginx_pid" 2>/dev/null || true
        wait "$nginx_pid" 2>/dev/null || true
    fi
    if [ -n "$standin" ]; then
        kill "$standin" 2>/dev/null || true
        wait "$standin" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "${ROBOT_TOKEN:-}" ]; then
    echo "ROBOT_TOKEN is not set: demo mode, messages go to a local DingTalk stand-in"
    echo "(over http://, hence nginx's warning about dingtalk_api_url)."
    if listening "$standin_port"; then
        echo "error: port $standin_port is taken; choose another with STANDIN_PORT=" >&2
        exit 1
    fi
    /usr/bin/python3 "$repo/scripts/dingtalk-standin.py" --port "$standin_port" &
    standin=$!
    for _ in $(seq 100); do
        listening "$standin_port" && break
        kill -0 "$standin" 2>/dev/null || { echo "error: the stand-in did not start" >&2; exit 1; }
        sleep 0.1
    done
    export ROBOT_TOKEN=demo0000token
    sed -i "s|^http {|http {\n    dingtalk_api_url http://127.0.0.1:$standin_port/robot/send;|" "$conf"
else
    echo "Sending to DingTalk with the robot token from ROBOT_TOKEN."
fi

# No separate "nginx -t": its warnings would print twice. nginx checks the configuration as it
# starts (warnings once, errors end it here); it writes its pid file once it listens.
rm -f "$prefix/logs/nginx.pid"
"$nginx" -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" -g "daemon off;" &
nginx_pid=$!
for _ in $(seq 100); do
    [ "$(cat "$prefix/logs/nginx.pid" 2>/dev/null)" = "$nginx_pid" ] && break
    if ! kill -0 "$nginx_pid" 2>/dev/null; then
        nginx_pid=""
        echo "error: nginx did not start (log: $prefix/logs/error.log)" >&2
        exit 1
    fi
    sleep 0.1
done

sample=scripts/send-sample.sh
[ "$port" = 5000 ] || sample="DINGTALK_PORT=$port $sample"
echo "nginx with ngx_http_dingtalk_module on http://127.0.0.1:$port/ (Ctrl-C stops it)"
echo "  health: http://127.0.0.1:$port/healthz   metrics: http://127.0.0.1:$port/metrics"
echo "  try: $sample     log: $prefix/logs/error.log"
wait "$nginx_pid"
