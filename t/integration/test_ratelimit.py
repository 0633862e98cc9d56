"""DingTalk allows 20 messages a minute per robot: the module keeps to it across workers and
locations, holds a webhook briefly when a slot is near, and answers 503 + Retry-After otherwise,
so that Alertmanager retries and nothing is lost."""

import concurrent.futures
import random
import time

import pytest

from harness import TOKEN, alert, notification, webhook


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
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        replies = list(pool.map(lambda i: ngx.post("/", notification(alert(pod=f"p{i}"))),
                                range(3)))
    assert [r.status for r in replies] == [200, 200, 200]
    arrivals = sorted(r.at - start for r in mock.received)
    assert arrivals[1] < 1.0 and arrivals[2] >= 3.0, arrivals
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
        while True:
            r = ngx.post("/", notification(alert(pod=f"pod-{i:02d}")), timeout=60)
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
    pods = sorted(r.json["markdown"]["text"].split("**故障pod**: ")[1].split("\n")[0]
                  for r in accepted)
    assert pods == [f"pod-{i:02d}" for i in range(60)], "every alert exactly once"
    assert mock.over_limit == 0, "DingTalk never had to refuse a message"
    times = sorted(r.at for r in accepted)
    for k in range(len(times) - 20):
        assert times[k + 20] - times[k] >= 60.0, "at most 20 in any 60 s window"
    assert took < 200
