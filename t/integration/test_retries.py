"""Transient failures are retried inside dingtalk_timeout; permanent ones are not; a message
DingTalk took is never sent again."""

import concurrent.futures
import json
import random
import re
import socket
import threading
import time

from harness import FlakyFront, MockDingTalk, free_port, notification, alert, webhook


def attempts_logged(ngx):
    return [int(n) for n in re.findall(r"(\d+) attempts?", ngx.error_log())]


def test_connection_refused_then_recovery(nginx_factory):
    port = free_port()

    class Late:
        url = f"http://127.0.0.1:{port}/robot/send"

    ngx = nginx_factory(webhook(Late, "dingtalk_timeout 6s;"))
    box = {}

    def start_late():
        time.sleep(1.0)
        box["mock"] = MockDingTalk(port=port)

    t = threading.Thread(target=start_late)
    t.start()
    try:
        started = time.time()
        r = ngx.post("/", notification())
        t.join()
        assert r.status == 200, r
        assert 1.0 <= time.time() - started < 6.5
        assert len(box["mock"].received) == 1
        assert max(attempts_logged(ngx)) >= 2
    finally:
        t.join()
        if "mock" in box:
            box["mock"].close()


def test_permanent_refusals_are_not_retried(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    for errcode in (310000, 300001, 400013, 460101):
        mock.default = {"body": {"errcode": errcode, "errmsg": "no"}}
        before = len(mock.received)
        r = ngx.post("/", notification())
        assert r.status == 502 and r.json["errcode"] == errcode, r
        assert len(mock.received) == before + 1, f"errcode {errcode} must not be retried"


def test_untrusted_certificate_is_not_retried(nginx_factory, certs):
    rogue = MockDingTalk(tls_cert=certs.rogue_cert, tls_key=certs.rogue_key)
    try:
        ngx = nginx_factory(webhook(rogue, f"dingtalk_ssl_trusted_certificate {certs.ca};"))
        t = time.time()
        assert ngx.post("/", notification()).status == 502
        assert time.time() - t < 1.0
        assert attempts_logged(ngx) == [1]
    finally:
        rogue.close()


def test_success_is_never_sent_twice(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    mock.answer({"status": 500, "body": "x"}, {"drop": True}, {})
    r = ngx.post("/", notification())
    assert r.status == 200
    assert [rec.answer is not None and rec.answer.get("status", 200) for rec in mock.received] \
        == [500, False, 200]
    time.sleep(0.5)
    assert len(mock.received) == 3, "nothing after the errcode 0"


def test_thirty_percent_failures_of_every_kind(nginx_factory, mock):
    timeout = 8
    ngx = nginx_factory(webhook(mock, f"dingtalk_timeout {timeout}s; dingtalk_rate_limit off;"),
                        workers=2, thread_pool="thread_pool dingtalk threads=16;")
    mock.chaos = (0.3, random.Random(2026))

    def send(i):
        t = time.time()
        r = ngx.post("/", notification(alert(pod=f"pod-{i}")), timeout=60)
        return i, r.status, time.time() - t

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(send, range(60)))

    injected = [r for r in mock.received if r.answer is None or r.answer.get("injected")]
    assert len(injected) >= 10, "the mock really failed attempts"
    for i, status, took in results:
        assert status == 200 or 500 <= status < 600, (i, status)
        assert took < timeout + 2, f"webhook {i} took {took:.1f}s"
    ok = {i for i, status, _ in results if status == 200}
    assert len(ok) >= 54, f"retries should rescue nearly all: {len(ok)}/60"
    delivered = [r.json["markdown"]["text"].split("**故障pod**: ")[1].split("\n")[0]
                 for r in mock.accepted()]
    assert len(delivered) == len(set(delivered)), "no message posted twice"
    assert {f"pod-{i}" for i in ok} <= set(delivered)


def test_dingtalk_busy_is_retried(nginx_factory, mock):
    """Finding 5: errcode -1 is DingTalk's "系统繁忙, try again later", not a refusal."""
    ngx = nginx_factory(webhook(mock, """dingtalk_timeout 5s;
        }
        location = /metrics { dingtalk_metrics;"""))
    busy = {"body": {"errcode": -1, "errmsg": "系统繁忙"}}
    mock.answer(busy, busy)
    r = ngx.post("/", notification())
    assert r.status == 200, r
    assert len(mock.received) == 3
    assert "3 attempts, errcode 0" in ngx.error_log()
    retries = [l for l in ngx.error_log().splitlines() if "trying again in" in l]
    assert len(retries) == 2 and all("errcode -1" in l for l in retries), retries
    metrics = ngx.get("/metrics").body.decode()
    assert 'dingtalk_errcode_total{errcode="-1"} 2' in metrics, metrics


def test_dingtalk_busy_until_the_end_is_a_503(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 1s;"))
    mock.default = {"body": {"errcode": -1, "errmsg": "系统繁忙"}}
    r = ngx.post("/", notification())
    assert r.status == 503 and r.json["errcode"] == -1, r
    assert "busy" in r.json["reason"] and int(r.headers["retry-after"]) > 0
    assert len(mock.received) >= 2
    assert "errcode -1" in ngx.error_log()


def test_a_reset_in_the_tls_handshake_is_retried(nginx_factory, certs, tls_mock):
    """Finding 6: a reset during the handshake is a network fault, not a bad certificate."""
    front = FlakyFront(tls_mock.port, resets=1)
    try:
        class Front:
            url = f"https://127.0.0.1:{front.port}/robot/send"

        ngx = nginx_factory(webhook(Front, f"dingtalk_ssl_trusted_certificate {certs.ca};"))
        r = ngx.post("/", notification())
        assert r.status == 200, r
        assert front.accepted == 2
        assert len(tls_mock.received) == 1
        assert "2 attempts" in ngx.error_log()
    finally:
        front.close()


def test_no_more_attempts_once_the_client_is_gone(nginx_factory, mock):
    """Finding 7: with DingTalk answering 500, five more attempts ran after the client closed,
    each taking a rate-limit slot. Alertmanager sends again on its own: stop."""
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 10s;"))
    mock.default = {"status": 500, "body": "oops", "type": "text/plain"}
    conn = socket.create_connection(("127.0.0.1", ngx.port))
    body = json.dumps(notification()).encode()
    conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert mock.wait_for(2, timeout=5)
    conn.close()
    time.sleep(0.3)
    seen = len(mock.received)
    time.sleep(3)
    assert len(mock.received) <= seen + 1, "at most the attempt already under way"
    assert "while the delivery waited to retry" in ngx.error_log() or \
        "client prematurely closed" in ngx.error_log()
