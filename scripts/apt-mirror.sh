#!/bin/sh
# Points apt at another Debian mirror (the Dockerfile's DEBIAN_MIRROR and
# DEBIAN_SECURITY_MIRROR build arguments): deb.debian.org/debian and
# deb.debian.org/debian-security in the sources apt reads are replaced. Empty: nothing changes.
# Usage: scripts/apt-mirror.sh MIRROR [SECURITY_MIRROR]
set -eu
main=${1:-}
security=${2:-}
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if [ -n "$security" ]; then
        sed -i -E "s#https?://deb\.debian\.org/debian-security/?( |\$)#${security}\1#g" "$f"
    fi
    if [ -n "$main" ]; then
        sed -i -E "s#https?://deb\.debian\.org/debian/?( |\$)#${main}\1#g" "$f"
    fi
done
