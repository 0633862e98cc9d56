"""dingtalk_store: several nginx instances that send to one robot share its rate window in Redis
(Debian's redis-server, started here on 127.0.0.1:26391), and fall back to a local share of it
when Redis is down, slow or restarted empty.

The window is scaled down to keep CI short: dingtalk_rate_limit 10/10s, and the stand-in robot
enforces the same 10 per 10 s by answering 130101 past it (as DingTalk does 20 per minute).
What is counted is what the stand-in posted (the group's view), never what the module answered.
Each instance gets alerts of its own pods (i0-..., i1-...), so what a message shows says which
instance sent it; clients retry as Alertmanager 0.25 does (harness.like_alertmanager).

Without dingtalk_store, the first test sees 130101 (three windows of 10, not one), the
fallback checks see more than the fallback share per instance, and the second Alertmanager
replica's copy is posted beside the first's.
"""

import concurrent.futures
import datetime
import json
import os
import random
import re
import shutil
import socket
import subprocess
import threading
import time

import pytest

from alertmanager_harness import ALERTMANAGER_BIN, Alertmanager, executable, http_get, wait_until
from harness import TOKEN, MockDingTalk, alert, like_alertmanager, notification, relay
from test_metrics import promtool

REDIS_PORT = 26391
CLUSTER_PORTS = (26394, 26395)  # the two Alertmanagers' gossip
LIMIT = (10, 10.0)  # COUNT per PERIOD seconds, at the module and at the stand-in
FALLBACK = 3  # per instance, per PERIOD


class Redis:
    """A redis-server of its own, without persistence: restarted, it is empty."""

    def __init__(self, port=REDIS_PORT):
        self.port = port
        self.proc = None

    def start(self, in_use=True):
        """in_use: as a store the instances have used for a while (its marker set); else as
        one restarted empty."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    if in_use:
                        s.sendall(b"SET dingtalk:since 1\r\n")
                        assert s.recv(16) == b"+OK\r\n"
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def redis():
    if shutil.which("redis-server") is None:
        why = "redis-server not installed (scripts/install-deps.sh test installs it)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    r = Redis().start()
    yield r
    r.kill()


@pytest.fixture
def robot():
    m = MockDingTalk()
    m.dingtalk_limit = LIMIT
    yield m
    m.close()


def site(robot, store_port=REDIS_PORT, store_extra=""):
    return f"""
    dingtalk_store redis://127.0.0.1:{store_port} fallback={FALLBACK}/10s {store_extra};
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {robot.url};
            dingtalk_thread_pool dingtalk;
            dingtalk_rate_limit {LIMIT[0]}/10s hold=10s;
        }}
        location = /metrics {{ dingtalk_metrics; }}
        location = /static {{ return 200 "static\\n"; }}
    }}
"""


def most_in_a_period(times, period=LIMIT[1]):
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + period) for t in times), default=0)


def instance_of(rec):
    found = set(re.findall(r"\bi(\d)-p\d+", rec.title + "\n" + rec.text))
    assert len(found) == 1, (rec.title, rec.text)
    return int(found.pop())


def storm(instances, per_instance, spread, seed):
    """Each instance gets per_instance notifications of its own pods, spread over `spread`
    seconds, each retried as Alertmanager does; returns the pods."""
    rng = random.Random(seed)
    jobs, pods = [], []
    for i, ngx in enumerate(instances):
        for k in range(per_instance):
            pod = f"i{i}-p{k:02d}"
            pods.append(pod)
            jobs.append((k * spread / per_instance, ngx, notification(alert(pod=pod))))

    def send(job):
        after, ngx, payload = job
        time.sleep(after)
        return like_alertmanager(ngx, payload, random.Random(rng.random()), flush_timeout=15,
                                 group_interval=15, give_up=120)[-1].status

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        statuses = list(pool.map(send, jobs))
    assert statuses == [200] * len(jobs), statuses
    return pods


def assert_each_posted_once(robot, pods):
    posts = robot.posts_of(pods)
    assert {p: len(v) for p, v in posts.items() if len(v) != 1} == {}, "each alert once"


def metric(ngx, name):
    m = re.search(rf"^{name} (\d+)", ngx.get("/metrics").body.decode(), re.M)
    return int(m.group(1))


def test_three_instances_share_one_window(nginx_factory, redis, robot):
    """A storm at 3 instances: at most COUNT per PERIOD at the robot in total, no 130101, one
    window (about COUNT in the busiest period, not a third of it), every alert posted once."""
    instances = [nginx_factory(site(robot)) for _ in range(3)]
    pods = storm(instances, per_instance=12, spread=4, seed=1)
    posted = [r.posted_at for r in robot.posted()]
    assert robot.over_limit == 0, "DingTalk answered 130101"
    assert most_in_a_period(posted) <= LIMIT[0]
    assert most_in_a_period(posted) >= LIMIT[0] - 2, "one shared window, not three thirds"
    assert_each_posted_once(robot, pods)
    for ngx in instances:
        assert metric(ngx, "dingtalk_store_up") == 1
        assert metric(ngx, "dingtalk_store_errors_total") == 0
    promtool(instances[0].get("/metrics").body.decode())


def test_redis_restarted_empty_mid_storm(nginx_factory, redis, robot):
    """Redis killed during a storm at 2 instances, restarted empty 4 s later: the instances fall
    back to FALLBACK per PERIOD each (one warn line each way), never more at the robot than the
    limit, nothing lost, the store used again within 5 s of its return."""
    instances = [nginx_factory(site(robot)) for _ in range(2)]
    events = {}

    def outage():
        time.sleep(3)
        events["killed"] = time.time()
        redis.kill()
        time.sleep(4)
        redis.start(in_use=False)
        events["back"] = time.time()
        deadline = time.time() + 5
        while time.time() < deadline and not all(metric(n, "dingtalk_store_up") for n in instances):
            time.sleep(0.1)
        events["up"] = time.time()

    t = threading.Thread(target=outage)
    t.start()
    pods = storm(instances, per_instance=14, spread=20, seed=2)
    t.join()
    assert events["up"] - events["back"] < 5, "the store used again within 5 s"
    posted = robot.posted()
    assert robot.over_limit == 0, "DingTalk answered 130101"
    assert most_in_a_period([r.posted_at for r in posted]) <= LIMIT[0]
    # from the kill until a PERIOD after the empty store's return: each its fallback share
    fallback_end = events["back"] + LIMIT[1]
    for i in range(len(instances)):
        during = [r.posted_at for r in posted
                  if events["killed"] <= r.posted_at <= fallback_end and instance_of(r) == i]
        assert most_in_a_period(during) <= FALLBACK, (i, during)
    assert_each_posted_once(robot, pods)
    # an instance that sent nothing while Redis was down learns only that it was emptied
    failed = 'dingtalk_store "redis://127.0.0.1:26391" failed'
    logs = [ngx.error_log() for ngx in instances]
    assert sum(log.count(failed) for log in logs) >= 1
    for log in logs:
        assert log.count(failed) == log.count("answers again") <= 1, log
        assert log.count(failed) + log.count("was emptied") == 1, log


class SlowProxy:
    """A TCP front for Redis that holds every request `delay` seconds before passing it on."""

    def __init__(self, target, delay):
        self.target, self.delay = target, delay
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=relay, args=(client, upstream, self.delay),
                             daemon=True).start()
            threading.Thread(target=relay, args=(upstream, client), daemon=True).start()

    def close(self):
        self.sock.close()


def test_slow_redis_blocks_no_worker(nginx_factory, redis, robot):
    """Redis answering after 2 s: a static page of the same nginx answers at once all along,
    deliveries fall back within the store's timeout, nothing is lost."""
    proxy = SlowProxy(REDIS_PORT, 2.0)
    try:
        ngx = nginx_factory(site(robot, store_port=proxy.port, store_extra="timeout=200ms"))
        done = []
        sender = threading.Thread(target=lambda: done.append(
            storm([ngx], per_instance=6, spread=2, seed=3)))
        sender.start()
        slowest = 0.0
        while sender.is_alive():
            t0 = time.time()
            assert ngx.get("/static").status == 200
            slowest = max(slowest, time.time() - t0)
            time.sleep(0.05)
        sender.join()
        assert slowest < 0.5, f"a static page took {slowest:.2f} s"
        assert done, "the storm failed"
        assert_each_posted_once(robot, done[0])
        assert most_in_a_period([r.posted_at for r in robot.posted()]) <= FALLBACK
        assert metric(ngx, "dingtalk_store_up") == 0
        assert "dingtalk_store \"redis://127.0.0.1:" in ngx.error_log()
    finally:
        proxy.close()


def test_nginx_t_checks_the_store(nginx_factory, robot, tmp_path):
    """nginx -t: rediss:// and a broken URL fail with the reason; the password file is read
    (one line) and never shown."""
    secret = tmp_path / "redis-password"
    secret.write_text("s3cret-redis-pass\n")
    ok = nginx_factory(site(robot, store_extra=f"password_file={secret}"), start=False)
    good, out = ok.test_config()
    assert good, out
    for url, why in (("rediss://127.0.0.1:6380", "TLS"),
                     ("redis://127.0.0.1", "is not redis://"),
                     ("redis://u:s3cret-redis-pass@h:1", "must be a name without")):
        bad = nginx_factory(site(robot).replace(f"redis://127.0.0.1:{REDIS_PORT}", url),
                            start=False)
        bad.allowed.append("[emerg]")
        good, out = bad.test_config()
        assert not good and why in out and "nginx.conf:" in out, out
        assert "s3cret" not in out
    for extra in ("fallback=0/60s", "fallback=6/soon", "timeout=forever", "timeout=11s", "db=2"):
        bad = nginx_factory(site(robot, store_extra=extra), start=False)
        bad.allowed.append("[emerg]")
        good, out = bad.test_config()
        assert not good and f'invalid parameter "{extra}"' in out, out
    missing = nginx_factory(site(robot, store_extra="password_file=/nonexistent"), start=False)
    missing.allowed.append("[emerg]")
    good, out = missing.test_config()
    assert not good and "cannot open" in out, out


def cluster_of_two(instances):
    """Two real Alertmanagers in one HA cluster on 127.0.0.1, each notifying its own nginx."""
    if not executable(ALERTMANAGER_BIN):
        why = f"Alertmanager not installed at {ALERTMANAGER_BIN}"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    ams = []
    for me, peer, ngx in zip(CLUSTER_PORTS, reversed(CLUSTER_PORTS), instances):
        ams.append(Alertmanager(f"http://127.0.0.1:{ngx.port}/", group_interval="15s",
                                cluster=(me, [peer])).start())

    def peers():
        return all(len(json.loads(http_get(am.url + "/api/v2/status")[1])["cluster"]["peers"]) == 2
                   for am in ams)

    wait_until(peers, 20, "two Alertmanager peers", lambda: ams[0].log()[-2000:])
    return ams


def am_alert(pod, starts):
    return {"labels": {"alertname": "payments", "severity": "critical", "pod": pod},
            "annotations": {"message": f"Pod pay/{pod} is failing"},
            "startsAt": starts.strftime("%Y-%m-%dT%H:%M:%SZ")}


def test_two_alertmanagers_in_a_cluster_post_each_alert_once(nginx_factory, redis, robot):
    """Two real Alertmanager 0.25 replicas in one HA cluster, each with its own nginx, one robot
    that reads each request and answers it 40 s later. The first replica's webhook stalls; after
    its 15 s peer wait the second replica sends the same notification to its own nginx, which
    finds the first instance's record in Redis and waits for it (503 "in progress" to its
    Alertmanager) instead of posting beside it. Every alert is posted once, none lost."""
    instances = [nginx_factory(site(robot)) for _ in range(2)]
    ams = cluster_of_two(instances)
    try:
        robot.stall()
        now = datetime.datetime.now(datetime.timezone.utc)
        pods = ["pay-0", "pay-1", "pay-2"]
        for am in ams:  # as Prometheus does: every alert to every replica
            am.post_alerts([am_alert(pod, now) for pod in pods])
        wait_until(lambda: robot.received, 30, "the first notification", ams[0].log)
        wait_until(lambda: all(am.webhook_requests() >= 1 for am in ams), 40,
                   "the second replica's copy, after its peer wait", ams[1].log)
        time.sleep(max(0.0, robot.received[0].at + 40 - time.time()))
        robot.release()
        wait_until(lambda: any(am.webhook_requests() > am.webhook_requests_failed()
                               for am in ams), 60, "a 200 for an Alertmanager",
                   lambda: "\n".join(n.error_log()[-2000:] for n in instances))
        time.sleep(10)  # a copy would be posted by now
        assert_each_posted_once(robot, pods)
        assert len(robot.received) == 1, "DingTalk had one request"
        logs = "".join(n.error_log() for n in instances)
        assert "another nginx instance (dingtalk_store) is delivering this notification" in logs
    finally:
        for am in ams:
            am.stop()
            am.cleanup()
