"""Reload and quit while deliveries are in flight: they finish, and the old worker exits."""

import concurrent.futures
import signal
import time

from harness import notification, webhook


def test_reload_during_delivery_finishes_it(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock), thread_pool="thread_pool dingtalk threads=8;")
    mock.default = {"status": 200, "body": mock.OK, "delay": 2}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(ngx.post, "/", notification()) for _ in range(8)]
        assert mock.wait_for(8)
        old = set(ngx.workers())
        ngx.reload()
        statuses = [f.result().status for f in futures]
    assert statuses == [200] * 8
    assert len(mock.accepted()) == 8
    deadline = time.time() + 10
    while time.time() < deadline and old & set(ngx.workers(all_states=True)):
        time.sleep(0.05)
    assert not old & set(ngx.workers(all_states=True)), "old workers exit once done"
    assert ngx.get("/static").status == 200


def test_quit_during_delivery_finishes_it(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    mock.default = {"status": 200, "body": mock.OK, "delay": 2}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(ngx.post, "/", notification()) for _ in range(4)]
        assert mock.wait_for(4)
        ngx.signal(signal.SIGQUIT)
        statuses = [f.result().status for f in futures]
    assert statuses == [200] * 4
    deadline = time.time() + 10
    while time.time() < deadline and ngx.running():
        time.sleep(0.05)
    assert not ngx.running()
