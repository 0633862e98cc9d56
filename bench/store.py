#!/usr/bin/python3
"""dingtalk_store against the shared zone alone: the latency it adds to a delivery, and the
Redis round trips per delivery (INFO commandstats). One nginx, one worker, the harness's
stand-in robot on loopback, a local redis-server; sequential webhooks, paced under the limit.

    make bench            (section 7 of bench/results.md; alone: BENCH_ARGS="--only store")

build/store_bench times the three scripts alone (claim, reserve, settle), in one thread, on a
kept connection.
"""

import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "t", "integration"))
from harness import TOKEN, MockDingTalk, Nginx, alert, notification  # noqa: E402

PORT = 26392


def redis_command(*args):
    with socket.create_connection(("127.0.0.1", PORT)) as s:
        s.sendall(("*%d\r\n" % len(args) + "".join(
            "$%d\r\n%s\r\n" % (len(a), a) for a in args)).encode())
        time.sleep(0.05)
        return s.recv(1 << 16).decode()


def script_calls():
    stats = redis_command("INFO", "commandstats")
    return sum(int(line.split("calls=")[1].split(",")[0]) for line in stats.splitlines()
               if line.startswith(("cmdstat_evalsha:", "cmdstat_eval:")))


def run(mock, store, count):
    ngx = Nginx(f"""
    {f"dingtalk_store redis://127.0.0.1:{PORT};" if store else ""}
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            dingtalk_thread_pool dingtalk;
            dingtalk_rate_limit 64/1s hold=0;
        }}
    }}
""", log_level="warn").start()
    try:
        for i in range(20):  # warm: connections to the stand-in and to Redis
            ngx.post("/", notification(alert(pod=f"warm-{i}")))
            time.sleep(0.025)
        before = script_calls() if store else 0
        took = []
        for i in range(count):
            t0 = time.perf_counter()
            assert ngx.post("/", notification(alert(pod=f"p{i}"))).status == 200
            took.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.025)  # 40 a second: under 64/1s, never held
        calls = (script_calls() - before) / count if store else 0
        return statistics.median(took), sorted(took)[int(count * 0.9)], calls
    finally:
        ngx.stop()


def measure(count):
    """{count, rows: [{name, median, p90, scripts}], scripts_alone}"""
    redis = subprocess.Popen(["redis-server", "--port", str(PORT), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    mock = MockDingTalk()
    try:
        time.sleep(0.3)
        redis_command("SET", "dingtalk:since", "1")  # a store in use, not warming
        rows = [("shared zone only", *run(mock, False, count)),
                ("dingtalk_store (Redis on loopback)", *run(mock, True, count))]
        bench = os.path.join(os.path.dirname(__file__), "..", "build", "store_bench")
        alone = subprocess.run([bench, str(PORT), "5000"], capture_output=True, text=True,
                               check=True).stdout.strip()
    finally:
        mock.close()
        redis.kill()
    return {"count": count, "scripts_alone": alone,
            "rows": [{"name": n, "median": m, "p90": p, "scripts": c} for n, m, p, c in rows]}
