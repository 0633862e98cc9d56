#!/bin/sh
# Starts nginx with ngx_http_dingtalk_module in the foreground.
#
#   ROBOT_TOKEN / ROBOT_TOKEN_FILE     the robot's access_token (required)
#   ROBOT_SECRET / ROBOT_SECRET_FILE   its signing secret, SEC... (optional)
set -eu

# Kubernetes passes a Secret's value as is: a trailing newline (kubectl --from-file, echo) would
# make the token invalid, so whitespace is dropped wherever the value comes from.
if [ -z "${ROBOT_TOKEN:-}" ] && [ -n "${ROBOT_TOKEN_FILE:-}" ]; then
    ROBOT_TOKEN=$(cat "$ROBOT_TOKEN_FILE")
fi
if [ -z "${ROBOT_SECRET:-}" ] && [ -n "${ROBOT_SECRET_FILE:-}" ] && [ -s "$ROBOT_SECRET_FILE" ]; then
    ROBOT_SECRET=$(cat "$ROBOT_SECRET_FILE")
fi
ROBOT_TOKEN=$(printf '%s' "${ROBOT_TOKEN:-}" | tr -d ' \t\r\n')
ROBOT_SECRET=$(printf '%s' "${ROBOT_SECRET:-}" | tr -d ' \t\r\n')
export ROBOT_TOKEN

if [ -z "$ROBOT_TOKEN" ]; then
    echo "dingtalk: set ROBOT_TOKEN (or ROBOT_TOKEN_FILE) to the access_token of the robot's webhook URL" >&2
    exit 1
fi
case "$ROBOT_TOKEN" in
*[!A-Za-z0-9]*)
    echo "dingtalk: ROBOT_TOKEN is not a DingTalk robot token (letters and digits only)" >&2
    exit 1
    ;;
esac
# The secret goes into nginx's configuration: only "SEC" and hex digits, nothing that could
# end the directive and add another.
case "$ROBOT_SECRET" in
'' | SEC*) ;;
*)
    echo "dingtalk: ROBOT_SECRET must start with SEC (the robot's signing secret)" >&2
    exit 1
    ;;
esac
case "${ROBOT_SECRET#SEC}" in
*[!0-9A-Fa-f]*)
    echo "dingtalk: ROBOT_SECRET is not SEC followed by hex digits" >&2
    exit 1
    ;;
esac

# The secret becomes a directive in a file only root can read; nginx reads it as root.
mkdir -p /etc/nginx/dingtalk.d
umask 077
if [ -n "$ROBOT_SECRET" ]; then
    printf 'dingtalk_secret %s;\n' "$ROBOT_SECRET" > /etc/nginx/dingtalk.d/secret.conf
else
    rm -f /etc/nginx/dingtalk.d/secret.conf
fi
unset ROBOT_SECRET

if [ "$#" -eq 0 ]; then
    exec nginx -g 'daemon off;'
fi
exec "$@"
