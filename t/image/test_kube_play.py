"""deploy/kubernetes/ played as pods with `podman kube play`, with the image just built
(make image-test): the single-target Deployment, the Alertmanager-sidecar variant and the
multi-target example, each on the host's network (test traffic stays on 127.0.0.1), its
webhook on 127.0.0.1:5000 and its probes on 127.0.0.1:9095 as shipped.

What the test changes in its temp copy of the manifests, and why (deploy/kubernetes/README.md,
"What podman 4.3 cannot play"):
- the ConfigMap's nginx.conf gets `dingtalk_api_url <the stand-in on 127.0.0.1>` in its http
  block: deliveries go to the DingTalk stand-in, not to DingTalk;
- the Secret's values are test values, given as `data` in plain text: podman 4.3 ignores
  `stringData`, and checks that each `data` value is base64 but writes it to its file as it
  is, undecoded. So a value must be valid base64 text itself: the hex tokens and an
  alphanumeric bearer token of 48 characters are, a signing secret (SEC + 64 hex digits, 67
  characters) is not, and the played pods run without the optional `secret` key, unsigned
  (test_image.py tests signing with the same image);
- `ports` are left out of the containers, and the probes' named ports replaced by their
  numbers: podman refuses a containerPort with --network host;
- the image is the tag under test (IMAGE), not the manifests' `dingtalk-hook:latest`;
- the sidecar: the Alertmanager resource is prometheus-operator's, which podman cannot play,
  and no Alertmanager image is reachable here: its nginx container and volumes are played as
  a Pod of their own, with kube-prometheus's pod securityContext (uid 1000, fsGroup 2000);
- multi-target: kustomize's configMapGenerator is rendered first (kubectl kustomize where it
  is installed, else t/static/kustomize_lite.py), as `kubectl apply -k` would.

podman runs the containers with runc and the ulimits test_image.py uses, through a
containers.conf of the test's own (CONTAINERS_CONF): kube play has no --ulimit.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "static"))
from harness import TOKEN, MockDingTalk, alert, notification  # noqa: E402
from kustomize_lite import render  # noqa: E402
from test_image import IMAGE, unavailable  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(REPO, "deploy", "kubernetes")
HOOK, HEALTH = 5000, 9095  # as shipped: the pod is on the host's network
WEBHOOK = "w3bh00k" + "b" * 41  # valid base64 text, as podman 4.3 needs (module docstring)
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""


@pytest.fixture(scope="module", autouse=True)
def podman_runs():
    why = unavailable()
    if not why and not shutil.which("catatonit"):
        why = "catatonit is missing: kube play cannot make a pod's pause container"
    if why:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the pods cannot be played: {why}")
        pytest.skip(f"SKIPPED LOUDLY: the Kubernetes manifests are not played: {why}")


def load(*names, directory=K8S):
    docs = []
    for name in names:
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    return docs


def of_kind(docs, kind):
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


def port_in_use(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def for_podman(docs, mock, secrets):
    """The temp copy's changes (module docstring), on docs in place."""
    for d in docs:
        if d["kind"] == "ConfigMap":
            for key, conf in d["data"].items():
                if key.endswith(".conf"):
                    assert conf.count("\nhttp {\n") == 1, key
                    d["data"][key] = conf.replace(
                        "\nhttp {\n", f"\nhttp {{\n    dingtalk_api_url {mock.url};   # test\n")
        elif d["kind"] == "Secret":
            keys = set(d.get("stringData") or {}) | set(d.get("data") or {})
            assert set(secrets) <= keys, (secrets, keys)
            d.pop("stringData", None)
            d["data"] = dict(secrets)
        elif d["kind"] in ("Deployment", "Pod"):
            spec = d["spec"]["template"]["spec"] if d["kind"] == "Deployment" else d["spec"]
            assert not spec.get("hostNetwork"), "the manifests do not ask for the host's network"
            for c in spec["containers"]:
                c["image"] = IMAGE
                named = {p["name"]: p["containerPort"] for p in c.pop("ports", [])}
                for probe in ("readinessProbe", "livenessProbe"):
                    get = c[probe]["httpGet"]
                    get["port"] = named.get(get["port"], get["port"])
    return docs


class Pod:
    """The docs played by podman kube play --network host, torn down afterwards."""

    def __init__(self, docs, workdir):
        self.docs = docs
        self.dir = workdir
        self.file = os.path.join(workdir, "play.yaml")
        with open(self.file, "w") as f:
            yaml.safe_dump_all(docs, f)
        conf = os.path.join(workdir, "containers.conf")
        with open(conf, "w") as f:
            f.write(CONTAINERS_CONF)
        self.env = dict(os.environ, CONTAINERS_CONF=conf)
        self.secrets = [d["metadata"]["name"] for d in docs if d["kind"] == "Secret"]
        self.volumes = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
        workload = next(d for d in docs if d["kind"] in ("Deployment", "Pod"))
        self.pod = workload["metadata"]["name"] + ("-pod-0" if workload["kind"] == "Deployment"
                                                   else "")
        self.spec = (workload["spec"]["template"]["spec"] if workload["kind"] == "Deployment"
                     else workload["spec"])
        self.container = f"{self.pod}-{self.spec['containers'][0]['name']}"

    def run(self, *args, timeout=120):
        return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def clean(self):
        self.run("kube", "down", self.file)
        self.run("pod", "rm", "-f", "-t", "0", self.pod)
        for s in self.secrets:
            self.run("secret", "rm", s)
        # podman keeps a named volume per ConfigMap and per Secret: a later play would find
        # the files of an earlier one there
        for v in self.volumes + self.secrets:
            self.run("volume", "rm", "-f", v)

    def __enter__(self):
        self.clean()  # what a crashed run may have left
        for port in (HOOK, HEALTH):
            if port_in_use(port):
                pytest.fail(f"127.0.0.1:{port} is taken: the played pod listens there, as shipped")
        started = time.time()
        p = self.run("kube", "play", "--network", "host", self.file)
        if p.returncode != 0:
            self.clean()
            pytest.fail(f"podman kube play failed:\n{p.stdout}\n{p.stderr}")
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get(HEALTH, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if self.state() not in ("running", "created", "configured", ""):
                break
            time.sleep(0.2)
        self.start_seconds = time.time() - started
        if self.state() != "running":
            logs = self.logs()
            self.clean()
            pytest.fail(f"the pod did not start ({self.state()}):\n{logs}")
        return self

    def __exit__(self, *exc):
        self.clean()

    def state(self):
        p = self.run("inspect", "--format", "{{.State.Status}}", self.container)
        return p.stdout.strip()

    def logs(self):
        p = self.run("logs", self.container)
        return p.stdout + p.stderr

    def exec(self, *cmd):
        return self.run("exec", self.container, *cmd)


def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return r.status, r.read().decode()


def post(path, body, token=WEBHOOK, timeout=30):
    headers = {"Content-Type": "application/json", "Host": "localhost"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(f"http://127.0.0.1:{HOOK}{path}", data=json.dumps(body).encode(),
                                 method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def check_pod(pod, uid):
    """What every played pod must show: the probes' paths answer, podman's health check (made
    from the livenessProbe) passes, nginx runs as the pod's user, the root is read-only and
    /metrics answers; a webhook without the bearer token is refused."""
    c = pod.spec["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        got = c[probe]["httpGet"]
        status, body = get(got["port"], got["path"])
        assert status == 200 and '"ok":true' in body, (probe, status, body)
    deadline, p = time.time() + 15, None
    while time.time() < deadline:  # podman's health check: the livenessProbe, with curl
        p = pod.run("healthcheck", "run", pod.container)
        if p.returncode == 0:
            break
        time.sleep(0.5)
    assert p.returncode == 0, (p.stdout, p.stderr)
    p = pod.exec("sh", "-c", "grep -l '^Name:.*nginx' /proc/[0-9]*/status | xargs grep -h '^Uid:'")
    uids = {line.split()[1] for line in p.stdout.splitlines()}
    assert len(p.stdout.splitlines()) >= 2 and uids == {str(uid)}, p.stdout + p.stderr
    p = pod.exec("sh", "-c", "touch /etc/nginx/x 2>&1 || echo read-only")
    assert "read-only" in p.stdout, p.stdout
    status, text = get(HEALTH, "/metrics")
    assert status == 200 and "dingtalk_notifications_total" in text
    assert post("/", {}, token=None)[0] in (401, 404), "no bearer token: nothing for it"
    p = pod.exec("sh", "-c", "grep -l '^Name:.*nginx' /proc/[0-9]*/status | xargs grep -h '^VmRSS:'")
    rss = sum(int(line.split()[1]) for line in p.stdout.splitlines())
    print(f"{pod.pod}: healthy {pod.start_seconds:.1f} s after kube play, nginx RSS {rss} kB")


@pytest.fixture
def mock():
    m = MockDingTalk()
    yield m
    m.close()


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="dingtalk-kube-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


SINGLE = {"token": TOKEN, "webhook-token": WEBHOOK}  # no "secret": see the module docstring


def test_deployment_plays_and_delivers_with_the_secrets_token(mock, workdir):
    docs = for_podman(load("configmap.yaml", "secret.yaml", "deployment.yaml"), mock, SINGLE)
    with Pod(docs, workdir) as pod:
        check_pod(pod, uid=of_kind(docs, "Deployment")["spec"]["template"]["spec"]
                  ["securityContext"]["runAsUser"])
        status, body = post("/", notification(alert(pod="api-7")))
        assert status == 200, (body, pod.logs())
        (r,) = mock.received
        assert r.query["access_token"] == TOKEN, "the Secret's token"
        assert r.sig_ok is None, "no secret key in the Secret: unsigned"
        assert r.title == "[FIRING:1] KubePodCrashLooping"
        logs = pod.logs()
        assert "200 delivered" in logs and TOKEN not in logs and WEBHOOK not in logs, logs


def sidecar_pod():
    """The nginx container of alertmanager-sidecar.yaml, with its volumes, as a Pod."""
    (am,) = load("alertmanager-sidecar.yaml")
    spec = am["spec"]
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "alertmanager-main-0", "namespace": am["metadata"]["namespace"]},
           "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                        "runAsGroup": 2000, "fsGroup": 2000},
                    "containers": spec["containers"], "volumes": spec["volumes"]}}
    with open(os.path.join(K8S, "nginx-sidecar.conf"), encoding="utf-8") as f:
        # kubectl create configmap dingtalk-hook-nginx --from-file=nginx-sidecar.conf=... (README)
        cm = {"apiVersion": "v1", "kind": "ConfigMap",
              "metadata": {"name": "dingtalk-hook-nginx", "namespace": "monitoring"},
              "data": {"nginx-sidecar.conf": f.read()}}
    (secret,) = load("secret.yaml")
    secret["metadata"]["namespace"] = "monitoring"
    return [cm, secret, pod]


def test_alertmanager_sidecar_plays_and_delivers(mock, workdir):
    docs = for_podman(sidecar_pod(), mock, SINGLE)
    with Pod(docs, workdir) as pod:
        check_pod(pod, uid=1000)
        status, body = post("/", notification(alert(pod="api-8")))
        assert status == 200, (body, pod.logs())
        (r,) = mock.received
        assert r.query["access_token"] == TOKEN
        # the webhook on 127.0.0.1 only, as Alertmanager reaches it from its own pod
        p = pod.exec("sh", "-c", "cat /proc/net/tcp")
        listening = {line.split()[1] for line in p.stdout.splitlines()[1:] if line.split()[3] == "0A"}
        assert f"0100007F:{HOOK:04X}" in listening and f"00000000:{HOOK:04X}" not in listening
        alertmanager_through_the_sidecar(mock, workdir)


def alertmanager_through_the_sidecar(mock, workdir):
    """Debian's Alertmanager with the receiver alertmanager-sidecar.yaml's comment gives
    (http://localhost:5000/, the bearer token from a file), on the host's network as it would
    be in the sidecar's pod: an alert it gets reaches the stand-in through the hook."""
    from alertmanager_harness import ALERTMANAGER_BIN, Alertmanager, executable, wait_until
    if not executable(ALERTMANAGER_BIN):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{ALERTMANAGER_BIN} is missing (Debian's prometheus-alertmanager)")
        pytest.skip("SKIPPED LOUDLY (the sidecar played and delivered): no Alertmanager "
                    f"({ALERTMANAGER_BIN}) to send through it")
    with open(os.path.join(K8S, "alertmanager-sidecar.yaml"), encoding="utf-8") as f:
        text = f.read()
    assert "#     - url: http://localhost:5000/" in text, "the sidecar's receiver changed"
    token = os.path.join(workdir, "webhook-token")
    with open(token, "w") as f:
        f.write(WEBHOOK + "\n")
    am = Alertmanager("http://localhost:5000/", http_config=(
        "      authorization:\n        type: Bearer\n"
        f"        credentials_file: {token}\n"))
    try:
        am.start()
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        am.post_alerts([{"labels": {"alertname": "SidecarCheck", "severity": "critical",
                                    "namespace": "monitoring", "pod": "api-9"},
                         "annotations": {"message": "through Alertmanager"}, "startsAt": now}])
        wait_until(lambda: [r for r in mock.received if r.title == "[FIRING:1] SidecarCheck"],
                   20, "Alertmanager's notification at the stand-in", am.log)
        assert mock.received[-1].query["access_token"] == TOKEN
    finally:
        am.stop()
        am.cleanup()


def multi_target_docs():
    """multi-target/ as `kubectl apply -k` would apply it, and its Secret."""
    d = os.path.join(K8S, "multi-target")
    if shutil.which("kubectl"):
        p = subprocess.run(["kubectl", "kustomize", d], capture_output=True, text=True,
                           timeout=60, check=True)
        docs = [x for x in yaml.safe_load_all(p.stdout) if x]
    else:
        docs = render(d)
    return docs + load("secret.yaml", directory=d)


def test_multi_target_plays_and_delivers_to_two_robots(workdir):
    mock = MockDingTalk()
    ops, db = "0" * 32 + "a" * 32, "0" * 32 + "d" * 32
    try:
        docs = for_podman(multi_target_docs(), mock,
                          {"ops": ops, "db": db, "webhook-token": WEBHOOK})
        env = {e["name"] for e in of_kind(docs, "Deployment")["spec"]["template"]["spec"]
               ["containers"][0]["env"]}
        assert "ROBOT_TOKEN_FILE" not in env
        with Pod(docs, workdir) as pod:
            check_pod(pod, uid=33)
            assert post("/dingtalk/ops/send", notification(alert(pod="ops-1")))[0] == 200
            assert post("/dingtalk/db/send", notification(alert(pod="db-1")))[0] == 200
            status, body = post("/dingtalk/nobody/send", notification())
            assert status == 404 and "not a webhook URL" in body, body
            assert [r.query["access_token"] for r in mock.received] == [ops, db]
            assert "ops-1" in mock.received[0].text and "db-1" in mock.received[1].text
            status, text = get(HEALTH, "/metrics")
            for robot in ("ops", "db"):
                assert f'dingtalk_messages_sent_total{{robot="{robot}"}} 1' in text, text
    finally:
        mock.close()
