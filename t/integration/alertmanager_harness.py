"""Debian's real Prometheus Alertmanager (and Prometheus) as test processes.

Each instance gets its own temporary directory (config, storage, log), listens on a free
loopback port, runs without clustering (`--cluster.listen-address=` empty: no gossip, no peer
wait before notifying) unless a test makes an HA cluster of several, and is stopped with SIGTERM, then SIGKILL if it does not exit. Its
stdout and stderr go to a file, so a chatty process can never block on a full pipe, and the
log can be searched (retries, failures) and printed when a test fails.
"""

import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import free_port

ALERTMANAGER_BIN = os.environ.get("ALERTMANAGER_BIN", "/usr/bin/prometheus-alertmanager")
PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")


def executable(path):
    return os.path.isfile(path) and os.access(path, os.X_OK)


def version(path):
    """First line of `<binary> --version`, e.g. 'alertmanager, version 0.25.0 (...)'."""
    p = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return (p.stdout + p.stderr).strip().splitlines()[0]


def wait_until(predicate, timeout, what, diagnostics=lambda: ""):
    """Poll predicate() every 50 ms; return its first truthy value or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{diagnostics()}")
        time.sleep(0.05)


def http_get(url, timeout=5):
    """(status, body) or (None, error text) when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def _die_with_parent():
    """In the child before exec: SIGKILL when the test process dies, even without teardown."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Process:
    """A server binary in its own temporary directory, logging to <dir>/log."""

    name = "process"

    def __init__(self, binary):
        self.binary = binary
        self.dir = tempfile.mkdtemp(prefix=f"dingtalk-{self.name}-", dir="/tmp")
        self.port = free_port()
        self.proc = None
        self.log_path = os.path.join(self.dir, "log")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def args(self):
        raise NotImplementedError

    def start(self, ready_timeout=20):
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([self.binary, *self.args()], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=self.dir, preexec_fn=_die_with_parent)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} at start:\n"
                                     + self.log())
            return http_get(self.url + "/-/ready", timeout=1)[0] == 200

        wait_until(ready, ready_timeout, f"{self.name} on {self.url}/-/ready", self.log)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM, wait, then SIGKILL: never leaves the process behind."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def metrics(self):
        """{(name, frozenset(labels.items())): value} from /metrics."""
        status, text = http_get(self.url + "/metrics")
        assert status == 200, f"{self.name} /metrics: {status} {text[:300]}"
        out = {}
        line_re = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
        label_re = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
        for line in text.splitlines():
            m = line_re.match(line)
            if not m or line.startswith("#"):
                continue
            labels = frozenset(label_re.findall(m.group(2) or ""))
            out[(m.group(1), labels)] = float(m.group(3))
        return out

    def metric(self, name, **labels):
        """Sum of the samples of `name` whose labels include `labels` (0 when none)."""
        want = set(labels.items())
        return sum(v for (n, ls), v in self.metrics().items() if n == name and want <= ls)


class Alertmanager(Process):
    """prometheus-alertmanager with one route to one webhook receiver."""

    name = "alertmanager"

    # group_wait: the alerts of one POST reach Alertmanager's dispatcher one by one; on a busy
    # machine a second of group_wait was seen to flush a group before its second alert. (A
    # group whose alert started more than group_wait ago is flushed at once, whatever
    # group_wait says: alerts meant to arrive together must start now.)
    def __init__(self, webhook_url, group_wait="3s", group_interval="2s", repeat_interval="1h",
                 send_resolved=True, http_config="", binary=ALERTMANAGER_BIN, cluster=None):
        """webhook_url: one URL, or a list for one receiver with a webhook_config each (the
        same send_resolved and http_config). http_config: YAML lines for the webhook's
        http_config (credentials), indented by the caller to sit under it. cluster: (port,
        [peer ports]) for an HA cluster on 127.0.0.1 (gossip, and the peers' wait of 15 s per
        position before they notify); None: no cluster."""
        super().__init__(binary)
        self.cluster = cluster
        urls = webhook_url if isinstance(webhook_url, list) else [webhook_url]
        webhooks = "".join(f"""  - url: {json.dumps(url)}
    send_resolved: {str(send_resolved).lower()}
{"    http_config:" + chr(10) + http_config if http_config else ""}
""" for url in urls)
        self.config_text = f"""
route:
  receiver: dingtalk
  group_by: [alertname]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: {repeat_interval}
receivers:
- name: dingtalk
  webhook_configs:
{webhooks}"""
        self.config = self.write("alertmanager.yml", self.config_text)

    def args(self):
        if self.cluster is None:
            cluster = ["--cluster.listen-address="]
        else:
            port, peers = self.cluster
            cluster = [f"--cluster.listen-address=127.0.0.1:{port}",
                       *(f"--cluster.peer=127.0.0.1:{p}" for p in peers)]
        return [f"--config.file={self.config}", f"--storage.path={self.dir}",
                f"--web.listen-address=127.0.0.1:{self.port}", f"--web.external-url={self.url}",
                *cluster, "--log.level=debug"]

    def post_alerts(self, alerts):
        """POST /api/v2/alerts, as Prometheus does."""
        req = urllib.request.Request(self.url + "/api/v2/alerts", method="POST",
                                     data=json.dumps(alerts).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                status = resp.status
        except urllib.error.HTTPError as e:
            raise AssertionError(f"Alertmanager refused the alerts: {e.code} {e.read()!r}")
        assert status == 200, status

    def alerts(self):
        status, text = http_get(self.url + "/api/v2/alerts")
        assert status == 200, text
        return json.loads(text)

    def webhook_failures(self):
        """Failed webhook notifications, as alertmanager_notifications_failed_total counts."""
        return self.metric("alertmanager_notifications_failed_total", integration="webhook")

    def webhook_requests(self):
        """Webhook POSTs attempted (retries included), per alertmanager_notification_requests_total."""
        return self.metric("alertmanager_notification_requests_total", integration="webhook")

    def webhook_requests_failed(self):
        return self.metric("alertmanager_notification_requests_failed_total",
                           integration="webhook")


class Prometheus(Process):
    """Debian's prometheus evaluating one rules file every second, alerting one Alertmanager."""

    name = "prometheus"

    def __init__(self, alertmanager, rules, binary=PROMETHEUS_BIN):
        super().__init__(binary)
        self.rules = self.write("rules.yml", rules)
        self.config = self.write("prometheus.yml", f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
- {json.dumps(self.rules)}
alerting:
  alertmanagers:
  - static_configs:
    - targets: ["127.0.0.1:{alertmanager.port}"]
""")
        os.makedirs(os.path.join(self.dir, "data"))

    def args(self):
        return [f"--config.file={self.config}",
                f"--storage.tsdb.path={os.path.join(self.dir, 'data')}",
                f"--web.listen-address=127.0.0.1:{self.port}", f"--web.external-url={self.url}/",
                # The first evaluation can come before the Alertmanager is discovered (the
                # alert is then dropped); resend every second instead of every minute.
                "--rules.alert.resend-delay=1s", "--log.level=debug"]
