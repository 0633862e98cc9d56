"""What the C++ throws where it meets nginx: a line that says what was thrown and a 500 (or
"nginx -t" failing with the directive's file and line), never a dead worker. The failures are
injected: std::bad_alloc at a named point, in the build "make integration-asan" tests (the
module built with DINGTALK_FAULTS), armed by DINGTALK_FAULT in nginx's environment."""

import json
import os
import socket
import time

import pytest

from harness import notification, webhook

pytestmark = pytest.mark.skipif(
    not os.environ.get("DINGTALK_FAULTS"),
    reason="needs the module built with DINGTALK_FAULTS (make integration-asan builds it)")


def armed(nginx_factory, http, point, **kw):
    ngx = nginx_factory(http, main="env DINGTALK_FAULT;", env={"DINGTALK_FAULT": point}, **kw)
    ngx.allowed.append("std::bad_alloc")  # the [alert] line the test provokes
    return ngx


def same_workers(ngx, before):
    time.sleep(0.3)
    assert ngx.workers() == before, "a worker died"
    assert "exited on signal" not in ngx.error_log()


@pytest.mark.parametrize("point, line", [
    ("handler", "the webhook handler failed: std::bad_alloc; answered 500"),
    ("body", "reading the webhook failed: std::bad_alloc; answered 500"),
    ("after_attempt", "the end of an attempt failed: std::bad_alloc"),
])
def test_a_throw_on_the_way_is_a_500_and_a_line(nginx_factory, mock, point, line):
    ngx = armed(nginx_factory, webhook(mock), point)
    before = ngx.workers()
    r = ngx.post("/", notification())
    assert r.status == 500, r
    assert line in ngx.error_log()
    same_workers(ngx, before)
    # the worker still serves
    assert ngx.get("/static").status == 200


def test_a_throw_in_a_timer_is_a_500_and_a_line(nginx_factory, mock):
    ngx = armed(nginx_factory, webhook(mock), "timer")
    mock.answer({"status": 503, "body": "busy"})  # transient: a retry waits on the timer
    before = ngx.workers()
    r = ngx.post("/", notification())
    assert r.status == 500, r
    assert "a delivery's timer failed: std::bad_alloc" in ngx.error_log()
    assert len(mock.received) == 1, "no attempt after the failure"
    same_workers(ngx, before)


def test_a_throw_while_noticing_a_client_that_left_keeps_the_worker(nginx_factory, mock):
    ngx = armed(nginx_factory, webhook(mock, "dingtalk_rate_limit 1/10s hold=20s;"),
                "check_broken")
    before = ngx.workers()
    assert ngx.post("/", notification()).status == 200  # takes the only slot
    payload = json.dumps(notification(group="Second")).encode()
    s = socket.create_connection(("127.0.0.1", ngx.port))
    s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(payload) + payload)
    time.sleep(1)  # the second holds for the slot that frees in 10 s
    s.close()
    deadline = time.time() + 5
    while time.time() < deadline and "noticing a client that left failed" not in ngx.error_log():
        time.sleep(0.1)
    assert "noticing a client that left failed: std::bad_alloc" in ngx.error_log()
    same_workers(ngx, before)
    assert len(mock.received) == 1


@pytest.mark.parametrize("point, line", [
    ("directive", '"dingtalk" failed: std::bad_alloc in '),  # the location's first
    ("merge", "dingtalk: merging the configuration failed: std::bad_alloc"),
])
def test_a_throw_while_reading_the_configuration_fails_nginx_t(nginx_factory, mock, point, line):
    ngx = armed(nginx_factory, webhook(mock, "dingtalk_timeout 5s;"), point, start=False)
    ok, out = ngx.test_config()
    assert not ok
    assert line in out, out
    if point == "directive":
        assert "nginx.conf:" in out.split(line, 1)[1].splitlines()[0]
