"""Reload, quit and a killed worker while deliveries are in flight: each one completes or its
client gets a 5xx (or a dropped connection, which Alertmanager retries too); none is answered
200 without reaching DingTalk; old workers exit once their deliveries are done."""

import concurrent.futures
import http.client
import os
import signal
import time

from harness import alert, notification, webhook

MANY = 200
POOL = "thread_pool dingtalk threads=32 max_queue=1024;"


def pod_of(rec):
    return rec.json["markdown"]["text"].split("**故障pod**: ")[1].split("\n")[0]


def post_all(ngx, count, pool):
    def send(i):
        try:
            return i, ngx.post("/", notification(alert(pod=f"pod-{i}")), timeout=60).status
        except (ConnectionError, http.client.HTTPException, OSError) as e:
            return i, type(e).__name__

    return [pool.submit(send, i) for i in range(count)]


def check_outcomes(results, mock):
    for i, status in results:
        assert status == 200 or isinstance(status, str) or 500 <= status < 600, (i, status)
    answered_ok = {f"pod-{i}" for i, status in results if status == 200}
    arrived = [pod_of(r) for r in mock.accepted()]
    assert answered_ok <= set(arrived), "a 200 always means DingTalk took the message"
    assert len(arrived) == len(set(arrived)), "nothing posted twice"
    return answered_ok


def wait_gone(ngx, pids, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline and set(pids) & set(ngx.workers(all_states=True)):
        time.sleep(0.05)
    return not set(pids) & set(ngx.workers(all_states=True))


def test_reload_with_200_deliveries_in_flight(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit off;"), workers=2, thread_pool=POOL)
    mock.default = {"status": 200, "body": mock.OK, "delay": 1}
    with concurrent.futures.ThreadPoolExecutor(max_workers=MANY) as pool:
        futures = post_all(ngx, MANY, pool)
        assert mock.wait_for(40)
        old = ngx.workers()
        ngx.reload()
        assert ngx.get("/static").status == 200, "the new workers serve at once"
        results = [f.result() for f in futures]
    ok = check_outcomes(results, mock)
    assert len(ok) == MANY, f"a reload drops nothing: {len(ok)}/{MANY} delivered"
    assert wait_gone(ngx, old), "old workers exit once their deliveries are done"


def test_quit_with_200_deliveries_in_flight(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit off;"), workers=2, thread_pool=POOL)
    mock.default = {"status": 200, "body": mock.OK, "delay": 1}
    with concurrent.futures.ThreadPoolExecutor(max_workers=MANY) as pool:
        futures = post_all(ngx, MANY, pool)
        assert mock.wait_for(40)
        time.sleep(0.5)  # let every client connect and send before nginx stops accepting
        ngx.signal(signal.SIGQUIT)
        results = [f.result() for f in futures]
    ok = check_outcomes(results, mock)
    assert len(ok) >= MANY - 5, f"graceful quit finishes deliveries: {len(ok)}/{MANY}"
    deadline = time.time() + 20
    while time.time() < deadline and ngx.running():
        time.sleep(0.05)
    assert not ngx.running(), "nginx exits once the deliveries are done"


def test_killed_worker_drops_its_clients_and_a_new_one_serves(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit off;"), workers=1)
    ngx.allowed.append("exited on signal 9")
    mock.default = {"status": 200, "body": mock.OK, "delay": 2}
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = post_all(ngx, 5, pool)
        assert mock.wait_for(4)
        (victim,) = ngx.workers()
        os.kill(victim, signal.SIGKILL)
        results = [f.result() for f in futures]
    assert all(isinstance(status, str) for _, status in results), \
        f"clients of a killed worker see a dropped connection, never a 200: {results}"
    deadline = time.time() + 5
    while time.time() < deadline and (not ngx.workers() or victim in ngx.workers()):
        time.sleep(0.02)
    t = time.time()
    assert ngx.get("/static").status == 200
    assert time.time() - t < 1.0
    mock.default = {"status": 200, "body": mock.OK}
    assert ngx.post("/", notification()).status == 200


def test_a_killed_worker_leaves_no_deliveries_in_flight_behind(nginx_factory, mock):
    """Finding 19: dingtalk_tasks_in_flight kept the killed worker's deliveries forever."""
    ngx = nginx_factory(webhook(mock, """dingtalk_rate_limit off;
        }
        location = /metrics { dingtalk_metrics;"""), workers=1)
    ngx.allowed.append("exited on signal 9")
    mock.default = {"status": 200, "body": mock.OK, "delay": 2}
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        futures = post_all(ngx, 3, pool)
        assert mock.wait_for(3)
        assert "dingtalk_tasks_in_flight 3" in ngx.get("/metrics").body.decode()
        (victim,) = ngx.workers()
        os.kill(victim, signal.SIGKILL)
        [f.result() for f in futures]
    deadline = time.time() + 5
    while time.time() < deadline and (not ngx.workers() or victim in ngx.workers()):
        time.sleep(0.02)
    metrics = ngx.get("/metrics").body.decode()
    assert "dingtalk_tasks_in_flight 0" in metrics, metrics
