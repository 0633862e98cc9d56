#!/bin/sh
# Starts nginx with ngx_http_dingtalk_module in the foreground.
#
#   ROBOT_TOKEN / ROBOT_TOKEN_FILE     the robot's access_token (required)
#   ROBOT_SECRET / ROBOT_SECRET_FILE   its signing secret, SEC... (optional)
set -eu

if [ -z "${ROBOT_TOKEN:-}" ] && [ -n "${ROBOT_TOKEN_FILE:-}" ]; then
    ROBOT_TOKEN=$(tr -d ' \r\n' < "$ROBOT_TOKEN_FILE")
    export ROBOT_TOKEN
fi
if [ -z "${ROBOT_SECRET:-}" ] && [ -n "${ROBOT_SECRET_FILE:-}" ] && [ -s "$ROBOT_SECRET_FILE" ]; then
    ROBOT_SECRET=$(tr -d ' \r\n' < "$ROBOT_SECRET_FILE")
fi
if [ -z "${ROBOT_TOKEN:-}" ]; then
    echo "dingtalk: set ROBOT_TOKEN (or ROBOT_TOKEN_FILE) to the access_token of the robot's webhook URL" >&2
    exit 1
fi

# The secret becomes a directive in a file only root can read; nginx reads it as root.
mkdir -p /etc/nginx/dingtalk.d
umask 077
if [ -n "${ROBOT_SECRET:-}" ]; then
    printf 'dingtalk_secret %s;\n' "$ROBOT_SECRET" > /etc/nginx/dingtalk.d/secret.conf
else
    rm -f /etc/nginx/dingtalk.d/secret.conf
fi
unset ROBOT_SECRET

if [ "$#" -eq 0 ]; then
    exec nginx -g 'daemon off;'
fi
exec "$@"
