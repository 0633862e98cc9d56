"""`make run` as a newcomer meets it: scripts/run-example.sh on nginx.conf.example, for real,
with the DingTalk stand-in, on the port the test chooses."""

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from harness import MODULE, NGINX_BIN, REPO, free_port, world_readable_tmpdir

SCRIPT = os.path.join(REPO, "scripts", "run-example.sh")
SAMPLE = os.path.join(REPO, "scripts", "send-sample.sh")
EXAMPLE = os.path.join(REPO, "nginx.conf.example")
WARNING = "dingtalk_api_url is http://"
WEBHOOK_TOKEN = "w" * 48


class RunExample:
    """run-example.sh in its own session (its nginx, workers and stand-in too); stop() is the
    newcomer's Ctrl-C."""

    def __init__(self, conf=None):
        self.dir = world_readable_tmpdir("dingtalk-run-")
        self.port, self.standin_port = free_port(), free_port()
        self.log = os.path.join(self.dir, "output")
        env = dict(os.environ, DINGTALK_PORT=str(self.port), STANDIN_PORT=str(self.standin_port),
                   DINGTALK_RUN_DIR=os.path.join(self.dir, "prefix"), DINGTALK_MODULE=MODULE,
                   NGINX_BIN=self._nginx())
        env.pop("ROBOT_TOKEN", None)  # demo mode: the stand-in
        if conf:
            env["DINGTALK_CONF"] = conf
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen([SCRIPT], stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True)
        deadline = time.time() + 30
        while "(Ctrl-C stops it)" not in self.output() and self.proc.poll() is None:
            assert time.time() < deadline, self.output()
            time.sleep(0.05)
        assert self.proc.poll() is None, self.output()

    def _nginx(self):
        """NGINX_BIN, with the sanitizer runtimes preloaded into nginx alone (make
        integration-asan)."""
        preload = os.environ.get("DINGTALK_NGINX_PRELOAD")
        if not preload:
            return NGINX_BIN
        path = os.path.join(self.dir, "nginx")
        with open(path, "w") as f:
            f.write(f"#!/bin/sh\nLD_PRELOAD='{preload}' exec {NGINX_BIN} \"$@\"\n")
        os.chmod(path, 0o755)
        return path

    def output(self):
        with open(self.log) as f:
            return f.read()

    def get(self, path, headers=None):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def post(self, path, body=b"{}"):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def send_sample(self, **env):
        return subprocess.run([SAMPLE], capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, DINGTALK_PORT=str(self.port), **env))

    def stop(self):
        """Ctrl-C: SIGINT to the whole foreground group. Nothing may be left running."""
        left = True
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(timeout=30)
            deadline = time.time() + 10
            while left and time.time() < deadline:
                left = group_alive(self.proc.pid)
                time.sleep(0.05)
        finally:
            if group_alive(self.proc.pid):
                os.killpg(self.proc.pid, signal.SIGKILL)
        assert not left, "nginx or the stand-in outlived Ctrl-C:\n" + self.output()
        errors = open(os.path.join(self.dir, "prefix", "logs", "error.log")).read()
        assert not re.search(r"\[(alert|crit|emerg)\]|Sanitizer", errors), errors
        shutil.rmtree(self.dir, ignore_errors=True)


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def listeners(port):
    """The local addresses listening on TCP port."""
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[3] for line in out.splitlines() if line.strip()}


def test_run_example_on_a_chosen_port_health_sample_one_warning_loopback_only():
    # the example as shipped: this host only, and one line says how to open it up
    example = open(EXAMPLE).read()
    assert re.search(r"^\s*listen 127\.0\.0\.1:5000;$", example, re.M)
    assert re.search(r'^\s*#.*every interface: "listen 5000;"', example, re.M)

    run = RunExample()
    try:
        out = run.output()
        assert f"on http://127.0.0.1:{run.port}/ (Ctrl-C stops it)" in out, out
        assert f"try: DINGTALK_PORT={run.port} scripts/send-sample.sh" in out, out
        assert f"DingTalk stand-in on http://127.0.0.1:{run.standin_port}/robot/send" in out
        # printed by nginx as it starts; not again by a separate "nginx -t"
        assert out.count(WARNING) == 1, out
        assert out.index(WARNING) < out.index("(Ctrl-C stops it)"), "warnings before the banner"

        assert listeners(run.port) == {f"127.0.0.1:{run.port}"}, "loopback only"
        assert run.get("/healthz") == (200, "ok\n")

        sample = run.send_sample()
        assert sample.returncode == 0, sample.stderr
        assert sample.stdout.count('"ok":true') == 2, sample.stdout
        out = run.output()
        assert "[FIRING:2] KubePodCrashLooping" in out and "[RESOLVED:2] KubePodCrashLooping" in out
        assert out.count(WARNING) == 1, out
    finally:
        run.stop()


def test_run_example_with_its_template_and_credential_lines_turned_on(tmp_path):
    """The example's commented template (a relative name) and webhook credential, turned on:
    the template is found from the run folder, and /healthz still asks for nothing."""
    os.chmod(tmp_path, 0o755)
    token = tmp_path / "webhook-token"
    token.write_text(WEBHOOK_TOKEN + "\n")
    example = open(EXAMPLE).read()
    conf = example.replace("# dingtalk_template templates/oncall.mustache;",
                           "dingtalk_template templates/oncall.mustache;")
    conf = conf.replace("# dingtalk_auth_bearer_file /etc/nginx/dingtalk-webhook-token;",
                        f"dingtalk_auth_bearer_file {token};")
    assert conf.count("\n        dingtalk_template templates/") == 1, "the example's line"
    assert conf.count(f"\n        dingtalk_auth_bearer_file {token};") == 1, "the example's line"
    path = tmp_path / "nginx.conf"
    path.write_text(conf)

    run = RunExample(conf=str(path))
    try:
        assert run.get("/healthz") == (200, "ok\n"), "no credential for the health check"
        assert run.get("/")[0] == 401 and run.post("/") == 401, "the webhook asks for one"
        assert run.send_sample(WEBHOOK_TOKEN=WEBHOOK_TOKEN).stdout.count('"ok":true') == 2
        out = run.output()
        assert "#### 🔥 告警中 (2)" in out, "the oncall template, from the repository: " + out
        assert out.count(WARNING) == 1, out
    finally:
        run.stop()
