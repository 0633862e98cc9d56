#!/usr/bin/env bash
# Installs the Debian packages a make target needs, if they are missing.
# Usage: scripts/install-deps.sh [all|run|test|bench|image|image-test|...]
set -euo pipefail

build=(make g++ nginx nginx-dev libjansson-dev libcurl4-openssl-dev libssl-dev
       libhowardhinnant-date-dev libkainjow-mustache-dev libsimdjson-dev libhiredis-dev libre2-dev tzdata ca-certificates)
tests=(libgtest-dev python3 python3-pytest python3-yaml openssl curl clang-format clang-tidy valgrind clang golang-go
       libclang-rt-14-dev procps util-linux prometheus prometheus-alertmanager tinyproxy
       redis-server chromium chromium-driver python3-selenium fonts-wqy-microhei)

bench=(wrk libnginx-mod-http-echo libbenchmark-dev python3 openssl procps redis-server)
# make image / image-test: Debian's podman (with runc: crun cannot run in some sandboxes;
# catatonit, the init of the pause container "podman kube play" makes for a pod) and
# mmdebstrap, which makes the Debian base images from the machine's own mirror when no
# registry is reachable; python3-yaml reads the manifests the test plays.
image=(podman runc catatonit mmdebstrap binutils python3 python3-pytest python3-yaml ca-certificates)

case "${1:-all}" in
  test|check) want=("${build[@]}" "${tests[@]}" "${image[@]}") ;;
  unit|integration) want=("${build[@]}" "${tests[@]}") ;;
  bench) want=("${build[@]}" "${bench[@]}") ;;
  run) want=("${build[@]}" python3 curl) ;;
  image|image-test) want=("${image[@]}") ;;
  *) want=("${build[@]}") ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing from Debian: ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# nginx's package would start a system nginx on port 80; we run our own instances instead.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
