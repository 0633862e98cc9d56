#!/usr/bin/env bash
# The front door on a fresh Debian 12 machine: installs what the chosen target needs from
# Debian's repositories (only the missing packages; sudo when not root), then runs make.
#
#   ./dev.sh run     build the module and start nginx with it (README "Quick start")
#   ./dev.sh test    build everything from scratch and run every test
#   ./dev.sh <make target> ...
set -euo pipefail
cd "$(dirname "$0")"

target=${1:-all}
scripts/install-deps.sh "$target"
exec make "$@"
