#!/bin/sh
# Starts nginx with ngx_http_dingtalk_module in the foreground, as the container's own
# (unprivileged) user.
#
#   ROBOT_TOKEN_FILE   / ROBOT_TOKEN     the robot's access_token (required, unless the
#                                        configuration names its robots itself)
#   ROBOT_SECRET_FILE  / ROBOT_SECRET    its signing secret, SEC... (optional)
#   WEBHOOK_TOKEN_FILE / WEBHOOK_TOKEN   the bearer token Alertmanager sends (required):
#                                        http_config.authorization in its webhook_config
#   NGINX_CONF                           the configuration nginx runs (default
#                                        /etc/nginx/nginx.conf; a Kubernetes ConfigMap mounted
#                                        as a directory, for instance)
#
# A configuration with robots of its own (dingtalk_token_file per location: several robots,
# deploy/kubernetes/multi-target/) needs no ROBOT_TOKEN: the entrypoint then names only the
# bearer token's file (and ROBOT_SECRET's, if set).
#
# Files (mounted Secrets) are named in the configuration and read by nginx; a value from the
# environment is written to a file of its own (0600, in /tmp) and removed from the environment,
# so that no process started later inherits it. Nothing secret is ever printed.
set -eu

nginx_conf=${NGINX_CONF:-/etc/nginx/nginx.conf}
conf=/tmp/dingtalk.d
umask 077
mkdir -p "$conf"
rm -f "$conf"/*

fail() {
    echo "dingtalk: $*" >&2
    exit 1
}

# credential NAME FILE_VAR VALUE_VAR [optional]: the file to read for it, or "" when neither is
# set (or, when optional, the file is not there: a Secret without that key).
credential() {
    eval "file=\${$2:-}; value=\${$3:-}"
    if [ -n "$file" ]; then
        if [ ! -e "$file" ] && [ -n "${4:-}" ]; then
            return 0
        fi
        [ -r "$file" ] || fail "$2: cannot read $file"
        printf '%s' "$file"
    elif [ -n "$value" ]; then
        printf '%s' "$value" | tr -d ' \t\r\n' > "$conf/$1"
        printf '%s' "$conf/$1"
    fi
}

token=$(credential robot-token ROBOT_TOKEN_FILE ROBOT_TOKEN)
secret=$(credential robot-secret ROBOT_SECRET_FILE ROBOT_SECRET optional)
webhook=$(credential webhook-token WEBHOOK_TOKEN_FILE WEBHOOK_TOKEN)
unset ROBOT_TOKEN ROBOT_SECRET WEBHOOK_TOKEN

[ -r "$nginx_conf" ] || fail "NGINX_CONF: cannot read $nginx_conf"
# Robots named by the configuration itself (a token or token file per location)?
own_robots=
if grep -Eq '^[[:space:]]*dingtalk_token(_file)?[[:space:]]' "$nginx_conf"; then
    own_robots=1
fi
[ -n "$token" ] || [ -n "$own_robots" ] ||
    fail "set ROBOT_TOKEN_FILE (or ROBOT_TOKEN) to the robot's access_token" \
        "(or name the robots in $nginx_conf: dingtalk_token_file per location)"
[ -n "$webhook" ] || fail "set WEBHOOK_TOKEN_FILE (or WEBHOOK_TOKEN): the bearer token" \
    "Alertmanager sends (http_config.authorization); only Alertmanager may post here"
# An optional Secret key that is absent leaves an empty file: no signing.
if [ -n "$secret" ] && [ ! -s "$secret" ]; then
    secret=
fi

# Paths go into nginx's configuration: nothing that could end the directive.
for path in "$token" "$secret" "$webhook"; do
    case "$path" in
    *[!A-Za-z0-9_./-]*) fail "credential file paths may hold letters, digits and _ . / - only" ;;
    esac
done
{
    [ -z "$token" ] || echo "dingtalk_token_file $token;"
    [ -z "$secret" ] || echo "dingtalk_secret_file $secret;"
    echo "dingtalk_auth_bearer_file $webhook;"
} > "$conf/credentials.conf"

if [ "$#" -eq 0 ]; then
    # -e: nginx's own error log before it reads the configuration (the default, under /var/log,
    # is not writable here)
    exec nginx -e stderr -c "$nginx_conf" -g 'daemon off;'
fi
exec "$@"
