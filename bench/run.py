#!/usr/bin/python3
"""make bench: every benchmark scenario of ngx_http_dingtalk_module on loopback; writes
bench/results.md.

Everything runs in one nginx (Debian's binary, this module, and Debian's echo module for the
slow stand-in): the webhook location, the DingTalk stand-ins it sends to, and the reference,
nginx's own proxy_pass of the same POST to the same stand-in. Figures are medians of RUNS runs
with their spread (min-max); the ratio to proxy_pass is what carries from machine to machine.

    bench/run.py [--quick]      (--quick: 1 run each, shorter; for trying the harness)
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import cost

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(REPO, "build")
MODULE = os.environ.get("DINGTALK_MODULE", os.path.join(BUILD, "ngx_http_dingtalk_module.so"))
# The module before the connections and memory work (issue 14), for the before/after rows;
# make bench builds it from BENCH_BEFORE.
BEFORE = os.environ.get("DINGTALK_MODULE_BEFORE",
                        os.path.join(BUILD, "before", "ngx_http_dingtalk_module.so"))
BEFORE_COMMIT = os.environ.get("BENCH_BEFORE", "71d696d")
SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"
NGINX = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
ECHO = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
LUA = os.path.join(REPO, "bench", "webhook.lua")
TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")

RUNS, SECONDS = 3, 4
# glibc's malloc made lean for the whole nginx (docs/operations.md "Performance"): 2 arenas
# instead of up to 8 per core, and no per-thread cache of freed blocks
LEAN_MALLOC = {"MALLOC_ARENA_MAX": "2", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payload(n=10):
    """An Alertmanager notification of n kube-prometheus-like alerts (10: about 6 KB)."""
    alerts = []
    for i in range(n):
        pod = f"api-7d9f8b6c5d-{10000 + i}"
        alerts.append({
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "severity": "critical",
                       "namespace": "kube-ops", "pod": pod, "container": "api",
                       "instance": f"10.244.1.{i}:8080", "job": "kube-state-metrics"},
            "annotations": {
                "description": f"Pod kube-ops/{pod} (api) is in waiting state "
                               "(reason: \"CrashLoopBackOff\").",
                "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/"
                               "kubepodcrashlooping",
                "summary": "Pod is crash looping."},
            "startsAt": "2026-11-23T16:04:05.123456789Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=max_over_time%28kube_"
                            "pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff"
                            "%22%7D%5B5m%5D%29+%3E%3D+1&g0.tab=1",
            "fingerprint": f"{1000000 + i:016x}"})
    return json.dumps({
        "version": "4", "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0, "status": "firing", "receiver": "dingtalk",
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "critical"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts})


class Bench:
    def __init__(self, quick):
        self.quick = quick
        self.runs = 1 if quick else RUNS
        self.seconds = 2 if quick else SECONDS
        self.dir = tempfile.mkdtemp(prefix="dingtalk-bench-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.payload = os.path.join(self.dir, "payload.json")
        with open(self.payload, "w") as f:
            f.write(payload(10))
        self.payload_one = os.path.join(self.dir, "payload-1.json")
        with open(self.payload_one, "w") as f:
            f.write(payload(1))
        self.payload_bytes = os.path.getsize(self.payload)
        self.nginx_pid = None
        self.results = {}
        self.certs()

    # -- processes ------------------------------------------------------------------------

    def certs(self):
        def ssl(*args):
            subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)

        ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=bench CA", "-keyout", "ca.key", "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE")
        with open(os.path.join(self.dir, "ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
            "server.key", "-out", "server.csr")
        ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "ext", "-out", "server.pem")
        # The system's CAs and the bench CA: the store the module loads is the system's size
        # (verification on), and still trusts the stand-in.
        with open(os.path.join(self.dir, "cas.pem"), "w") as out:
            for path in (SYSTEM_CAS, os.path.join(self.dir, "ca.pem")):
                with open(path) as f:
                    out.write(f.read())
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)

    def start_standin(self, slow_delay="1"):
        """A stand-in in an nginx of its own, so its work (and its TLS) does not land on the
        measured worker: /slow/ answers after slow_delay; an HTTPS server answers at once and
        logs each request's connection and whether its TLS session was resumed (tls.log)."""
        self.stop_standin()
        d = os.path.join(self.dir, "standin")
        os.makedirs(d, exist_ok=True)
        self.standin_port, self.tls = free_port(), free_port()
        self.tls_log = os.path.join(d, "tls.log")
        if os.path.exists(self.tls_log):
            os.remove(self.tls_log)
        conf = f"""
load_module {ECHO};
worker_processes 1;
worker_rlimit_nofile 16384;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    server {{
        listen 127.0.0.1:{self.standin_port} backlog=4096;
        keepalive_requests 100000;
        location /slow/ {{
            default_type application/json;
            echo_read_request_body;
            echo_sleep {slow_delay};
            echo '{{"errcode":0,"errmsg":"ok"}}';
        }}
    }}
    log_format conn '$connection $ssl_session_reused';
    server {{
        listen 127.0.0.1:{self.tls} ssl backlog=4096;
        ssl_certificate {self.dir}/server.pem;
        ssl_certificate_key {self.dir}/server.key;
        keepalive_requests 1000000;
        access_log {self.tls_log} conn;
        location /fast/ {{
            default_type application/json;
            return 200 '{{"errcode":0,"errmsg":"ok"}}';
        }}
    }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        subprocess.run([NGINX, "-p", d + "/", "-c", d + "/nginx.conf", "-e", d + "/error.log"],
                       check=True)
        time.sleep(0.3)
        with open(os.path.join(d, "nginx.pid")) as f:
            self.standin_pid = int(f.read())

    def stop_standin(self):
        if getattr(self, "standin_pid", None):
            try:
                os.kill(self.standin_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            self.standin_pid = None
            self.tls = None
            time.sleep(0.3)

    def start(self, workers=1, threads=4, module=True, slow_delay="1", slow_port=None,
              so=MODULE, env=None):
        self.stop()
        self.port, self.standin = free_port(), free_port()
        tls = getattr(self, "tls", None) or free_port()  # the stand-in's, when it runs
        slow = slow_port or self.standin
        d = self.dir
        dingtalk = f"""
        location = /hook {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url http://127.0.0.1:{self.standin}/fast/robot/send;
        }}
        location = /hook-slow {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_timeout 60s;
            dingtalk_api_url http://127.0.0.1:{slow}/slow/robot/send;
        }}
        location = /hook-tls {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url https://127.0.0.1:{tls}/fast/robot/send;
            dingtalk_ssl_trusted_certificate {d}/cas.pem;
        }}""" if module else ""
        conf = f"""
{f"load_module {so};" if module else ""}
load_module {ECHO};
{"user nobody nogroup;" if os.geteuid() == 0 else ""}
worker_processes {workers};
worker_rlimit_nofile 16384;
error_log {d}/error.log warn;
pid {d}/nginx.pid;
thread_pool default threads={threads} max_queue=65536;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    client_body_buffer_size 64k;
    {"dingtalk_rate_limit off;" if module else ""}
    upstream standin {{
        server 127.0.0.1:{self.standin};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port} backlog=4096;
        {dingtalk}
        location = /proxy {{
            proxy_pass http://standin/fast/robot/send;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location = /static {{
            return 200 "static\\n";
        }}
    }}
    server {{
        listen 127.0.0.1:{self.standin} backlog=4096;
        keepalive_requests 100000;
        location /fast/ {{
            default_type application/json;
            return 200 '{{"errcode":0,"errmsg":"ok"}}';
        }}
        location /slow/ {{
            default_type application/json;
            echo_read_request_body;
            echo_sleep {slow_delay};
            echo '{{"errcode":0,"errmsg":"ok"}}';
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        try:
            os.remove(os.path.join(d, "error.log"))
        except FileNotFoundError:
            pass
        subprocess.run([NGINX, "-p", d + "/", "-c", path, "-e", d + "/error.log"], check=True,
                       env=dict(os.environ, **(env or {})))
        for _ in range(200):
            if os.path.exists(os.path.join(d, "nginx.pid")):
                with open(os.path.join(d, "nginx.pid")) as f:
                    text = f.read().strip()
                if text:
                    self.nginx_pid = int(text)
                    break
            time.sleep(0.02)
        for _ in range(200):
            if self.workers():
                break
            time.sleep(0.02)
        time.sleep(0.3)

    def stop(self):
        if self.nginx_pid:
            try:
                os.kill(self.nginx_pid, signal.SIGTERM)
                for _ in range(300):
                    os.kill(self.nginx_pid, 0)
                    time.sleep(0.05)
            except ProcessLookupError:
                pass
            self.nginx_pid = None

    def workers(self):
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.nginx_pid)],
                             capture_output=True, text=True).stdout
        return [int(l.split()[0]) for l in out.splitlines() if "worker process" in l]

    def cpu_seconds(self):
        total = 0
        for pid in [self.nginx_pid] + self.workers():
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime, threads included
        return total / CLK_TCK

    def rss_kb(self, key="VmRSS"):
        worker = self.workers()[0]
        with open(f"/proc/{worker}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return 0

    def wrk(self, path, conns, seconds, method="POST", threads=2, body=None):
        env = dict(os.environ, PAYLOAD=body or self.payload, METHOD=method)
        cmd = ["wrk", f"-t{min(threads, conns)}", f"-c{conns}", f"-d{seconds}s", "--timeout",
               "30s", "-s", LUA, f"http://127.0.0.1:{self.port}{path}"]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                             preexec_fn=raise_nofile)
        line = [l for l in out.stdout.splitlines() if l.startswith("{")]
        if not line:
            raise RuntimeError("wrk failed: " + out.stdout + out.stderr)
        r = json.loads(line[-1])
        if r["requests"] == 0:
            raise RuntimeError(f"wrk made no requests to {path}: {out.stdout} {out.stderr}\n"
                               + open(os.path.join(self.dir, "error.log")).read()[-2000:])
        r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
        return r

    # -- scenarios ------------------------------------------------------------------------

    def throughput(self):
        rows = []
        # one worker: the module before issue 14 too, each next to its own proxy_pass figures;
        # "1 alert": the same with a 1-alert body, whose parse + render costs next to nothing,
        # so what is left is the rest of a delivery (the hand-off, libcurl, the kernel)
        for workers, build, so, conn_list in ((1, "now", MODULE, (1, 16, 64)),
                                              (1, "1 alert", MODULE, (16,)),
                                              (1, "before", BEFORE, (1, 16)),
                                              (2, "now", MODULE, (1, 16, 64))):
            body = self.payload_one if build == "1 alert" else self.payload
            self.start(workers=workers, threads=4, so=so)  # the pool nginx.conf.example declares
            self.wrk("/hook", 16, 1)  # warm up: connections, TLS-free curl handles
            self.wrk("/proxy", 16, 1)
            for conns in conn_list:
                row = {"workers": workers, "conns": conns, "build": build}
                for name, path in (("module", "/hook"), ("proxy", "/proxy")):
                    runs = []
                    for _ in range(self.runs):
                        cpu0 = self.cpu_seconds()
                        r = self.wrk(path, conns, self.seconds, body=body)
                        r["cpu_per_1000"] = (self.cpu_seconds() - cpu0) / r["requests"] * 1000
                        assert r["non2xx"] == 0 and r["socket_errors"] == 0, r
                        runs.append(r)
                    row[name] = runs
                rows.append(row)
                print(f"  throughput {build} w={workers} c={conns}: module "
                      f"{med(row['module'], 'rps'):.0f} r/s, proxy "
                      f"{med(row['proxy'], 'rps'):.0f} r/s", flush=True)
        self.results["throughput"] = rows

    def nonblocking(self):
        self.start_standin("1")
        rows = []
        for threads in (32, 256):
            self.start(workers=1, threads=threads, slow_port=self.standin_port)
            idle = [self.wrk("/static", 4, self.seconds, method="GET") for _ in range(self.runs)]
            busy = []
            for _ in range(self.runs):
                load = subprocess.Popen(
                    ["wrk", "-t2", "-c200", f"-d{self.seconds + 3}s", "--timeout", "30s", "-s",
                     LUA, f"http://127.0.0.1:{self.port}/hook-slow"],
                    env=dict(os.environ, PAYLOAD=self.payload), stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL, text=True, preexec_fn=raise_nofile)
                time.sleep(1.5)  # 200 deliveries are now waiting on the 1 s stand-in
                busy.append(self.wrk("/static", 4, self.seconds, method="GET"))
                out = load.communicate()[0]
                hooks = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
                busy[-1]["deliveries"] = hooks["requests"]
                busy[-1]["delivery_p50_us"] = hooks["p50_us"]
            rows.append({"threads": threads, "idle": idle, "busy": busy})
            print(f"  pool {threads}: static p99 idle {med(idle, 'p99_us'):.0f} us, with 200 in "
                  f"flight {med(busy, 'p99_us'):.0f} us", flush=True)
        self.stop_standin()
        self.results["nonblocking"] = rows

    def memory(self):
        self.start(workers=1, module=False, threads=32)
        plain = self.rss_kb()
        self.results["memory"] = {"plain_idle": plain, "plain_anon": self.rss_kb("RssAnon"),
                                  "now": self.memory_of(MODULE), "before": self.memory_of(BEFORE),
                                  "arenas": self.memory_of(MODULE, LEAN_MALLOC),
                                  "pool4": self.memory_of(MODULE, threads=4)}
        print(f"  RSS plain {plain} kB, now {self.results['memory']['now']}, before "
              f"{self.results['memory']['before']}", flush=True)

    def memory_of(self, so, env=None, threads=32):
        """One build's worker RSS (and of it, the private part, RssAnon): idle, after 10000 and
        100000 HTTPS deliveries (nginx's default pool of 32 threads, 16 at once, verification
        on against the system's CAs), and the peak with 1000 deliveries in flight (a pool of
        256)."""
        self.start_standin()
        self.start(workers=1, threads=threads, so=so, env=env)
        idle, idle_anon = self.rss_kb(), self.rss_kb("RssAnon")
        samples, anon, done = [], [], 0
        for target in ((2000, 10000) if self.quick else (10000, 100000)):
            while done < target:
                done += self.wrk("/hook-tls", 16, 1 if target - done < 10000 else 3)["requests"]
            samples.append((done, self.rss_kb()))
            anon.append((done, self.rss_kb("RssAnon")))
        # 1000 deliveries in flight: 1000 connections against a stand-in (an nginx of its own)
        # that answers after 1 s, with a pool of 256 threads so that 256 really are sending
        self.start_standin("1")
        self.start(workers=1, threads=256, slow_port=self.standin_port, so=so, env=env)
        self.wrk("/hook-slow", 1000, 6, threads=2)
        peak = self.rss_kb("VmHWM")
        time.sleep(6)  # let the queued deliveries drain
        after_peak = self.rss_kb()
        self.stop_standin()
        return {"idle": idle, "samples": samples, "peak_1000": peak, "after_peak": after_peak,
                "idle_anon": idle_anon, "anon": anon}

    def render(self):
        out = subprocess.run([os.path.join(BUILD, "render_bench"), "--benchmark_format=json",
                              "--benchmark_filter=BM_Parse",
                              "--benchmark_repetitions=%d" % (1 if self.quick else 5),
                              "--benchmark_report_aggregates_only=true"],
                             capture_output=True, text=True, check=True)
        self.results["render"] = json.loads(out.stdout)["benchmarks"]
        # the worst 1 MiB bodies through parse + render_messages, every template
        out = subprocess.run([os.path.join(BUILD, "render_bench"), "--benchmark_format=json",
                              "--benchmark_filter=BM_WorstBody",
                              "--benchmark_repetitions=%d" % (1 if self.quick else 3),
                              "--benchmark_min_time=0.2",
                              "--benchmark_report_aggregates_only=true"],
                             capture_output=True, text=True, check=True)
        self.results["worst"] = json.loads(out.stdout)["benchmarks"]
        runs = [json.loads(subprocess.run([os.path.join(BUILD, "handoff_bench")],
                                          capture_output=True, text=True, check=True).stdout)
                for _ in range(1 if self.quick else 3)]
        self.results["handoff"] = runs

    def cost(self):
        """The worst bodies (bench/cost.py): 1 MiB and 64 MiB of each shape, with and without a
        template; 64 MiB again with dingtalk_max_body_size raised to take them."""
        self.stop()
        rows = cost.run(MODULE, ["1m", "64m"])
        rows += [dict(r, raised=True) for r in
                 cost.run(MODULE, ["64m"], ["empty alerts", "tiny numbers", "one alert"],
                          extra="dingtalk_max_body_size 64m;")]
        self.results["cost"] = rows

    def store(self):
        """dingtalk_store against the shared zone alone (bench/store.py): whole deliveries with
        and without it, Redis scripts per delivery, and the scripts alone (build/store_bench)."""
        import store as store_bench  # bench/store.py
        self.results["store"] = store_bench.measure(100 if self.quick else 300)

    def tls_reuse(self):
        """TLS connections (and full handshakes) the stand-in sees over N HTTPS deliveries, one
        at a time and 16 at once, with nginx's default pool of 32 threads."""
        n = 2000 if self.quick else 10000
        rows = []
        for name, so in (("before", BEFORE), ("now", MODULE)):
            for conns in (1, 16):
                self.start_standin()
                self.start(workers=1, threads=32, so=so)
                deliveries = 0
                while deliveries < n:
                    deliveries += self.wrk("/hook-tls", conns, 1)["requests"]
                time.sleep(0.5)
                with open(self.tls_log) as f:
                    lines = [l.split() for l in f if l.strip()]
                rows.append({"build": name, "conns": conns, "deliveries": deliveries,
                             "connections": len({l[0] for l in lines}),
                             "full_handshakes": len({l[0] for l in lines if l[1] != "r"})})
                print(f"  TLS {name} c={conns}: {deliveries} deliveries over "
                      f"{rows[-1]['connections']} connections", flush=True)
        self.stop_standin()
        self.results["tls"] = rows


def raise_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (16384, 16384))


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def spread(runs, key, fmt="{:.0f}"):
    vals = [r[key] for r in runs]
    if len(vals) == 1:
        return fmt.format(vals[0])
    return (fmt + " ({}–{})").format(statistics.median(vals), fmt.format(min(vals)),
                                      fmt.format(max(vals)))


def label(build):
    return {"now": "", "before": " *before*", "1 alert": " *1 alert*"}[build]


def report(b, started):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        m = re.search(r"model name\s*:\s*(.*)", f.read())
        cpu = m.group(1) if m else cpu
    nginx_v = subprocess.run([NGINX, "-v"], capture_output=True, text=True).stderr.strip()
    wrk_v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "wrk"], capture_output=True,
                           text=True).stdout
    out = [f"# Benchmark results", "",
           f"Written by `make bench` (bench/run.py) on {started:%Y-%m-%d %H:%M} UTC, "
           f"{'--quick, ' if b.quick else ''}{b.runs} runs of {b.seconds} s per figure: "
           "median, with (min–max) where there are several runs.", "",
           f"- Machine: {cpu}, {os.cpu_count()} cores, Linux {platform.release()}",
           f"- {nginx_v}, Debian's binary; the module at commit "
           f"{git_head()}; wrk {wrk_v}; payload: 10 alerts, {b.payload_bytes} bytes (the "
           f"*1 alert* row: {os.path.getsize(b.payload_one)} bytes)",
           "- Everything on loopback in one nginx: the webhook location, a DingTalk stand-in "
           "server block answering `{\"errcode\":0,\"errmsg\":\"ok\"}`, and the reference "
           "`proxy_pass` of the same POST to the same stand-in (upstream keepalive), so the "
           "load generator, the stand-in and nginx share the same 2 cores in both cases.",
           "- What the profiles showed and what was changed, with before/after figures: "
           "[PROFILE.md](PROFILE.md)."]
    measured = b.results.get("measured", {})
    if len(set(measured.values())) > 1:  # a run with --only: the other sections are older
        out.append("- Sections from different runs (`--only`), each measured at: " +
                   ", ".join(f"{name} {when}" for name, when in measured.items()) + ".")
    out.append("")

    t = b.results.get("throughput")
    if t:
        out += ["## 1. Throughput and latency of delivery", "",
                "Requests/s, latency and nginx CPU (all processes and threads) per 1000 "
                "webhooks; the module (thread pool of 4, as nginx.conf.example) next to "
                "`proxy_pass` of the same request.", "",
                f"Rows marked *before* are the module at {BEFORE_COMMIT} (before issue 14), "
                "measured in the same run next to a proxy_pass run of their own. The row marked "
                "*1 alert* sends a 1-alert body (both columns), whose parse + render takes "
                "about a tenth of the 10-alert one's: what it reaches is near the most the "
                "rest of a delivery (the hand-off to a pool thread and back, libcurl's "
                "exchange, the kernel's wakeups) allows.", "",
                "| workers | conns | module r/s | proxy_pass r/s | ratio | module p50 / p99 ms | "
                "proxy p50 / p99 ms | module CPU s/1000 | proxy CPU s/1000 |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in t:
            m, p = row["module"], row["proxy"]
            out.append(
                f"| {row['workers']}{label(row.get('build', 'now'))} "
                f"| {row['conns']} | {spread(m, 'rps')} | {spread(p, 'rps')} "
                f"| {med(m, 'rps') / med(p, 'rps'):.0%} "
                f"| {med(m, 'p50_us') / 1000:.2f} / {med(m, 'p99_us') / 1000:.2f} "
                f"| {med(p, 'p50_us') / 1000:.2f} / {med(p, 'p99_us') / 1000:.2f} "
                f"| {med(m, 'cpu_per_1000'):.3f} | {med(p, 'cpu_per_1000'):.3f} |")
        added = {}
        for build in ("now", "before"):
            c1 = [r for r in t if r["conns"] == 1 and r["workers"] == 1 and
                  r.get("build", "now") == build][0]
            added[build] = (med(c1["module"], "p99_us") - med(c1["proxy"], "p99_us")) / 1000
        out += ["", f"p99 added by the module at concurrency 1 (1 worker): {added['now']:.2f} ms "
                f"(before: {added['before']:.2f} ms).", ""]

    nb = b.results.get("nonblocking")
    if nb:
        out += ["## 2. Non-blocking: a static page while 200 deliveries wait", "",
                "One worker. The stand-in (an nginx of its own, so that its work does not land "
                "on the measured worker) answers after 1 s; 200 connections keep 200 deliveries "
                "in flight while 4 connections fetch a static location on the same worker. With "
                "nginx's default pool of 32 threads, 32 deliveries are sending and the rest wait "
                "in the pool's queue (which carries over from one run to the next, hence fewer answered); "
                "with 256 threads all 200 are sending at once.", "",
                "| thread pool | static p50 ms idle / busy | static p99 ms idle / busy | "
                "p99 busy / idle | static r/s idle / busy | webhooks answered per run |",
                "| --- | --- | --- | --- | --- | --- |"]
        for row in nb:
            idle, busy = row["idle"], row["busy"]
            out.append(
                f"| {row['threads']} | {med(idle, 'p50_us') / 1000:.2f} / "
                f"{med(busy, 'p50_us') / 1000:.2f} | {med(idle, 'p99_us') / 1000:.2f} / "
                f"{med(busy, 'p99_us') / 1000:.2f} | "
                f"{med(busy, 'p99_us') / med(idle, 'p99_us'):.2f}x | {med(idle, 'rps'):.0f} / "
                f"{med(busy, 'rps'):.0f} | {spread(busy, 'deliveries')} |")
        out.append("")

    mem = b.results.get("memory")
    if mem:
        plain, now, old, arenas = mem["plain_idle"], mem["now"], mem["before"], mem["arenas"]
        pool4 = mem.get("pool4", now)

        def over(kb):
            return f"{kb} ({(kb - plain) / 1024:+.1f} MB)"

        out += ["## 3. Memory (worker RSS)", "",
                "One worker, nginx's default pool of 32 threads; HTTPS deliveries 16 at once, "
                "with verification on against the system's CA bundle (and the bench CA, "
                "appended: `dingtalk_ssl_trusted_certificate`), to an HTTPS stand-in in an nginx "
                "of its own (its TLS work does not count). kB, and over the plain worker. "
                f"Before: {BEFORE_COMMIT}, the module before issue 14, in the same run. The last "
                "column is this build with nginx started under `MALLOC_ARENA_MAX=2` and "
                "`GLIBC_TUNABLES=glibc.malloc.tcache_count=0` (glibc: 2 malloc arenas for the "
                "whole process instead of up to 8 per core, and no per-thread cache of freed "
                "blocks), settings the module leaves to the operator; the one before it, this "
                "build with a pool of 4 threads, as every configuration shipped here declares.",
                "",
                "| | before | now | now, pool of 4 | now, lean malloc |",
                "| --- | --- | --- | --- | --- |",
                f"| plain nginx worker (same config, no module), idle | {plain} | {plain} | "
                f"{plain} | {plain} |",
                f"| with the module, idle | {over(old['idle'])} | {over(now['idle'])} | "
                f"{over(pool4['idle'])} | {over(arenas['idle'])} |"]
        for (n_old, kb_old), (n_now, kb_now), (_, kb_p4), (_, kb_ar) in zip(
                old["samples"], now["samples"], pool4["samples"], arenas["samples"]):
            out.append(f"| after ~{n_now} HTTPS deliveries (before: {n_old}) | {over(kb_old)} | "
                       f"{over(kb_now)} | {over(kb_p4)} | {over(kb_ar)} |")
        out += [f"| peak with 1000 deliveries in flight (VmHWM; pool of 256 threads, HTTP) | "
                f"{old['peak_1000']} | {now['peak_1000']} | {pool4['peak_1000']} | "
                f"{arenas['peak_1000']} |",
                f"| after those 1000 drained | {old['after_peak']} | {now['after_peak']} | "
                f"{pool4['after_peak']} | {arenas['after_peak']} |", ""]
        if "anon" in now and "plain_anon" in mem:
            pa = mem["plain_anon"]
            out += ["Of the worker's RSS, the private part (`RssAnon`: malloc arenas, stacks, "
                    "written library data; the rest is library code and data read from files, "
                    "shared with other processes), kB over the plain worker's "
                    f"{pa} kB: idle {now['idle_anon'] - pa:+d} (before "
                    f"{old['idle_anon'] - pa:+d}); "
                    + "; ".join(f"after ~{n} HTTPS deliveries {kb - pa:+d} (before "
                                f"{kb_old - pa:+d}; pool of 4: {kb4 - pa:+d}; lean malloc: "
                                f"{kb_lean - pa:+d})"
                                for (n, kb), (_, kb_old), (_, kb4), (_, kb_lean) in
                                zip(now["anon"], old["anon"], pool4["anon"],
                                    arenas["anon"])) + ".", ""]
        first, last = now["samples"][0], now["samples"][-1]
        out += [f"Growth from {first[0]} to {last[0]} HTTPS deliveries: "
                f"{last[1] - first[1]} kB (before: {old['samples'][-1][1] - old['samples'][0][1]}"
                " kB).", ""]

    rb = b.results.get("render")
    if rb:
        out += ["## 4. Parse + render (Google Benchmark, in process)", "",
                "| alerts | payload bytes | parse + render µs | of which parse µs | "
                "bytes allocated | allocations | message bytes |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        by = {}
        for x in rb:
            if x.get("aggregate_name", "median") not in ("median",):
                continue
            name = x["run_name"] if "run_name" in x else x["name"]
            by[name] = x
        for n in (1, 10, 100, 1000):
            pr, p = by.get(f"BM_ParseRender/{n}"), by.get(f"BM_Parse/{n}")
            if pr and p:
                out.append(f"| {n} | {pr['payload_bytes']:.0f} | {pr['real_time']:.1f} | "
                           f"{p['real_time']:.1f} | {pr['alloc_bytes']:.0f} | "
                           f"{pr['allocs']:.0f} | {pr['message_bytes']:.0f} |")
        out.append("")
    if b.results.get("worst"):
        out += worst_report(b.results["worst"])
    ho = b.results.get("handoff")
    if ho:
        out += ["The hand-off to a pool thread and back by itself (bench/handoff.cpp: a model "
                "of nginx's thread pool, a queue under a mutex, a condition variable, an "
                "eventfd the loop waits for in epoll; 4 threads, a task that does nothing, "
                f"20,000 round trips, {len(ho)} runs): p50 {spread(ho, 'p50_us', '{:.1f}')} µs, "
                f"p99 {spread(ho, 'p99_us', '{:.1f}')} µs, CPU {spread(ho, 'cpu_us', '{:.1f}')} "
                "µs per round trip.", ""]

    tls = b.results.get("tls")
    if tls:
        out += ["## 5. Connections to DingTalk over HTTPS", "",
                "One worker, nginx's default pool of 32 threads, an HTTPS stand-in; TLS "
                "connections and full handshakes (not resumed) counted by the stand-in's "
                f"`$connection` and `$ssl_session_reused`. Before: {BEFORE_COMMIT}, a curl "
                "handle and connection per pool thread; now: the threads share kept-alive "
                "connections and TLS sessions.", "",
                "| build | concurrent webhooks | deliveries | TLS connections | full handshakes |",
                "| --- | --- | --- | --- | --- |"]
        for r in tls:
            out.append(f"| {r['build']} | {r['conns']} | {r['deliveries']} | "
                       f"**{r['connections']}** | {r['full_handshakes']} |")
        out.append("")
    if b.results.get("cost"):
        out += cost_report(b.results["cost"])
    if b.results.get("store"):
        out += store_report(b.results["store"])
    return "\n".join(out)


def store_report(r):
    out = ["## 7. dingtalk_store (Redis on loopback)", "",
           f"{r['count']} sequential deliveries of one message each (paced under the limit, never "
           "held) to the Python stand-in, one worker, with and without `dingtalk_store`; Redis "
           "scripts per delivery counted by `INFO commandstats`. The event loop never waits for "
           "Redis: the scripts run in the pool threads.", "",
           "| | median ms | p90 ms | Redis scripts per delivery |", "| --- | --- | --- | --- |"]
    for row in r["rows"]:
        out.append(f"| {row['name']} | {row['median']:.2f} | {row['p90']:.2f} | "
                   f"{row['scripts']:.2f} |")
    out += ["", f"The three scripts alone, in one thread on a kept connection "
            f"(build/store_bench): {r['scripts_alone']}.", ""]
    return out


def splice(text, old_path, measured):
    """A run with --only and no build/bench.json: the sections it did not measure are kept as
    the last results.md has them, and its header says when each was measured."""
    try:
        with open(old_path) as f:
            old = f.read()
    except FileNotFoundError:
        return text

    def sections(t):
        parts = re.split(r"(?m)^(?=## \d+\. )", t)
        return parts[0], {p.split("\n", 1)[0]: p for p in parts[1:]}

    _, new = sections(text)
    head, kept = sections(old)
    kept.update(new)
    line = re.search(r"(?m)^- Sections from different runs \(`--only`\), each measured at: (.*)\.$",
                     head)
    if line:
        dates = dict(re.findall(r"(\w+) (\d{4}-\d\d-\d\d \d\d:\d\d UTC \(\w+\))", line.group(1)))
        dates.update(measured)
        when = ", ".join(f"{name} {at}" for name, at in dates.items())
        head = head.replace(line.group(0), f"{line.group(0).split(': ')[0]}: {when}.")
    order = sorted(kept, key=lambda t: int(re.match(r"## (\d+)", t).group(1)))
    return (head + "".join(kept[t] if kept[t].endswith("\n") else kept[t] + "\n"
                           for t in order)).rstrip("\n")


def worst_report(rows):
    """Parse + render_messages (+ a fold) of the worst 1 MiB bodies (render_bench's
    BM_WorstBody), each template, next to bench/render-before.json (the same benchmark at the build before)."""
    with open(os.path.join(REPO, "bench", "render-before.json")) as f:
        before = json.load(f)

    def by_name(benchmarks):
        out = {}
        for x in benchmarks:
            if x.get("aggregate_name", "median") == "median":
                out[x.get("run_name", x["name"]).split("_median")[0]] = x
        return out

    now, old = by_name(rows), by_name(before["benchmarks"])
    cases = {}
    for name, x in now.items():
        shape, template = x["label"].rsplit(", ", 1)
        cases[(name.split("/")[1], name.split("/")[2])] = (shape, template, x, old.get(name))
    shapes = sorted({(int(s), c[0]) for (s, _), c in cases.items()})
    templates = sorted({(int(t), c[1]) for (_, t), c in cases.items()})

    def ms(x):
        return f"{x['real_time']:.1f}" if x else "–"

    out = ["### Parse + render_messages + fold of the worst 1 MiB bodies", "",
           "render_bench's BM_WorstBody: each body (1 MiB, bench/render_bench.cpp) parsed and "
           "rendered with `dingtalk_max_messages 10`, the built-in layout or a template with a "
           "title template that names every alert shown, then, when it went as one message, "
           "folded as a storm folds at most (its section and 63 copies: the room's 64); ms, "
           "median of "
           f"{rows[0].get('repetitions', 1)} repetitions, and the most heap held at once (parse "
           "included: simdjson's buffers for a 1 MiB body are ~15 MB). Before: "
           f"{before['module']}. Per template, its slowest body with `dingtalk_max_alerts` 100 "
           "(the default), and with 10000 (the most):", "",
           "| template | slowest body (max_alerts 100) | ms | before ms | peak heap MB | "
           "max_alerts 10000: ms | before ms | peak heap MB |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for t, tname in templates:
        mine = [c for (s, tt), c in cases.items() if int(tt) == t and "10000" not in c[0]]
        big = [c for (s, tt), c in cases.items() if int(tt) == t and "10000" in c[0]]
        worst = max(mine, key=lambda c: c[2]["real_time"])
        peak = max(c[2]["peak_heap_bytes"] for c in mine) / 1e6
        line = (f"| {tname} | {worst[0]} | {ms(worst[2])} | {ms(worst[3])} | {peak:.1f} |")
        if big:
            line += (f" {ms(big[0][2])} | {ms(big[0][3])} | "
                     f"{big[0][2]['peak_heap_bytes'] / 1e6:.1f} |")
        else:
            line += " | | |"
        out.append(line)
    out += ["", "Every body and template, ms now (before):", "",
            "| body | " + " | ".join(n.replace("templates/", "").replace("t/fixtures/", "")
                                     for _, n in templates) + " |",
            "| --- |" + " --- |" * len(templates)]
    for s, sname in shapes:
        cells = []
        for t, _ in templates:
            c = cases.get((str(s), str(t)))
            cells.append(f"{ms(c[2])} ({ms(c[3])})" if c else "")
        out.append(f"| {sname} | " + " | ".join(cells) + " |")
    out.append("")
    return out


def cost_report(rows):
    """The cost table: this build next to bench/cost-before.json (the module before the bounds
    issue, measured the same way)."""
    with open(os.path.join(REPO, "bench", "cost-before.json")) as f:
        before = json.load(f)

    def key(r):
        return (r["size"], r["shape"], r["template"], r.get("raised", False))

    old = {key(r): r for r in before["rows"]}

    def cell(r):
        if r is None:
            return "not measured"
        if r["status"] == "crash":
            return "**worker crashed**"
        return f"{r['status']}: {r['cpu_ms']:.0f} ms CPU, {r['peak_mb']:.1f} MB"

    out = ["## 6. The cost of the worst bodies", "",
           "bench/cost.py: one worker, each body to a DingTalk stand-in that answers at once; the "
           "worker's CPU time (all threads; /proc ticks of 10 ms) and its peak RSS over what it "
           "held before (VmHWM after a reset). 1 MiB is nginx's default body size; 64 MiB bodies "
           "are refused with 413 by `dingtalk_max_body_size` (1m), and measured again with it "
           f"raised to 64m. Before: {before['module']}.", "",
           "| size | shape | template | before | now |", "| --- | --- | --- | --- | --- |"]
    refused = [r for r in rows if r["size"] == "64m" and not r.get("raised")]
    if refused:
        worst = max(r["wall_ms"] for r in refused)
        ok = all(r["status"] == 413 for r in refused)
        out.append(f"| 64m | every shape above | both | accepted with client_max_body_size 64m "
                   f"(see below) | {'413' if ok else 'NOT ALL 413'} within {worst:.0f} ms, "
                   "nothing parsed |")
    for r in rows:
        if r in refused:
            continue
        label = r["size"] + (" (limit 64m)" if r.get("raised") else "")
        prior = old.get(key(dict(r, raised=False))) if r.get("raised") or r["size"] == "1m" \
            else None
        out.append(f"| {label} | {r['shape']} | {'yes' if r['template'] else 'no'} | "
                   f"{cell(prior)} | {cell(r)} |")
    out.append("")
    return out


def git_head():
    return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip() or "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only",
                    help="comma-separated: throughput,nonblocking,memory,render,tls,cost,store; "
                         "the other sections keep the figures of the last run (build/bench.json)")
    args = ap.parse_args()
    for path, what in ((MODULE, "module"), (BEFORE, f"the module at {BEFORE_COMMIT}"),
                       (ECHO, "Debian's echo module"),
                       (os.path.join(BUILD, "render_bench"), "render_bench"),
                       (os.path.join(BUILD, "handoff_bench"), "handoff_bench")):
        if not os.path.exists(path):
            sys.exit(f"{what} missing at {path}: run make bench")
    started = datetime.datetime.utcnow()
    b = Bench(args.quick)
    scenarios = (args.only or "render,throughput,nonblocking,memory,tls,cost,store").split(",")
    saved = os.path.join(BUILD, "bench.json")
    if args.only and os.path.exists(saved):  # the other scenarios' figures of the last run
        with open(saved) as f:
            b.results = json.load(f)
    try:
        for name in scenarios:
            print(f"scenario: {name}", flush=True)
            getattr(b, {"tls": "tls_reuse"}.get(name, name))()
            b.results.setdefault("measured", {})[name] = f"{started:%Y-%m-%d %H:%M} UTC ({git_head()})"
    finally:
        b.stop()
        b.stop_standin()
    text = report(b, started)
    target = os.path.join(REPO, "bench", "results.md")
    if args.only:  # the sections not measured now, nor saved, stay as results.md has them
        text = splice(text, target, b.results["measured"])
    with open(target, "w") as f:
        f.write(text + "\n")
    with open(saved, "w") as f:
        json.dump(b.results, f, indent=1)
    print(f"wrote {target} in {time.time() - started.timestamp():.0f} s" if False else
          f"wrote {target}")
    shutil.rmtree(b.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
