"""Connections to DingTalk: the pool threads of a worker share kept-alive HTTPS connections, so
DingTalk sees as many as deliveries were sent at once (not one per thread), and an idle one is
closed after dingtalk_keepalive_timeout."""

import os
import threading
import time

from harness import Nginx, notification, webhook

# AddressSanitizer's redzones and quarantine make a worker's size say nothing of the module's
SANITIZED = bool(os.environ.get("DINGTALK_NGINX_PRELOAD"))

POOL = "thread_pool dingtalk threads=32 max_queue=1024;"  # nginx's default size


def https_webhook(mock, certs, extra=""):
    return webhook(mock, f"dingtalk_ssl_trusted_certificate {certs.ca};\n"
                         f"dingtalk_rate_limit off;\n{extra}")


def test_sequential_https_deliveries_use_one_connection(nginx_factory, tls_mock, certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs), thread_pool=POOL)
    for _ in range(60):
        r = ngx.post("/", notification())
        assert r.status == 200, r
    assert len(tls_mock.received) == 60
    assert tls_mock.connections <= 2, "32 threads, one delivery at a time: one connection"


def test_concurrent_https_deliveries_use_no_more_connections_than_their_concurrency(
        nginx_factory, tls_mock, certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs), thread_pool=POOL)
    tls_mock.default = dict(tls_mock.default, delay=0.02)  # so that the deliveries overlap
    concurrency, each = 6, 15
    statuses = []

    def client():
        for _ in range(each):
            statuses.append(ngx.post("/", notification()).status)

    clients = [threading.Thread(target=client) for _ in range(concurrency)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert statuses == [200] * (concurrency * each)
    assert 1 <= tls_mock.connections <= concurrency, \
        f"{tls_mock.connections} connections for {concurrency} concurrent clients (32 threads)"


def test_idle_connection_is_closed_after_the_keepalive_timeout(nginx_factory, tls_mock, certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs, "dingtalk_keepalive_timeout 1s;"),
                        thread_pool=POOL)
    assert ngx.post("/", notification()).status == 200
    assert ngx.post("/", notification()).status == 200
    assert tls_mock.connections == 1 and tls_mock.closed == 0
    time.sleep(1.3)
    assert ngx.post("/", notification()).status == 200
    assert tls_mock.connections == 2, "an idle connection past its time is not used again"
    deadline = time.time() + 2
    while tls_mock.closed < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert tls_mock.closed == 1, "and it was closed"


def test_an_idle_connection_is_closed_on_time_without_another_delivery(nginx_factory, tls_mock,
                                                                     certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs, "dingtalk_keepalive_timeout 2s;"),
                        thread_pool=POOL)
    assert ngx.post("/", notification()).status == 200
    time.sleep(0.5)
    assert tls_mock.closed == 0, "kept alive"
    deadline = time.time() + 5
    while tls_mock.closed < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert tls_mock.closed == 1, "closed once idle for 2s, though nothing else was sent"
    assert ngx.get("/static").status == 200  # the worker's timer did it, and the worker serves


def test_the_sweep_timer_runs_with_nginx_debug_log(nginx_factory, tls_mock, certs):
    """nginx's debug log names each timer it sets by a connection: the sweep's has none."""
    ngx = nginx_factory(https_webhook(tls_mock, certs, "dingtalk_keepalive_timeout 1s;"),
                        thread_pool=POOL, log_level="debug")
    assert ngx.post("/", notification()).status == 200
    deadline = time.time() + 3
    while tls_mock.closed < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert tls_mock.closed == 1
    assert ngx.get("/static").status == 200
    assert "event timer add: -1:" in ngx.error_log()


def test_a_connection_kept_alive_does_not_hold_up_a_graceful_quit(nginx_factory, tls_mock,
                                                                  certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs), thread_pool=POOL)  # kept for 60 s
    assert ngx.post("/", notification()).status == 200
    started = time.time()
    ngx.stop()
    assert time.time() - started < 5, "the sweep timer does not keep the worker from quitting"
    deadline = time.time() + 2
    while tls_mock.closed < 1 and time.time() < deadline:
        time.sleep(0.05)
    assert tls_mock.closed == 1


def test_keepalive_timeout_zero_closes_each_connection(nginx_factory, tls_mock, certs):
    ngx = nginx_factory(https_webhook(tls_mock, certs, "dingtalk_keepalive_timeout 0;"),
                        thread_pool=POOL)
    for _ in range(3):
        assert ngx.post("/", notification()).status == 200
    assert tls_mock.connections == 3


def test_keepalive_timeout_must_be_a_time(mock):
    ok, out = Nginx(webhook(mock, "dingtalk_keepalive_timeout forever;")).test_config()
    assert not ok and "dingtalk_keepalive_timeout" in out, out


def worker_rss_kb(ngx):
    with open(f"/proc/{ngx.workers()[0]}/status") as f:
        return int(next(line for line in f if line.startswith("VmRSS:")).split()[1])


def test_connections_share_one_certificate_store(nginx_factory, tls_mock, certs, tmp_path):
    """The system's CAs (and the test CA) parsed once per worker, not once per connection: with
    a store per connection, 8 more connections took some 14 MB."""
    bundle = tmp_path / "cas.pem"
    with open("/etc/ssl/certs/ca-certificates.crt") as system, open(certs.ca) as ca:
        bundle.write_text(system.read() + ca.read())
    os.chmod(tmp_path, 0o755)
    os.chmod(bundle, 0o644)
    ngx = nginx_factory(webhook(tls_mock, f"dingtalk_ssl_trusted_certificate {bundle};\n"
                                          "dingtalk_rate_limit off;"), thread_pool=POOL)
    assert ngx.post("/", notification()).status == 200
    before = worker_rss_kb(ngx)
    tls_mock.default = dict(tls_mock.default, delay=0.3)  # 9 deliveries at once: 9 connections
    statuses = []
    clients = [threading.Thread(target=lambda: statuses.append(ngx.post("/", notification()).status))
               for _ in range(9)]
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    assert statuses == [200] * 9
    assert tls_mock.connections >= 5, "the deliveries overlapped"
    grown = worker_rss_kb(ngx) - before
    assert SANITIZED or grown < 6 * 1024, f"{tls_mock.connections} connections took {grown} kB"
