"""Transient failures are retried inside dingtalk_timeout; permanent ones are not; a message
DingTalk took is never sent again."""

import concurrent.futures
import random
import re
import threading
import time

from harness import MockDingTalk, free_port, notification, alert, webhook


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
