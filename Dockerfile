# ngx_http_dingtalk_module in a container: Debian 12's nginx with the module, on port 5000.
#
#   docker build -t dingtalk-hook .
#   docker run -p 5000:5000 --env-file dingtalk.env dingtalk-hook
#
# dingtalk.env holds ROBOT_TOKEN, WEBHOOK_TOKEN (the bearer token Alertmanager sends) and
# optionally ROBOT_SECRET; or mount files and set ROBOT_TOKEN_FILE, WEBHOOK_TOKEN_FILE,
# ROBOT_SECRET_FILE. The container runs as www-data, nginx's master too.
#
# The build stage runs the same steps as CI (scripts/install-deps.sh, then make), so what CI
# tests is what ships.
#
# The module must match the runtime's nginx exactly (same version, same --with-compat
# signature). Two things guarantee it:
#   1. Both stages use the same Debian release, and the build stage records the exact nginx
#      package version it compiled against (/nginx.version); the runtime stage installs
#      precisely that version (apt fails the build if it is gone, rather than mixing them).
#   2. The runtime stage runs "nginx -t" with the module loaded: nginx refuses a module built
#      for another version or signature, so a mismatch fails the image build, never a pod.

#
# Build arguments, for clusters that cannot reach Docker Hub or deb.debian.org:
#   BASE_IMAGE, RUNTIME_IMAGE   the two stages' base images (default debian:bookworm and
#                               debian:bookworm-slim): a mirror of them in your registry. Both
#                               must be the same Debian release (the module is pinned to its
#                               nginx).
#   DEBIAN_MIRROR               a Debian mirror (http://.../debian) apt uses in both stages
#                               instead of deb.debian.org; DEBIAN_SECURITY_MIRROR the same for
#                               deb.debian.org/debian-security. Empty: the base image's own.
#   docker build --build-arg BASE_IMAGE=registry.example/debian:bookworm \
#     --build-arg RUNTIME_IMAGE=registry.example/debian:bookworm-slim \
#     --build-arg DEBIAN_MIRROR=http://mirror.example/debian -t dingtalk-hook .

ARG DEBIAN=bookworm
ARG BASE_IMAGE=debian:${DEBIAN}
ARG RUNTIME_IMAGE=debian:${DEBIAN}-slim

FROM ${BASE_IMAGE} AS build
ARG DEBIAN_MIRROR=
ARG DEBIAN_SECURITY_MIRROR=
WORKDIR /src
COPY scripts/install-deps.sh scripts/apt-mirror.sh scripts/
RUN scripts/apt-mirror.sh "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR" \
 && scripts/install-deps.sh build \
 && dpkg-query -W -f='${Version}' nginx > /nginx.version
COPY . .
RUN make clean && make module tools \
 && make install DESTDIR=/staging \
 && strip --strip-unneeded /staging/usr/lib/nginx/modules/ngx_http_dingtalk_module.so \
      /staging/usr/bin/dingtalk-render

FROM ${RUNTIME_IMAGE} AS runtime
ARG DEBIAN_MIRROR=
ARG DEBIAN_SECURITY_MIRROR=
# Kept in the image: the nginx version the module was built for (an nginx update means a rebuild).
COPY --from=build /nginx.version /usr/share/ngx-dingtalk/nginx.version
COPY --from=build /src/scripts/apt-mirror.sh /tmp/apt-mirror.sh
RUN sh /tmp/apt-mirror.sh "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR" && rm /tmp/apt-mirror.sh \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "nginx=$(cat /usr/share/ngx-dingtalk/nginx.version)" libjansson4 libsimdjson14 libcurl4 libssl3 \
      libdate-tz3 libhiredis0.14 libre2-9 tzdata ca-certificates curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /var/cache/debconf/*-old /etc/nginx/sites-enabled/default
COPY --from=build /staging/ /
COPY deploy/docker/nginx.conf /etc/nginx/nginx.conf
COPY deploy/docker/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# What the container never runs goes: the package manager and the perl its scripts need (the
# image is rebuilt for an update, never upgraded in place), and iproute2 with its libraries
# (Debian's nginx package depends on it for its init script); changelogs and manuals too. The
# copyright files stay, and dpkg's database ("dpkg -l" says what the image holds).
# Then nginx -t, which leaves its pid file and temp directories (root's) behind: /tmp is left
# empty.
RUN set -e; \
    dpkg --purge --force-depends iproute2 libbpf1 libelf1 libxtables12 libmnl0 libcap2-bin; \
    dpkg --purge --force-remove-essential --force-depends apt libapt-pkg6.0 perl-base; \
    rm -rf /usr/share/doc/*/changelog* /usr/share/doc/*/NEWS* /usr/share/info /usr/share/man \
      /usr/share/lintian /var/cache/debconf /var/log/dpkg.log; \
    mkdir -p /tmp/dingtalk.d; \
    printf 'dingtalk_token buildcheck0;\n' > /tmp/dingtalk.d/check.conf; \
    nginx -t; \
    find /tmp -mindepth 1 -delete

# One layer of what is left: files removed above take no room (the base's layer would keep them).
FROM scratch
COPY --from=runtime / /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# 5000: the webhook; 9095: /healthz and /metrics
EXPOSE 5000 9095
USER www-data
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/bin/curl", "-fsS", "http://127.0.0.1:9095/healthz"]
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
