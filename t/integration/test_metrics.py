"""dingtalk_metrics: Prometheus text from the shared zone, summed over every worker."""

import concurrent.futures
import re
import subprocess
import time

import pytest

from harness import TOKEN, alert, notification

TOKEN_LIMITED = "11111111111111111111111111111111"
TOKEN_HELD = "22222222222222222222222222222222"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def config(mock, reuseport=True):
    # reuseport: the kernel spreads new connections over both workers
    return f"""
    server {{
        listen 127.0.0.1:%PORT% {"reuseport" if reuseport else ""};
        dingtalk_api_url {mock.url};
        dingtalk_thread_pool dingtalk;
        location = / {{
            dingtalk; dingtalk_token {TOKEN}; dingtalk_robot_name main;
            dingtalk_rate_limit 64/1s;
        }}
        location = /limited {{
            dingtalk; dingtalk_token {TOKEN_LIMITED}; dingtalk_robot_name limited;
            dingtalk_rate_limit 1/30s hold=0;
        }}
        location = /held {{
            dingtalk; dingtalk_token {TOKEN_HELD}; dingtalk_robot_name held;
            dingtalk_rate_limit 1/2s hold=5s;
        }}
        location = /empty {{ dingtalk; dingtalk_token $http_x_token; }}
        location = /metrics {{ dingtalk_metrics; }}
    }}
"""


def scrape(ngx):
    r = ngx.get("/metrics")
    assert r.status == 200, r
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.body.decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        key = m.group(1) + (m.group(2) or "")
        assert key not in values, f"duplicate series {key}"
        values[key] = float(m.group(3))
    return text, values


def promtool(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    out = p.stdout + p.stderr
    # 0: clean; 3: lint remarks only; anything else (1: parse error) is a broken exposition
    assert p.returncode in (0, 3) and "error" not in out.lower(), out
    return out


def outcome(v, name):
    return v[f'dingtalk_notifications_total{{outcome="{name}"}}']


OUTCOMES = ("delivered", "bad_request", "no_robot", "bad_token", "rate_limited", "queue_full",
            "refused", "throttled", "unreachable", "timeout", "internal")


def test_counters_move_exactly_across_two_workers(nginx_factory, mock):
    ngx = nginx_factory(config(mock), workers=2)
    assert len(ngx.workers()) == 2
    text, before = scrape(ngx)
    promtool(text)
    assert all(v == 0 for v in before.values()), before
    assert [outcome(before, o) for o in OUTCOMES] == [0] * len(OUTCOMES), "every outcome shown"
    assert not any("robot=" in k for k in before), "no robot before any delivery"

    # one after another, each on a new connection: concurrent webhooks on two workers may be
    # held a few ms (each worker's cached clock), which would blur dingtalk_held_total
    replies = [ngx.post("/", notification(alert(pod=f"p{i}"))) for i in range(40)]
    assert [r.status for r in replies] == [200] * 40
    assert ngx.post("/", "not json").status == 400
    assert ngx.post("/empty", notification()).status == 404
    assert ngx.post("/limited", notification()).status == 200
    r = ngx.post("/limited", notification())
    assert r.status == 503 and "retry-after" in r.headers, r
    mock.answer({"body": {"errcode": 310000, "errmsg": "keywords not in content"}})
    assert ngx.post("/", notification()).status == 502
    mock.answer({"body": {"errcode": 12345, "errmsg": "something new"}})
    assert ngx.post("/", notification()).status == 502
    mock.answer({"status": 500, "body": "oops", "type": "text/plain"})
    assert ngx.post("/", notification()).status == 200  # after one retry
    assert ngx.post("/held", notification()).status == 200
    started = time.time()
    assert ngx.post("/held", notification()).status == 200  # waits for the slot
    assert time.time() - started > 1.0
    assert len(mock.received) == 40 + 1 + 2 + 2 + 2

    # both workers delivered some: the counters below are sums over the shared zone
    pids = re.findall(r'(\d+)#\d+: \*\d+ dingtalk "/" robot main: 200 delivered',
                      ngx.error_log())
    assert len(pids) == 41 and len(set(pids)) == 2, f"one worker served all: {set(pids)}"

    text, after = scrape(ngx)
    promtool(text)
    assert TOKEN not in text and TOKEN_LIMITED not in text and TOKEN_HELD not in text
    expected = {"delivered": 40 + 1 + 1 + 2, "bad_request": 1, "no_robot": 1, "rate_limited": 1,
                "refused": 2}
    assert {o: outcome(after, o) for o in OUTCOMES} == \
        {o: expected.get(o, 0) for o in OUTCOMES}
    assert after['dingtalk_messages_sent_total{robot="main"}'] == 41
    assert after['dingtalk_messages_sent_total{robot="limited"}'] == 1
    assert after['dingtalk_messages_sent_total{robot="held"}'] == 2
    assert after['dingtalk_messages_failed_total{robot="main"}'] == 2
    assert after['dingtalk_messages_failed_total{robot="limited"}'] == 0
    assert after["dingtalk_robots"] == 3
    errcodes = {k: v for k, v in after.items() if k.startswith("dingtalk_errcode_total") and v}
    assert errcodes == {'dingtalk_errcode_total{errcode="0"}': 44,
                        'dingtalk_errcode_total{errcode="310000"}': 1,
                        'dingtalk_errcode_total{errcode="other"}': 1}
    assert after["dingtalk_retries_total"] == 1
    assert after["dingtalk_held_total"] == 1
    assert after["dingtalk_throttled_replies_total"] == 1
    assert after["dingtalk_tasks_in_flight"] == 0
    assert after["dingtalk_requests_waiting"] == 0

    # the histogram counts every notification that reached a delivery task (the bad body
    # included), not the answers given before one (404, 503 from the rate limit)
    reached = 44 + 1 + 2
    buckets = [(k, v) for k, v in after.items()
               if k.startswith("dingtalk_delivery_duration_seconds_bucket")]
    assert len(buckets) == 11 and buckets[-1][0].endswith('le="+Inf"}')
    # dingtalk_timeout's default is an edge: a delivery that used all of its time has a bucket
    assert 'dingtalk_delivery_duration_seconds_bucket{le="10"}' in after
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert counts[-1] == after["dingtalk_delivery_duration_seconds_count"] == reached
    assert after['dingtalk_delivery_duration_seconds_bucket{le="0.5"}'] <= reached - 1, \
        "the held webhook took about two seconds"
    assert 1.0 < after["dingtalk_delivery_duration_seconds_sum"] < 30

    # every worker answers with the same sums
    for _ in range(6):
        assert scrape(ngx)[1] == after


def test_gauges_count_deliveries_in_flight_and_waiting(nginx_factory, mock):
    ngx = nginx_factory(config(mock), workers=2)
    mock.default = {"status": 200, "body": mock.OK, "delay": 1.5}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(ngx.post, "/", notification()) for _ in range(3)]
        assert mock.wait_for(3, timeout=5)
        _, during = scrape(ngx)
        assert during["dingtalk_tasks_in_flight"] == 3
        assert during["dingtalk_requests_waiting"] == 0
        assert [f.result().status for f in running] == [200] * 3

        mock.default = {"status": 200, "body": mock.OK, "delay": 0}
        assert ngx.post("/held", notification()).status == 200
        held = pool.submit(ngx.post, "/held", notification())
        time.sleep(0.5)
        _, during = scrape(ngx)
        assert during["dingtalk_requests_waiting"] == 1 and during["dingtalk_held_total"] == 1
        assert during["dingtalk_tasks_in_flight"] == 0
        assert held.result().status == 200
    _, after = scrape(ngx)
    assert after["dingtalk_tasks_in_flight"] == 0 and after["dingtalk_requests_waiting"] == 0
    assert after['dingtalk_notifications_total{outcome="delivered"}'] == 5


def test_robot_without_rate_limit_keeps_its_counters(nginx_factory, mock):
    ngx = nginx_factory(config(mock, reuseport=False).replace(
        "dingtalk_rate_limit 64/1s;", "dingtalk_rate_limit off;"))
    for _ in range(3):
        assert ngx.post("/", notification()).status == 200
    assert scrape(ngx)[1]['dingtalk_messages_sent_total{robot="main"}'] == 3
    assert ngx.post("/limited", notification()).status == 200  # another robot
    _, values = scrape(ngx)
    assert values['dingtalk_messages_sent_total{robot="limited"}'] == 1
    assert values.get('dingtalk_messages_sent_total{robot="main"}') == 3, \
        "counters of a robot may not vanish"
    assert values["dingtalk_robots"] == 2


def test_metrics_location_is_get_only_and_lint_clean(nginx_factory, mock):
    ngx = nginx_factory(config(mock, reuseport=False))
    assert ngx.post("/", notification()).status == 200
    r = ngx.post("/metrics", "x")
    assert r.status == 405, r
    assert ngx.request("PUT", "/metrics", "x").status == 405
    r = ngx.request("HEAD", "/metrics")
    assert r.status == 200 and r.body == b""
    text, values = scrape(ngx)
    assert values['dingtalk_messages_sent_total{robot="main"}'] == 1
    assert TOKEN not in text
    # every family has HELP and TYPE, and counters end in _total
    families = set(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert {n for n, _ in families} == set(re.findall(r"^# HELP (\S+) ", text, re.M))
    for name, kind in families:
        assert kind != "counter" or name.endswith("_total"), name
    out = promtool(text)
    assert out.strip() == "", f"promtool lint remarks:\n{out}"


def test_a_name_from_request_data_cannot_rename_a_robot(nginx_factory, mock):
    """Finding 16: one token under a second name, from a variable, renamed the robot's series
    on every delivery (robot="ops" 1 became robot="attacker-chosen-1" 2)."""
    ngx = nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_api_url {mock.url};
        dingtalk_token {TOKEN};
        location = /ops {{ dingtalk; dingtalk_robot_name ops; }}
        location = /any {{ dingtalk; dingtalk_robot_name $http_x_name; }}
        location = /metrics {{ dingtalk_metrics; }}
    }}
""")
    assert ngx.post("/ops", notification()).status == 200
    for i in range(2):
        assert ngx.post("/any", notification(), headers={"X-Name": f"attacker-{i}"}).status == 200
    text, values = scrape(ngx)
    assert values['dingtalk_messages_sent_total{robot="ops"}'] == 3, text
    assert "attacker" not in text

