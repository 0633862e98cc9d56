#!/usr/bin/env bash
# Builds the container image (make image): with docker where a Docker engine answers, else with
# podman (Docker's image format, so the HEALTHCHECK is kept; runc, which runs where crun cannot).
#
#   IMAGE    the tag to build (default dingtalk-hook:latest)
#   DEBIAN   the Debian release of both stages (default bookworm)
#   ENGINE   docker or podman (default: docker if its engine answers, else podman)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   where mmdebstrap fetches from (default: the
#            mirrors apt uses on this machine for that release, else deb.debian.org); passed
#            to the build as the Dockerfile's build arguments of the same names when set, or
#            when apt on this machine uses a mirror for the release
#   BASE_IMAGE, RUNTIME_IMAGE   the Dockerfile's build arguments (default debian:$DEBIAN and
#            debian:$DEBIAN-slim), passed on when set
#
# With podman, the base images (debian:$DEBIAN and debian:$DEBIAN-slim) are pulled when a
# registry answers; where none does, they are made once from Debian's own mirror with
# mmdebstrap and kept in podman's store, so later builds reuse them.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-dingtalk-hook:latest}
DEBIAN=${DEBIAN:-bookworm}

die() {
    echo "image: $*" >&2
    exit 1
}

engine=${ENGINE:-}
if [ -z "$engine" ]; then
    if command -v docker >/dev/null && timeout 10 docker info >/dev/null 2>&1; then
        engine=docker
    elif command -v podman >/dev/null; then
        engine=podman
    else
        die "neither a Docker engine nor podman: install podman (scripts/install-deps.sh image)"
    fi
fi

# The mirror apt on this machine uses for SUITE, or the default.
mirror_of() {
    local uri
    # shellcheck disable=SC2016 # $(RELEASE) is apt's own field syntax, not the shell's
    uri=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
        awk -v s="$1" '$1 == s { print $2; exit }')
    printf '%s' "${uri:-$2}"
}

# debian:TAG made by mmdebstrap from Debian's mirror (minbase: what debian:TAG holds). The slim
# one leaves out documentation, manuals and locales the way Docker's debian:*-slim does, in the
# image and (dpkg's configuration stays) in whatever is installed on top of it.
make_base() {
    local tag=$1 slim=$2 tar
    local main=${DEBIAN_MIRROR:-$(mirror_of "$DEBIAN" http://deb.debian.org/debian)}
    local security=${DEBIAN_SECURITY_MIRROR:-$(mirror_of "$DEBIAN-security" http://deb.debian.org/debian-security)}
    command -v mmdebstrap >/dev/null || die "no registry answers and mmdebstrap is missing: scripts/install-deps.sh image"
    # merged /usr as debootstrap (and Docker's debian images) make it: usr-is-merged, not the
    # usrmerge package, which would pull in perl
    local opts=(--variant=minbase --skip=output/dev --quiet --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
    if [ "$slim" = slim ]; then
        local dir
        for dir in doc man groff info lintian linda locale; do
            opts+=("--dpkgopt=path-exclude=/usr/share/$dir/*")
        done
        opts+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")
    fi
    tar=$(mktemp --suffix=.tar)
    echo "image: making docker.io/library/debian:$tag with mmdebstrap from $main and $security"
    mmdebstrap "${opts[@]}" "$DEBIAN" "$tar" \
        "deb $main $DEBIAN main" "deb $main $DEBIAN-updates main" "deb $security $DEBIAN-security main" ||
        { rm -f "$tar"; die "mmdebstrap failed for debian:$tag"; }
    podman import --quiet --change 'CMD ["bash"]' "$tar" "docker.io/library/debian:$tag" >/dev/null
    rm -f "$tar"
}

base_image() {
    local tag=$1 slim=$2
    podman image exists "docker.io/library/debian:$tag" && return 0
    if [ -z "${IMAGE_NO_PULL:-}" ] &&
        timeout 60 podman pull --quiet "docker.io/library/debian:$tag" >/dev/null 2>&1; then
        return 0
    fi
    IMAGE_NO_PULL=1 # one registry that does not answer is enough to know
    make_base "$tag" "$slim"
}

# The Dockerfile's build arguments: the Debian mirror where it is known, the base images if set.
main_mirror=${DEBIAN_MIRROR:-$(mirror_of "$DEBIAN" "")}
security_mirror=${DEBIAN_SECURITY_MIRROR:-$(mirror_of "$DEBIAN-security" "")}
build_args=(--build-arg "DEBIAN=$DEBIAN")
[ -z "$main_mirror" ] || build_args+=(--build-arg "DEBIAN_MIRROR=${main_mirror%/}")
[ -z "$security_mirror" ] || build_args+=(--build-arg "DEBIAN_SECURITY_MIRROR=${security_mirror%/}")
[ -z "${BASE_IMAGE:-}" ] || build_args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
[ -z "${RUNTIME_IMAGE:-}" ] || build_args+=(--build-arg "RUNTIME_IMAGE=$RUNTIME_IMAGE")

start=$(date +%s)
case "$engine" in
docker)
    docker build "${build_args[@]}" -t "$IMAGE" .
    ;;
podman)
    if [ -z "${BASE_IMAGE:-}${RUNTIME_IMAGE:-}" ]; then
        base_image "$DEBIAN" full
        base_image "$DEBIAN-slim" slim
    fi
    # --network host: the RUN steps reach the Debian mirror as the machine does.
    podman build --format docker --runtime runc --network host --pull=never \
        --ulimit nofile=20000:20000 --ulimit nproc=32768:32768 \
        "${build_args[@]}" -t "$IMAGE" .
    ;;
*) die "ENGINE must be docker or podman, not $engine" ;;
esac
size=$("$engine" image inspect --format '{{.Size}}' "$IMAGE")
echo "image: built $IMAGE with $engine in $(($(date +%s) - start)) s: $((size / 1000000)) MB"
