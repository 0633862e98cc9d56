#!/usr/bin/env bash
# `make run`: nginx with the freshly built module on nginx.conf.example, port 5000, foreground.
#
# With ROBOT_TOKEN set, messages go to DingTalk for real. Without it, a local stand-in on port
# 5001 prints each message in this terminal. Post a sample with scripts/send-sample.sh.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
prefix=$repo/build/run
nginx=${NGINX_BIN:-/usr/sbin/nginx}

mkdir -p "$prefix/logs" "$prefix/modules"
chmod 755 "$repo/build" "$prefix"
cp "$repo/build/ngx_http_dingtalk_module.so" "$prefix/modules/"
conf=$prefix/nginx.conf
cp "$repo/nginx.conf.example" "$conf"

# Temp files inside the prefix, so this also runs without root.
sed -i "s|^http {|http {\n    client_body_temp_path $prefix/body;\n    proxy_temp_path $prefix/proxy;\n    fastcgi_temp_path $prefix/fastcgi;\n    uwsgi_temp_path $prefix/uwsgi;\n    scgi_temp_path $prefix/scgi;|" "$conf"

standin=""
cleanup() { [ -n "$standin" ] && kill "$standin" 2>/dev/null || true; }
trap cleanup EXIT

if [ -z "${ROBOT_TOKEN:-}" ]; then
    echo "ROBOT_TOKEN is not set: demo mode, messages go to a local DingTalk stand-in."
    /usr/bin/python3 "$repo/scripts/dingtalk-standin.py" --port "${STANDIN_PORT:-5001}" &
    standin=$!
    export ROBOT_TOKEN=demo0000token
    sed -i "s|^http {|http {\n    dingtalk_api_url http://127.0.0.1:${STANDIN_PORT:-5001}/robot/send;|" "$conf"
else
    echo "Sending to DingTalk with the robot token from ROBOT_TOKEN."
fi

"$nginx" -t -q -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log"
echo "nginx with ngx_http_dingtalk_module on http://127.0.0.1:5000/ (Ctrl-C stops it)"
echo "  try: scripts/send-sample.sh     log: $prefix/logs/error.log"
"$nginx" -p "$prefix/" -c "$conf" -e "$prefix/logs/error.log" -g "daemon off;" &
nginx_pid=$!
trap 'kill -QUIT $nginx_pid 2>/dev/null; wait $nginx_pid 2>/dev/null; cleanup' EXIT INT TERM
wait $nginx_pid
