#!/usr/bin/python3
"""The cost of the worst bodies: CPU time and peak worker memory per shape of body.

Each shape is a body of a given size built to be as expensive as possible in one way (many
empty alerts, thousands of labels, long values, deep nesting, many tiny values, heavy
escaping). Every body goes through the real nginx with the module, to a DingTalk stand-in that
answers at once, with and without a template. For each: the reply's status, its wall time, the
worker's CPU time (all its threads, from /proc/PID/stat) and its peak RSS over what it held
before the request (VmHWM after a reset with /proc/PID/clear_refs, minus VmRSS before).

    bench/cost.py [--module PATH] [--json OUT] [--sizes 1m,64m]

Used by make bench (bench/run.py), and on its own to compare two builds of the module:
    bench/cost.py --module /tmp/old.so --json before.json
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1 << 20


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- shapes --------------------------------------------------------------------------------
# Each returns bytes of about `size` (never more).


def fill(head, item, sep, tail, size):
    n = max(1, (size - len(head) - len(tail)) // (len(item) + len(sep)))
    return head + sep.join([item] * n) + tail


def empty_alerts(size):
    return fill(b'{"alerts":[', b"{}", b",", b"]}", size)


def status_alerts(size):
    """Every alert resolved but one firing: the firing one must still come first."""
    body = fill(b'{"alerts":[', b'{"status":"resolved"}', b",", b"]}", size)
    return body.replace(b'{"status":"resolved"}]', b'{"status":"firing"}]', 1)


def many_labels(size):
    n = (size - 64) // 16
    while True:
        labels = ",".join(f'"l{i:07d}":"v{i % 10}"' for i in range(n))
        body = ('{"alerts":[{"labels":{' + labels + '}}]}').encode()
        if len(body) <= size:
            return body
        n = n * 9 // 10


def labelled_alerts(size):
    """Realistic alerts with 60 labels each, as many as fit."""
    labels = {f"label_{i:02d}": f"value-{i:02d}-xxxxxxxx" for i in range(60)}
    labels.update(alertname="NodeDown", severity="critical", instance="10.0.0.1:9100")
    item = json.dumps({"status": "firing", "labels": labels,
                       "annotations": {"description": "node is down " * 4},
                       "startsAt": "2026-11-23T16:04:05Z", "endsAt": "0001-01-01T00:00:00Z",
                       "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up"}).encode()
    return fill(b'{"alerts":[', item, b",", b"]}", size)


def long_values(size):
    value = "x" * ((size - 200) // 4)
    alert = {"labels": {"alertname": value, "a": value}, "annotations": {"description": value,
                                                                          "b": value}}
    return json.dumps({"alerts": [alert]}).encode()[:size]


def deep_nesting(size):
    """Arrays 1000 deep (simdjson's limit is 1024), again and again, beside one alert."""
    deep = b"[" * 1000 + b"]" * 1000
    return fill(b'{"alerts":[{}],"x":[', deep, b",", b"]}", size)


def tiny_numbers(size):
    return fill(b'{"alerts":[{}],"x":[', b"0", b",", b"]}", size)


def tiny_strings(size):
    return fill(b'{"alerts":[{}],"x":[', b'""', b",", b"]}", size)


def escapes(size):
    """Values of characters that each grow when escaped (markdown specials, line separators)."""
    value = "*_[<&\u2028" * 2000
    item = json.dumps({"labels": {"alertname": value[:3000], "k": value},
                       "annotations": {"description": value}}).encode()
    return fill(b'{"alerts":[', item, b",", b"]}", size)


SHAPES = [
    ("empty alerts `{}`", empty_alerts),
    ("resolved alerts, one firing last", status_alerts),
    ("one alert, many labels", many_labels),
    ("alerts with 60 labels", labelled_alerts),
    ("long values", long_values),
    ("deep nesting (1000)", deep_nesting),
    ("tiny numbers", tiny_numbers),
    ("tiny strings", tiny_strings),
    ("escaping-heavy values", escapes),
]


def unique_keys(size):
    n = (size - 40) // 15
    keys = ",".join(f'"k{i:09d}":0' for i in range(n))
    return ('{"alerts":[{}],' + keys + "}").encode()


SHAPES.append(("many top-level keys", unique_keys))


# -- nginx ---------------------------------------------------------------------------------


class Nginx:
    def __init__(self, module, body_max, extra=""):
        """body_max: client_max_body_size; extra: more directives for both locations (for
        example a dingtalk_max_body_size)."""
        self.dir = tempfile.mkdtemp(prefix="dingtalk-cost-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port, self.standin = free_port(), free_port()
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        tmpl = os.path.join(REPO, "templates", "default.mustache")
        loc = f"""
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url http://127.0.0.1:{self.standin}/robot/send;
            dingtalk_timeout 600s;
            {extra}"""
        conf = f"""
load_module {module};
{user}
worker_processes 1;
error_log {self.dir}/error.log warn;
pid {self.dir}/nginx.pid;
thread_pool default threads=4 max_queue=1024;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    client_max_body_size {body_max};
    client_body_buffer_size 64m;
    dingtalk_rate_limit off;
    server {{
        listen 127.0.0.1:{self.port};
        location = /plain {{ {loc} }}
        location = /template {{ {loc} dingtalk_template {tmpl}; }}
    }}
    server {{
        listen 127.0.0.1:{self.standin};
        location / {{
            default_type application/json;
            return 200 '{{"errcode":0,"errmsg":"ok"}}';
        }}
    }}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        subprocess.run([NGINX, "-p", self.dir + "/", "-c", self.conf, "-e",
                        self.dir + "/error.log"], check=True)
        for _ in range(200):
            try:
                with open(os.path.join(self.dir, "nginx.pid")) as f:
                    self.pid = int(f.read())
                break
            except (FileNotFoundError, ValueError):
                time.sleep(0.02)
        time.sleep(0.3)

    def worker(self):
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.pid)],
                             capture_output=True, text=True).stdout
        pids = [int(l.split()[0]) for l in out.splitlines() if "worker process" in l]
        return pids[0] if pids else None

    def stop(self):
        for pid in (self.worker(), self.pid):  # the worker first: it is the master's child
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def post(self, path, body, timeout=900):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body,
                                     method="POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()
        except Exception as e:  # a worker that died: the connection drops
            return 0, str(e).encode()


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLK_TCK


def measure(ngx, path, body):
    """One delivery of body to path: (status, wall ms, worker CPU ms, extra peak RSS MB)."""
    pid = ngx.worker()
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS
    rss0 = proc_status(pid, "VmRSS")
    cpu0 = cpu_ms(pid)
    t0 = time.monotonic()
    status, reply = ngx.post(path, body)
    wall = (time.monotonic() - t0) * 1000
    time.sleep(0.05)
    try:
        cpu = cpu_ms(pid) - cpu0
        peak = (proc_status(pid, "VmHWM") - rss0) / 1024
    except FileNotFoundError:  # the worker died
        return {"status": "crash", "wall_ms": wall, "cpu_ms": None, "peak_mb": None,
                "reason": reply.decode(errors="replace")[:200]}
    crashed = ngx.worker() != pid
    try:
        reason = json.loads(reply).get("reason", "")
    except ValueError:
        reason = reply.decode(errors="replace")[:200]
    return {"status": "crash" if crashed else status, "wall_ms": wall, "cpu_ms": cpu,
            "peak_mb": peak, "reason": reason[:200]}


def run(module, sizes, only=None, paths=("/plain", "/template"), extra=""):
    results = []
    for size_name in sizes:
        size = int(size_name[:-1]) * MIB
        for name, make in SHAPES:
            if only and not any(o in name for o in only):
                continue
            body = make(size)
            for path in paths:
                ngx = Nginx(module, "80m", extra)
                try:
                    ngx.post("/plain", b'{"alerts":[{}]}')  # warm: libraries and caches loaded
                    row = measure(ngx, path, body)
                finally:
                    ngx.stop()
                row.update(shape=name, size=size_name, bytes=len(body),
                           template=path == "/template")
                results.append(row)
                print(f"{size_name:>4} {name:34} {'template' if row['template'] else 'built-in':9}"
                      f" {row['status']!s:>5} {row['wall_ms']:9.1f} ms wall"
                      f" {row['cpu_ms'] if row['cpu_ms'] is not None else -1:9.0f} ms cpu"
                      f" {row['peak_mb'] if row['peak_mb'] is not None else -1:8.1f} MB"
                      f"  {row['reason'][:60]}", flush=True)
    return results


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--module", default=os.environ.get(
        "DINGTALK_MODULE", os.path.join(REPO, "build", "ngx_http_dingtalk_module.so")))
    ap.add_argument("--json")
    ap.add_argument("--sizes", default="1m,64m")
    ap.add_argument("--shapes", help="comma-separated parts of shape names")
    ap.add_argument("--paths", default="/plain,/template")
    ap.add_argument("--extra", default="", help='directives, e.g. "dingtalk_max_body_size 64m;"')
    args = ap.parse_args()
    results = run(args.module, args.sizes.split(","),
                  args.shapes.split(",") if args.shapes else None, args.paths.split(","),
                  args.extra)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
