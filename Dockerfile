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

ARG DEBIAN=bookworm

FROM debian:${DEBIAN} AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh build \
 && dpkg-query -W -f='${Version}' nginx > /nginx.version
COPY . .
RUN make clean && make module tools \
 && make install DESTDIR=/staging \
 && strip --strip-unneeded /staging/usr/lib/nginx/modules/ngx_http_dingtalk_module.so \
      /staging/usr/bin/dingtalk-render

FROM debian:${DEBIAN}-slim
# Kept in the image: the nginx version the module was built for (an nginx update means a rebuild).
COPY --from=build /nginx.version /usr/share/ngx-dingtalk/nginx.version
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "nginx=$(cat /usr/share/ngx-dingtalk/nginx.version)" libjansson4 libsimdjson14 libcurl4 libssl3 \
      libdate-tz3 tzdata ca-certificates curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
      /var/cache/debconf/*-old /etc/nginx/sites-enabled/default
COPY --from=build /staging/ /
COPY deploy/docker/nginx.conf /etc/nginx/nginx.conf
COPY deploy/docker/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
# nginx -t leaves its pid file and temp directories (root's) behind: /tmp is left empty.
RUN mkdir -p /tmp/dingtalk.d \
 && printf 'dingtalk_token buildcheck0;\n' > /tmp/dingtalk.d/check.conf \
 && nginx -t && find /tmp -mindepth 1 -delete

# 5000: the webhook; 9095: /healthz and /metrics
EXPOSE 5000 9095
USER www-data
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/bin/curl", "-fsS", "http://127.0.0.1:9095/healthz"]
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
