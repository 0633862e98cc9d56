"""A slow DingTalk never slows nginx: deliveries wait in threads, the worker keeps serving."""

import concurrent.futures
import time

from harness import notification, webhook


def test_static_location_answers_while_30_deliveries_wait(nginx_factory, mock):
    # one robot, 30 messages at once: DingTalk's rate limit is not what this test is about
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit off;"), workers=1,
                        thread_pool="thread_pool dingtalk threads=32 max_queue=1024;")
    mock.default = {"status": 200, "body": mock.OK, "delay": 3}
    with concurrent.futures.ThreadPoolExecutor(max_workers=30) as pool:
        started = time.time()
        futures = [pool.submit(ngx.post, "/", notification()) for _ in range(30)]
        assert mock.wait_for(30, timeout=10), "all 30 deliveries reach DingTalk at once"

        # the only worker is not blocked: a static page comes back at once, many times
        worst = 0.0
        for _ in range(20):
            t = time.time()
            r = ngx.get("/static")
            worst = max(worst, time.time() - t)
            assert r.status == 200 and r.body == b"static\n"
        assert worst < 0.5, f"static page took {worst:.3f}s while DingTalk takes 3s"
        assert time.time() - started < 2.5, "the static checks ran while deliveries waited"

        statuses = [f.result().status for f in futures]
    assert statuses == [200] * 30
