"""dingtalk_max_messages: a notification too big for one message goes out as several, each under
DingTalk's size limit, titled (1/3), (2/3)..., firing first, no alert split; 200 only when every
one was taken; all their rate-limit slots or none; a retry resumes after the messages taken."""

import json
import os
import re
import subprocess
import time

import pytest

from harness import REPO, TOKEN, Nginx, alert, line_of, notification, webhook

TOOL = os.environ.get("DINGTALK_RENDER", os.path.join(REPO, "build", "dingtalk-render"))

REFUSED = {"body": {"errcode": 300001, "errmsg": "token is not exist"}}


def big(firing=30, resolved=6, size=1500):
    """A notification of alerts that each take about `size` bytes: a few fill a message."""
    alerts = [alert(pod=f"api-{i:03d}", message=f"pod api-{i:03d} " + "x" * size,
                    status="resolved" if i < resolved else "firing",
                    ends="2026-11-23T17:00:00Z" if i < resolved else "0001-01-01T00:00:00Z")
              for i in range(firing + resolved)]
    return notification(*alerts)


def pods(rec):
    return re.findall(r"\*\*故障pod\*\*: (api-\d+)", rec.text)


def render(payload, *args):
    out = subprocess.run([TOOL, *args], input=json.dumps(payload).encode(),
                         capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.decode().splitlines()


def test_several_messages_each_under_the_limit_nothing_split(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 10; "
                                      "dingtalk_at_mobiles 13800000000;"))
    payload = big(firing=30, resolved=6)
    r = ngx.post("/", payload)
    assert r.status == 200, r
    n = len(mock.received)
    assert 3 <= n <= 10, n
    assert r.json["messages"] == n and r.json["taken"] == n
    assert r.json["alerts"] == 36 and r.json["shown"] == 36
    seen = []
    for i, rec in enumerate(mock.received, start=1):
        assert len(rec.body) <= 19500
        assert rec.title.endswith(f" ({i}/{n})"), rec.title
        assert f"({i}/{n})" in rec.text.splitlines()[0]
        assert "另有" not in rec.text, "every alert fits in ten"
        mentioned = rec.json.get("at", {}).get("atMobiles", [])
        assert mentioned == (["13800000000"] if i == 1 else []), "only the first one rings"
        seen += pods(rec)
    firing = [f"api-{i:03d}" for i in range(6, 36)]
    resolved = [f"api-{i:03d}" for i in range(6)]
    assert seen == firing + resolved, "firing first, each alert once, in order"
    assert f"36 alerts, {n} messages" in ngx.error_log()
    # dingtalk-render prints the same requests
    lines = render(payload, "--max-messages", "10", "--at-mobiles", "13800000000")
    assert [line.encode() for line in lines] == [rec.body for rec in mock.received]


def test_the_last_says_what_even_they_cannot_show(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 2;"))
    r = ngx.post("/", big(firing=60, resolved=0))
    assert r.status == 200, r
    assert len(mock.received) == 2
    first, last = mock.received
    shown = len(pods(first)) + len(pods(last))
    assert r.json["shown"] == shown < 60
    assert "另有" not in first.text
    assert f"**另有 {60 - shown} 条告警未显示**" in last.text
    assert first.title.endswith(" (1/2)") and last.title.endswith(" (2/2)")


def test_one_message_when_it_fits(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 5;"))
    r = ngx.post("/", notification(alert()))
    assert r.status == 200 and "messages" not in r.json
    assert len(mock.received) == 1 and "(1/" not in mock.received[0].title


def test_default_is_one_message_cut_as_before(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    r = ngx.post("/", big(firing=60, resolved=0))
    assert r.status == 200 and "messages" not in r.json
    assert len(mock.received) == 1
    assert "另有" in mock.received[0].text and "(1/" not in mock.received[0].title


def test_all_slots_or_503_before_sending_anything(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3; "
                                      "dingtalk_rate_limit 3/30s hold=0;"))
    assert ngx.post("/", notification(alert())).status == 200
    r = ngx.post("/", big(firing=30, resolved=0))
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) >= 25
    assert len(mock.received) == 1, "nothing of the three was sent"
    for pod in ("p1", "p2"):
        assert ngx.post("/", notification(alert(pod=pod))).status == 200, "no slot was kept"
    assert ngx.post("/", notification(alert(pod="p3"))).status == 503


def test_waits_within_hold_for_every_slot(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3; "
                                      "dingtalk_rate_limit 3/3s hold=6s;"))
    start = time.time()
    assert ngx.post("/", notification(alert())).status == 200
    r = ngx.post("/", big(firing=30, resolved=0))
    assert r.status == 200, r
    assert len(mock.received) == 4
    arrivals = [rec.at - start for rec in mock.received]
    assert arrivals[1] >= 2.5, "held until all three slots were free"
    assert [rec.title[-5:] for rec in mock.received[1:]] == ["(1/3)", "(2/3)", "(3/3)"]


def test_a_retry_resumes_after_the_messages_taken(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3;"))
    payload = big(firing=30, resolved=0)
    mock.answer(mock.OK, REFUSED)  # the second message is refused, for good
    r = ngx.post("/", payload)
    assert r.status == 502, r
    assert r.json["messages"] == 3 and r.json["taken"] == 1
    assert len(mock.received) == 2
    assert "1 of 3 messages taken" in ngx.error_log()
    # Alertmanager sends the same body again: the first message is not sent twice
    r = ngx.post("/", payload)
    assert r.status == 200, r
    assert r.json["taken"] == 3
    titles = [rec.title[-5:] for rec in mock.received]
    assert titles == ["(1/3)", "(2/3)", "(2/3)", "(3/3)"], titles
    assert "of this notification's 30 alerts were posted before, in 1 messages taken" in \
        ngx.error_log()
    # once all went out, the same notification again (a retry whose 200 was lost, or another
    # replica's copy) sends nothing: every alert was posted
    r = ngx.post("/", payload)
    assert r.status == 200 and "already posted" in r.json["reason"], r
    assert len(mock.received) == 4


def test_another_body_is_not_resumed(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3;"))
    mock.answer(mock.OK, REFUSED)
    assert ngx.post("/", big(firing=30, resolved=0)).status == 502
    other = big(firing=31, resolved=0)
    assert ngx.post("/", other).status == 200
    assert [rec.title[-5:] for rec in mock.received[2:]] == ["(1/3)", "(2/3)", "(3/3)"]


def test_retries_within_the_request_resend_only_the_failed_message(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3;"))
    mock.answer(mock.OK, {"status": 502, "body": "bad gateway", "type": "text/plain"})
    r = ngx.post("/", big(firing=30, resolved=0))
    assert r.status == 200, r
    titles = [rec.title[-5:] for rec in mock.received]
    assert titles == ["(1/3)", "(2/3)", "(2/3)", "(3/3)"], titles


def test_bad_values_fail_nginx_t(mock):
    for value, why in (("0", "must be from 1 to 10"), ("11", "must be from 1 to 10"),
                       ("many", "invalid number")):
        ngx = Nginx(webhook(mock, f"dingtalk_max_messages {value};"))
        ok, out = ngx.test_config()
        assert not ok
        assert why in out and "dingtalk_max_messages" in out, out
        assert f"nginx.conf:{line_of(ngx, 'dingtalk_max_messages')}" in out, out
    ngx = Nginx(webhook(mock, "dingtalk_max_messages 5; dingtalk_rate_limit 3/60s;"))
    ok, out = ngx.test_config()
    assert not ok
    assert "dingtalk_max_messages 5 is more than the 3 messages dingtalk_rate_limit" in out, out
    assert f"nginx.conf:{line_of(ngx, 'dingtalk;')}" in out, out
    assert TOKEN not in out


def test_a_client_gone_between_messages_stops_there_and_its_retry_resumes(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3;"))
    payload = big(firing=30, resolved=0)
    mock.answer(mock.OK, dict(mock.OK, delay=2))  # Alertmanager gives up meanwhile
    with pytest.raises(OSError):
        ngx.post("/", payload, timeout=1)
    time.sleep(2.5)
    assert [rec.title[-5:] for rec in mock.received] == ["(1/3)", "(2/3)"], "nothing after"
    assert "the client closed the connection after 2 of 3 messages were taken" in \
        ngx.error_log()
    r = ngx.post("/", payload)
    assert r.status == 200 and r.json["taken"] == 3, r
    assert [rec.title[-5:] for rec in mock.received[2:]] == ["(3/3)"]


def test_a_retry_takes_a_slot_of_its_own_and_keeps_the_others(nginx_factory, mock):
    # three slots for the messages, one more for the retry of the second: exactly four
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3; "
                                      "dingtalk_rate_limit 4/60s hold=0;"))
    mock.answer(mock.OK, {"status": 502, "body": "bad gateway", "type": "text/plain"})
    r = ngx.post("/", big(firing=30, resolved=0))
    assert r.status == 200 and r.json["taken"] == 3, r
    assert [rec.title[-5:] for rec in mock.received] == ["(1/3)", "(2/3)", "(2/3)", "(3/3)"]
    assert ngx.post("/", notification(alert())).status == 503, "all four slots were used"


def test_no_slot_for_a_retry_is_never_a_200(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_max_messages 3; "
                                      "dingtalk_rate_limit 3/60s hold=0;"))
    mock.answer(mock.OK, {"status": 502, "body": "bad gateway", "type": "text/plain"})
    r = ngx.post("/", big(firing=30, resolved=0))
    assert r.status == 502 and r.json["taken"] == 1, r
    assert len(mock.received) == 2, "no slot for a retry; the third message's slot went back"
