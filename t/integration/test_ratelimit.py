"""DingTalk allows 20 messages a minute per robot: the module keeps to it across workers and
locations, holds a webhook briefly when a slot is near, and answers 503 + Retry-After otherwise,
so that Alertmanager retries and nothing is lost."""

import concurrent.futures
import json
import random
import re
import socket
import time

import pytest

from harness import TOKEN, alert, free_port, notification, webhook


def test_limit_is_per_robot_across_locations(nginx_factory, mock):
    ngx = nginx_factory(f"""
    dingtalk_token {TOKEN};
    dingtalk_api_url {mock.url};
    dingtalk_rate_limit 2/30s hold=0;
    server {{
        listen 127.0.0.1:%PORT%;
        location = /a {{ dingtalk; }}
        location = /b {{ dingtalk; }}
        location = /other {{ dingtalk; dingtalk_token feedbeef42; }}
    }}
""")
    assert ngx.post("/a", notification()).status == 200
    assert ngx.post("/b", notification()).status == 200
    r = ngx.post("/a", notification())
    assert r.status == 503, r
    assert 25 <= int(r.headers["retry-after"]) <= 31
    assert "over DingTalk's limit of 2 messages per 30 s" in r.json["reason"]
    assert ngx.post("/other", notification()).status == 200, "another robot has its own window"
    assert len(mock.received) == 3
    assert "over its rate limit" in ngx.error_log()


def test_webhook_is_held_until_a_slot_frees(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 2/3s hold=5s;"))
    start = time.time()
    assert ngx.post("/", notification(alert(pod="p0"))).status == 200
    assert ngx.post("/", notification(alert(pod="p1"))).status == 200
    assert ngx.post("/", notification(alert(pod="p2"))).status == 200
    arrivals = sorted(r.at - start for r in mock.received)
    assert arrivals[1] < 1.0 and arrivals[2] - arrivals[0] >= 3.0, arrivals
    assert time.time() - start < 6


def test_hold_is_bounded_then_503(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 1/20s hold=1s;"))
    assert ngx.post("/", notification()).status == 200
    t = time.time()
    r = ngx.post("/", notification())
    assert r.status == 503 and time.time() - t < 0.5, "not held when the wait exceeds hold"
    assert 18 <= int(r.headers["retry-after"]) <= 21


def test_rate_limit_off(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit off;"))
    assert all(ngx.post("/", notification()).status == 200 for _ in range(25))


def test_dingtalk_130101_cools_the_robot_down(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 20/60s cooldown=2s;"), workers=2)
    mock.answer({"body": {"errcode": 130101, "errmsg": "send too fast"}})
    r = ngx.post("/", notification())
    assert r.status == 503 and r.json["errcode"] == 130101
    assert int(r.headers["retry-after"]) == 2
    # the next webhooks do not hammer DingTalk: 503 at once, from any worker
    for _ in range(6):
        r = ngx.post("/", notification())
        assert r.status == 503 and "throttled this robot recently" in r.json["reason"], r
    assert len(mock.received) == 1
    time.sleep(2.2)
    assert ngx.post("/", notification()).status == 200
    assert len(mock.received) == 2


def test_rate_limit_survives_reload(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 2/30s hold=0;"))
    assert ngx.post("/", notification()).status == 200
    assert ngx.post("/", notification()).status == 200
    ngx.reload()
    assert ngx.post("/", notification()).status == 503, "a reload is no way around the limit"


@pytest.mark.slow
def test_sixty_webhooks_in_ten_seconds_lose_nothing(nginx_factory, mock):
    """The issue's scenario, at DingTalk's real limit: 60 webhooks for one robot in 10 s with 2
    workers; Alertmanager-style retries until all are delivered (about two minutes)."""
    mock.dingtalk_limit = (20, 60.0)  # the mock refuses like DingTalk would
    ngx = nginx_factory(webhook(mock), workers=2,
                        thread_pool="thread_pool dingtalk threads=8 max_queue=1024;")
    rng = random.Random(7)

    def alertmanager(i):
        """One notification, retried the way Alertmanager does on 5xx."""
        time.sleep(i / 6)  # 60 webhooks spread over 10 s
        statuses, backoff = [], 1.0
        payload = notification(alert(pod=f"pod-{i:02d}"))
        while True:
            r = ngx.post("/", payload, timeout=60)
            statuses.append(r.status)
            if r.status == 200 or len(statuses) > 40:
                return statuses
            assert r.status == 503 and int(r.headers["retry-after"]) > 0, r
            time.sleep(min(backoff, 10) * (0.5 + rng.random()))
            backoff *= 2

    started = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=60) as pool:
        histories = list(pool.map(alertmanager, range(60)))
    took = time.time() - started

    first = [h[0] for h in histories]
    assert set(first) <= {200, 503}
    assert first.count(200) <= 20 + 3, first  # a few may be held until the first minute ends
    assert all(h[-1] == 200 for h in histories), histories

    accepted = mock.accepted()
    # (notifications that waited for a slot went together, one message for several)
    pods = sorted(pod for r in accepted
                  for pod in re.findall(r"\*\*故障pod\*\*: (\S+)", r.json["markdown"]["text"]))
    assert pods == [f"pod-{i:02d}" for i in range(60)], "every alert exactly once"
    assert mock.over_limit == 0, "DingTalk never had to refuse a message"
    times = sorted(r.at for r in accepted)
    for k in range(len(times) - 20):
        assert times[k + 20] - times[k] >= 60.0, "at most 20 in any 60 s window"
    assert took < 200


def metrics_of(ngx, name):
    values = {}
    for line in ngx.get("/metrics").body.decode().splitlines():
        if line.startswith(name):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    return values


def test_the_window_counts_arrivals_not_reservations(nginx_factory, mock):
    """Finding 3: with 2/6s and a one-thread pool kept busy 2.5 s by another robot, two
    messages reserved at 0.2 s arrived at 2.5 s; a third sent at 6.6 s was DingTalk's 130101.
    The window now keeps when a send really ended, so the third waits until 8.6 s."""
    mock.dingtalk_limit = (2, 6.0)
    ngx = nginx_factory(f"""
    dingtalk_api_url {mock.url};
    dingtalk_thread_pool dingtalk;
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{ dingtalk; dingtalk_token {TOKEN}; dingtalk_rate_limit 2/6s hold=10s; }}
        location = /busy {{ dingtalk; dingtalk_token feedbeef42; }}
    }}
""", thread_pool="thread_pool dingtalk threads=1 max_queue=16;")
    mock.answer({"delay": 2.5})
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        busy = pool.submit(ngx.post, "/busy", notification())
        time.sleep(0.2)
        first = [pool.submit(ngx.post, "/", notification(alert(pod=f"p{i}"))) for i in range(2)]
        assert [f.result().status for f in first] == [200, 200]
        assert busy.result().status == 200
        time.sleep(max(0, 6.6 - (time.time() - start)))
        third = ngx.post("/", notification(alert(pod="p3")))
    assert third.status == 200, third
    ours = sorted(r.at - start for r in mock.received if r.query["access_token"] == TOKEN)
    assert ours[1] >= 2.4, f"the first two were held up by the busy pool: {ours}"
    assert ours[2] - ours[0] >= 6.0, f"two per 6 s, as DingTalk counts them: {ours}"
    assert mock.over_limit == 0, "DingTalk never had to refuse"


def test_a_burst_waits_for_sends_under_way(nginx_factory, mock):
    """Sends under way count until their deadline; a webhook right behind them is told to wait
    (a few re-checks), not refused, and goes when its slot comes."""
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 2/3s hold=5s;"))
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda i: ngx.post("/", notification(alert(pod=f"p{i}"))),
                                range(3)))
    assert [r.status for r in replies] == [200, 200, 200]
    arrivals = sorted(r.at - start for r in mock.received)
    assert arrivals[1] < 1.0 and arrivals[2] - arrivals[0] >= 3.0, arrivals


def test_an_outage_is_not_throttling(nginx_factory):
    """Finding 14: with DingTalk down, every attempt took a slot, and Alertmanager was told
    "over DingTalk's limit" within seconds. An attempt that never connected never arrived: it
    costs no slot, and the webhook ends as unreachable."""

    class Down:
        url = f"http://127.0.0.1:{free_port()}/robot/send"

    ngx = nginx_factory(webhook(Down, """dingtalk_rate_limit 2/60s hold=0;
            dingtalk_timeout 1s;
        }
        location = /metrics { dingtalk_metrics;"""))
    for _ in range(6):
        r = ngx.post("/", notification())
        assert r.status == 502 and "connect failed" in r.json["reason"], r
    m = metrics_of(ngx, "dingtalk_notifications_total")
    assert m['dingtalk_notifications_total{outcome="unreachable"}'] == 6
    assert m['dingtalk_notifications_total{outcome="rate_limited"}'] == 0


def test_a_full_zone_refuses_instead_of_sending_unlimited(nginx_factory, mock):
    """Finding 15: when no robot fitted, the limiter let everything through. Now a robot that
    does not fit gets 503, and invalid bodies leave nothing behind in the zone."""
    ngx = nginx_factory(f"""
    dingtalk_zone_size 64k;
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token $http_x_robot;
            dingtalk_api_url {mock.url};
            dingtalk_rate_limit 1/60s hold=0;
        }}
        location = /metrics {{ dingtalk_metrics; }}
    }}
""")
    # junk tokens with bodies that are never valid: all 400, nothing kept
    for i in range(300):
        r = ngx.post("/", b"{}", headers={"X-Robot": f"junk{i:06d}"})
        assert r.status == 400, r
    assert ngx.post("/", notification(), headers={"X-Robot": TOKEN}).status == 200
    assert ngx.post("/", notification(), headers={"X-Robot": TOKEN}).status == 503, \
        "the real robot is still limited"
    # real sends to many robots fill the zone: then a new one is refused, not let through
    statuses = [ngx.post("/", notification(), headers={"X-Robot": f"r{i:06d}"}).status
                for i in range(40)]
    assert 200 in statuses and 503 in statuses, statuses
    first_refused = statuses.index(503)
    assert set(statuses[first_refused:]) == {503}, statuses
    assert "raise dingtalk_zone_size" in ngx.error_log()
    m = metrics_of(ngx, "dingtalk_notifications_total")
    assert m['dingtalk_notifications_total{outcome="zone_full"}'] == 40 - first_refused
    assert len(mock.received) == 1 + first_refused


def test_a_bigger_zone_on_reload_keeps_the_windows(nginx_factory, mock):
    """Finding 9: a new dingtalk_zone_size made a new zone, and the windows started empty."""
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 1/60s hold=0;") +
                        "dingtalk_zone_size 1m;")
    assert ngx.post("/", notification()).status == 200
    with open(ngx.conf_path) as f:
        conf = f.read()
    with open(ngx.conf_path, "w") as f:
        f.write(conf.replace("dingtalk_zone_size 1m;", "dingtalk_zone_size 2m;"))
    ngx.reload()
    r = ngx.post("/", notification())
    assert r.status == 503 and "over DingTalk's limit" in r.json["reason"], r
    assert "robots carried over to the new zone" in ngx.error_log()
    assert len(mock.received) == 1


def test_a_client_that_leaves_a_hold_gives_its_slot_back(nginx_factory, mock):
    """Finding 7: a held webhook whose client has gone stops, and its slot goes to the next
    (without folding: with it, the one that left goes with the next, see test_guarantees)."""
    ngx = nginx_factory(webhook(mock, """dingtalk_rate_limit 1/4s hold=10s; dingtalk_fold off;
        }
        location = /metrics { dingtalk_metrics;"""))
    start = time.time()
    assert ngx.post("/", notification(alert(pod="first"))).status == 200
    gone = socket.create_connection(("127.0.0.1", ngx.port))
    body = json.dumps(notification(alert(pod="gone"))).encode()
    gone.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(1.0)
    gone.close()
    time.sleep(0.5)
    r = ngx.post("/", notification(alert(pod="third")))
    assert r.status == 200, r
    pods = [rec.text.split("**故障pod**: ")[1].split("\n")[0] for rec in mock.received]
    assert pods == ["first", "third"], pods
    assert mock.received[1].at - start < 6.0, "the third took the slot the second gave back"
    m = metrics_of(ngx, "dingtalk_notifications_total")
    assert m['dingtalk_notifications_total{outcome="client_closed"}'] == 1
    assert "closed the connection while the delivery waited for a rate-limit slot" \
        in ngx.error_log()


def test_a_hold_that_ends_on_a_full_queue_leaks_nothing(nginx_factory, mock):
    """Finding 4: a hold ended, the pool's queue was full and the client had reset: the failed
    reply posted a request nobody ran, and quit found "open socket ... left in connection".
    Two robots hold a webhook each until about 2 s, while the one pool thread is busy and its
    queue full; one client resets meanwhile, the other waits for its 503."""
    ngx = nginx_factory(f"""
    dingtalk_api_url {mock.url};
    dingtalk_thread_pool dingtalk;
    dingtalk_rate_limit 1/2s hold=10s;
    server {{
        listen 127.0.0.1:%PORT%;
        location = /a {{ dingtalk; dingtalk_token {TOKEN}; }}
        location = /b {{ dingtalk; dingtalk_token abcdef0123; }}
        location = /busy {{ dingtalk; dingtalk_token feedbeef42; dingtalk_rate_limit off; }}
    }}
""", thread_pool="thread_pool dingtalk threads=1 max_queue=1;")
    clients = {}
    for path in ("/a", "/b"):
        assert ngx.post(path, notification(alert(pod="first"))).status == 200
        body = json.dumps(notification(alert(pod="held"))).encode()
        s = socket.create_connection(("127.0.0.1", ngx.port))
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % (path.encode(), len(body)) + body)
        clients[path] = s
        time.sleep(0.3)  # its first run (parse, render) is done: it holds, the queue is empty
    mock.default = {"status": 200, "body": mock.OK, "delay": 4}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # one /busy sends in the thread (4 s), the other's first run waits in the queue: full
        busy = [pool.submit(ngx.post, "/busy", notification())]
        time.sleep(0.3)
        busy.append(pool.submit(ngx.post, "/busy", notification()))
        time.sleep(0.3)
        a = clients["/a"]
        a.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        a.close()  # a reset, not a close
        b = clients["/b"]
        b.settimeout(10)
        reply = b.recv(4096).decode()  # its hold ends on the full queue: 503
        assert reply.startswith("HTTP/1.1 503") and "queue is full" in reply, reply
        b.close()
        [f.result() for f in busy]
    ngx.stop()
    assert "left in connection" not in ngx.error_log()
