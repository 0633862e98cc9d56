"""The Deployment's container run roughly the way a kubelet would run it, with
unshare/chroot/setpriv: a read-only root, its emptyDirs, its ConfigMap directory and its Secret's
files, as its user with no capabilities and no_new_privs, in a network namespace of its own.
It must start, answer its probes and metrics, refuse a webhook without the bearer token and
take one with it, and quit on SIGQUIT within its grace period. The manifests themselves are
checked statically in t/static/."""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "static"))
from harness import MODULE, SECRET, TOKEN, world_readable_tmpdir  # noqa: E402
from k8s import (  # noqa: E402
    REPO, container, deployment, dockerfile_entrypoint, load, main_directive, named_port,
    nginx_conf, nginx_conf_path, pod_spec, secret_keys, secret_mount, uncommented)


@pytest.fixture(scope="module")
def manifests():
    return load()


POD_SCRIPT = r"""
set -eu
R=$1; W=$2; shift 2          # then the container's environment, one NAME=value each
mount --rbind / "$R"
mount -o remount,bind,ro "$R"                         # readOnlyRootFilesystem
# the image's own files, where the Dockerfile and "make install" put them
mount -t tmpfs -o mode=755 tmpfs "$R/etc/nginx"
cp "$W/image-nginx.conf" "$R/etc/nginx/nginx.conf"
mount -t tmpfs -o mode=755 tmpfs "$R/usr/lib/nginx/modules"
cp "$W/module.so" "$R/usr/lib/nginx/modules/ngx_http_dingtalk_module.so"
mount -t tmpfs -o mode=755 tmpfs "$R/$(dirname "$ENTRYPOINT")"
cp "$W/entrypoint.sh" "$R$ENTRYPOINT"; chmod 755 "$R$ENTRYPOINT"
mount -t tmpfs -o mode=755 tmpfs "$R/run"             # the image's /run: empty
mkdir -p "$R$SECRET_MOUNT" "$R$CONFIG_DIR"
for p in $EMPTYDIRS; do mkdir -p "$R$p"; done          # mount points, as the runtime makes
mount -o remount,ro "$R/etc/nginx"; mount -o remount,ro "$R/usr/lib/nginx/modules"
mount -o remount,ro "$R/$(dirname "$ENTRYPOINT")"
# the pod's volumes: emptyDirs, the Secret (owner root, group fsGroup, mode + group read, as a
# kubelet makes it), the ConfigMap as a directory
for p in $EMPTYDIRS; do mount -t tmpfs -o mode=1777 tmpfs "$R$p"; done
mount -t tmpfs -o mode=755 tmpfs "$R$SECRET_MOUNT"
for f in "$W"/secret/*; do
    cp "$f" "$R$SECRET_MOUNT/"; chown "0:$FS_GROUP" "$R$SECRET_MOUNT/${f##*/}"
    chmod "$SECRET_MODE" "$R$SECRET_MOUNT/${f##*/}"
done
mount -o remount,ro "$R$SECRET_MOUNT"
mount -t tmpfs -o mode=755 tmpfs "$R$CONFIG_DIR"
cp "$W/configmap-nginx.conf" "$R$CONFIG_DIR/$CONFIG_FILE"
mount -o remount,ro "$R$CONFIG_DIR"
ip link set lo up

chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$@" setpriv --reuid "$RUN_AS" --regid "$RUN_AS" --groups "$FS_GROUP" $NO_NEW_PRIVS \
    --bounding-set -all --inh-caps -all --ambient-caps -all \
    "$ENTRYPOINT" > "$W/out" 2>&1 &
pod=$!
trap 'kill -KILL $pod $(ps -o pid= --ppid $pod) 2>/dev/null || true' EXIT

up=0; deadline=$(( $(date +%s) + 10 ))               # ready within 10 s, or not at all
while [ "$(date +%s)" -lt $deadline ]; do
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$PROBE_PORT$READY_PATH"; then up=1; break; fi
    kill -0 $pod 2>/dev/null || break
    sleep 0.1
done
echo "up=$up"
[ $up = 1 ] || exit 0
probe() { curl -s -m 5 -H 'Connection: close' -o "$W/body" -w '%{http_code}' "$@" || echo 000; }
hook="http://localhost:$PORT/"
body='{"alerts":[]}'
echo "ready=$(probe http://127.0.0.1:$PROBE_PORT$READY_PATH) $(head -c 200 "$W/body")"
echo "live=$(probe http://127.0.0.1:$PROBE_PORT$LIVE_PATH)"
metrics=$(probe http://127.0.0.1:$METRICS_PORT$METRICS_PATH)
echo "metrics=$metrics $(grep -c '^dingtalk_' "$W/body")"
echo "anonymous=$(probe -X POST -H 'Content-Type: application/json' -d "$body" $hook)"
echo "webhook=$(probe -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BEARER" -d "$body" $hook) $(head -c 200 "$W/body")"
echo "rebound=$(probe -X POST -H 'Host: evil.example' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BEARER" -d "$body" http://127.0.0.1:$PORT/)"
echo "master_pid=$pod pidfile=$(cat "$R$PID_FILE")"
echo "master_uid=$(ps -o uid= -p $pod | tr -d ' ')"
echo "worker_uids=$(ps -o uid= --ppid $pod | tr -d ' ' | sort -u | tr '\n' ' ')"
echo "cap_eff=$(awk '/^CapEff/ {print $2}' /proc/$pod/status)"
echo "no_new_privs=$(awk '/^NoNewPrivs/ {print $2}' /proc/$pod/status)"
echo "credentials=$(stat -c '%a %u' "$R$CREDENTIALS") $(tr '\n' ' ' < "$R$CREDENTIALS")"
echo "environ_clean=$(tr '\0' '\n' < /proc/$pod/environ | grep -c -e "$ROBOT_TOKEN_VALUE" \
    -e "$BEARER" || true)"
echo "root_writable=$(touch "$R/etc/nginx/x" 2>/dev/null && echo yes || echo no)"

start=$(date +%s)
kill -QUIT $pod
i=0                                                   # at most the grace period, then KILL
while [ $i -lt $((GRACE * 10)) ]; do
    state=$(awk '{print $3}' /proc/$pod/stat 2>/dev/null || echo gone)
    [ "$state" = Z ] || [ "$state" = gone ] && break
    sleep 0.1; i=$((i + 1))
done
kill -KILL $pod 2>/dev/null || true
rc=0; wait $pod || rc=$?
echo "quit_rc=$rc quit_seconds=$(( $(date +%s) - start ))"
"""


def can_simulate_a_pod():
    if os.geteuid() != 0:
        return "needs root (mount namespaces, chroot)"
    for tool in ("unshare", "chroot", "setpriv", "ip", "curl", "ps"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.isdir("/usr/lib/nginx/modules") or not os.path.isdir("/usr/share/nginx"):
        return "Debian's nginx layout is missing"
    p = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True)
    if p.returncode != 0:
        return "unshare --mount --net is not permitted here"
    return None


def pod_env(m, w):
    """The Secret's keys as the files its volume makes, and the env that names them."""
    secret = os.path.join(w, "secret")
    os.mkdir(secret)
    values = {"token": TOKEN, "secret": SECRET, "webhook-token": "w" * 48}
    assert set(values) == secret_keys(m)
    for key, value in values.items():
        with open(os.path.join(secret, key), "w") as f:
            f.write(value + "\n")  # kubectl create secret --from-file keeps a newline
    env = [f"{e['name']}={e['value']}" for e in container(m)["env"]]
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):  # make integration-asan
        env.append("LD_PRELOAD=" + os.environ["DINGTALK_NGINX_PRELOAD"])
        env += [f"{k}={os.environ[k]}" for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")
                if k in os.environ]
    return values, env


def run_pod(m, w, root, values, env):
    c, spec = container(m), pod_spec(m)
    sc, psc = c["securityContext"], spec["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    emptydirs = [mt["mountPath"] for mt in c["volumeMounts"] if "emptyDir" in volumes[mt["name"]]]
    config_dir, config_file = nginx_conf_path(m).rsplit("/", 1)
    secret_path, secret_volume = secret_mount(m)
    ann = deployment(m)["spec"]["template"]["metadata"]["annotations"]
    conf = nginx_conf(m)
    include_dir = re.search(r"^\s*include\s+(\S+)/\*\.conf", uncommented(conf), re.M).group(1)
    assert not sc["capabilities"].get("add"), "the simulation grants no capability"
    script_env = dict(
        os.environ, ENTRYPOINT=dockerfile_entrypoint(m), EMPTYDIRS=" ".join(emptydirs),
        CONFIG_DIR=config_dir, CONFIG_FILE=config_file, SECRET_MOUNT=secret_path,
        SECRET_MODE=oct(secret_volume["secret"]["defaultMode"] | 0o040)[2:],
        RUN_AS=str(psc["runAsUser"]), FS_GROUP=str(psc["fsGroup"]),
        NO_NEW_PRIVS="--no-new-privs" if sc.get("allowPrivilegeEscalation") is False else "",
        PORT=str(named_port(c, "http")),
        PROBE_PORT=str(named_port(c, c["readinessProbe"]["httpGet"]["port"])),
        READY_PATH=c["readinessProbe"]["httpGet"]["path"],
        LIVE_PATH=c["livenessProbe"]["httpGet"]["path"],
        METRICS_PORT=ann["prometheus.io/port"], METRICS_PATH=ann["prometheus.io/path"],
        GRACE=str(spec["terminationGracePeriodSeconds"]), PID_FILE=main_directive(conf, "pid"),
        CREDENTIALS=include_dir + "/credentials.conf", BEARER=values["webhook-token"],
        ROBOT_TOKEN_VALUE=values["token"])
    # its own process group: whatever happens, everything it started is killed at the end
    proc = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private",
                             "sh", os.path.join(w, "pod.sh"), root, w, *env],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=script_env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=spec["terminationGracePeriodSeconds"] + 30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_deployment_container_runs_like_a_pod(manifests):
    """The image's files (module, entrypoint, nginx.conf) on a read-only copy of this root,
    the Deployment's emptyDirs as tmpfs, the ConfigMap as a directory where NGINX_CONF is, the
    Secret's keys as files owned by root and readable through fsGroup, the pod's user with no
    capabilities and no_new_privs; the real entrypoint starts nginx. No cluster, no image:
    roughly what a kubelet and runc do, enough to catch a file the user cannot read, a
    capability it lacks or a write to the root."""
    why = can_simulate_a_pod()
    if why:
        pytest.skip(why)
    m = manifests
    spec, conf = pod_spec(m), nginx_conf(m)
    w = world_readable_tmpdir("dingtalk-pod-")
    root = tempfile.mkdtemp(prefix="dingtalk-pod-root-", dir="/tmp")
    shutil.copy(os.path.join(REPO, "deploy/docker/nginx.conf"), os.path.join(w, "image-nginx.conf"))
    shutil.copy(MODULE, os.path.join(w, "module.so"))
    shutil.copy(os.path.join(REPO, "deploy/docker/docker-entrypoint.sh"),
                os.path.join(w, "entrypoint.sh"))
    with open(os.path.join(w, "configmap-nginx.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(w, "pod.sh"), "w") as f:
        f.write(POD_SCRIPT)
    try:
        values, env = pod_env(m, w)
        p = run_pod(m, w, root, values, env)
        out = open(os.path.join(w, "out")).read() if os.path.exists(os.path.join(w, "out")) else ""
        report = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        context = f"script: {p.stdout}\n{p.stderr}\ncontainer output:\n{out}"
        assert p.returncode == 0, context
        assert report.get("up") == "1", context
        assert report["ready"].startswith("200 ") and '"ok":true' in report["ready"], context
        assert report["live"] == "200", context
        status, lines = report["metrics"].split()
        assert status == "200" and int(lines) > 0, context
        assert report["anonymous"] == "401", context
        assert report["webhook"].startswith("400 ") and "alerts" in report["webhook"], context
        assert report["rebound"] == "421", context
        pid, pidfile = re.fullmatch(r"(\d+) pidfile=(\d+)", report["master_pid"]).groups()
        assert pid == pidfile, "the entrypoint exec'd nginx: the container's process is the master"
        uid = str(spec["securityContext"]["runAsUser"])
        assert report["master_uid"] == uid and report["worker_uids"].split() == [uid], context
        assert int(report["cap_eff"], 16) == 0, context
        assert report["no_new_privs"] == "1", context
        mode_owner, written = report["credentials"].split(" ", 2)[:2], report["credentials"]
        assert mode_owner == ["600", uid], context
        assert TOKEN not in written and SECRET not in written, "paths only, never the values"
        assert report["environ_clean"] == "0", "no credential in nginx's environment"
        assert report["root_writable"] == "no", context
        rc, took = re.fullmatch(r"(\d+) quit_seconds=(\d+)", report["quit_rc"]).groups()
        assert rc == "0" and int(took) < spec["terminationGracePeriodSeconds"], context
        for level in ("[alert]", "[crit]", "[emerg]"):
            assert level not in out, context
        assert "gracefully shutting down" in out, context
    finally:
        shutil.rmtree(w, ignore_errors=True)
        try:
            os.rmdir(root)
        except OSError:
            pass
