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
 && make install DESTDIR=/staging

FROM debian:${DEBIAN}-slim
COPY --from=build /nginx.version /tmp/nginx.version
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "nginx=$(cat /tmp/nginx.version)" libjansson4 libsimdjson14 libcurl4 libssl3 libdate-tz3 tzdata \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default
COPY --from=build /staging/ /
COPY deploy/docker/nginx.conf /etc/nginx/nginx.conf
COPY deploy/docker/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /tmp/dingtalk.d \
 && printf 'dingtalk_token buildcheck0;\n' > /tmp/dingtalk.d/check.conf \
 && nginx -t && rm -rf /tmp/dingtalk.d /tmp/nginx.pid

# 5000: the webhook; 9095: /healthz and /metrics
EXPOSE 5000 9095
USER www-data
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/bin/curl", "-fsS", "http://127.0.0.1:9095/healthz"]
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
