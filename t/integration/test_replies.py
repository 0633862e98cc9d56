"""Every reply Alertmanager can get, with the reason it can log. 5xx means "retry"."""

import json
import threading
import time

from harness import MockDingTalk, TOKEN, alert, notification, webhook


def test_get_is_a_health_check(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    r = ngx.get("/")
    assert r.status == 200 and r.json["ok"] is True
    assert ngx.request("HEAD", "/").status == 200
    assert mock.received == []


def test_other_methods_get_405_with_allow(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    for method in ("PUT", "DELETE", "PATCH"):
        r = ngx.request(method, "/", "{}")
        assert r.status == 405, r
        assert r.headers["allow"] == "GET, HEAD, POST"
        assert r.json["ok"] is False and "POST" in r.json["reason"]
    assert mock.received == []


def test_bad_bodies_get_400_and_nothing_is_sent(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    cases = {
        b"": "empty body",
        b"{not json": "invalid JSON",
        b"[1,2]": "JSON object",
        b'{"status":"firing"}': "alerts",
        b'{"alerts":{}}': "alerts must be an array",
        b'{"alerts":[]}': "alerts is empty",
        b'{"alerts":[{"labels":{"severity":3}}]}': "alerts[0].labels.severity",
        b'{"alerts":[{"startsAt":"yesterday"}]}': "startsAt",
        b'{"alerts":[{"status":"burning"}]}': "status",
        b'{"alerts":[{"labels":{"a":"\xff\xfe"}}]}': "invalid JSON",  # not UTF-8
    }
    for body, reason in cases.items():
        r = ngx.post("/", body)
        assert r.status == 400, (body, r)
        assert r.json["ok"] is False
        assert reason in r.json["reason"], (body, r.json["reason"])
    assert mock.received == []
    assert "not an Alertmanager notification" in ngx.error_log()


def test_delivered_is_200_only_on_errcode_0(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    mock.answer({"status": 200, "body": {"errcode": 0, "errmsg": "ok"}})
    r = ngx.post("/", notification())
    assert r.status == 200 and r.json == {"ok": True, "reason": "delivered to DingTalk",
                                          "alerts": 1, "shown": 1, "errcode": 0}


def test_dingtalk_refusal_is_502_with_errcode(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    mock.answer({"body": {"errcode": 310000, "errmsg": "keywords not in content"}},
                {"body": {"errcode": 300001, "errmsg": "token is not exist"}})
    r = ngx.post("/", notification())
    assert r.status == 502, r
    assert r.json["errcode"] == 310000 and "errmsg" not in r.json, "DingTalk's words: the log's"
    assert "set dingtalk_keyword" in r.json["reason"]
    assert "keywords not in content" in ngx.error_log()
    r = ngx.post("/", notification())
    assert r.status == 502 and r.json["errcode"] == 300001
    assert "errcode 310000" in ngx.error_log()


def test_throttled_is_503_with_retry_after(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    mock.answer({"body": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}})
    r = ngx.post("/", notification())
    assert r.status == 503, r
    assert int(r.headers["retry-after"]) > 0
    assert r.json["errcode"] == 130101


def test_http_error_or_foreign_reply_is_not_success(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 2s;"))
    answers = [({"status": 500, "body": "<html>oops</html>", "type": "text/html"}, "HTTP 500"),
               ({"status": 200, "body": "<html>captive portal</html>", "type": "text/html"},
                "no errcode"),
               ({"status": 200, "body": {"ok": True}}, "no errcode")]
    for answer, expected in answers:
        mock.default = answer  # every attempt, retries included, gets this answer
        before = len(mock.received)
        r = ngx.post("/", notification())
        assert r.status == 502, r
        assert expected in r.json["reason"]
        assert len(mock.received) - before >= 2, "a transient failure is retried"


def test_unreachable_dingtalk_is_502(nginx_factory):
    dead = MockDingTalk()
    dead.close()  # the port is now closed: connection refused
    ngx = nginx_factory(webhook(dead, "dingtalk_timeout 2s;"))
    t = time.time()
    r = ngx.post("/", notification())
    assert r.status == 502, r
    assert "cannot reach DingTalk" in r.json["reason"]
    assert 0.5 < time.time() - t < 3, "retried within dingtalk_timeout, then given up"


def test_a_drop_after_the_whole_request_goes_once_more_then_502(nginx_factory, mock):
    # DingTalk read the message and hung up: it may have posted it. Once more on a new
    # connection; a second drop is the end (never a third send), and the reply says so.
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 2s;"))
    mock.default = {"drop": True}
    r = ngx.post("/", notification())
    assert r.status == 502, r
    assert "answered neither" in r.json["reason"] and "may have been posted" in r.json["reason"]
    assert len(mock.received) == 2, "once more, never a third time"


def test_a_slow_dingtalk_is_waited_for_past_dingtalk_timeout(nginx_factory, mock):
    # The whole request went out: only DingTalk's answer says whether it was posted, so it is
    # waited for (dingtalk_answer_timeout), not cut at dingtalk_timeout and sent again.
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 1s;"))
    mock.answer({"delay": 3})
    r = ngx.post("/", notification())
    assert r.status == 200, r
    assert len(mock.received) == 1


def test_no_answer_within_dingtalk_answer_timeout_goes_once_more_never_twice(nginx_factory, mock):
    # No answer in time, and no time left to send once more: 503, and Alertmanager's retry
    # sends it once more; when that one is not answered either, it is never sent again.
    ngx = nginx_factory(webhook(mock, "dingtalk_timeout 1s; dingtalk_answer_timeout 1s;"))
    mock.default = {"status": 200, "body": MockDingTalk.OK, "delay": 3}
    payload = notification()
    r = ngx.post("/", payload)
    assert r.status == 503 and "did not answer" in r.json["reason"], r
    assert len(mock.received) == 1
    r = ngx.post("/", payload)
    assert r.status == 502 and "answered neither" in r.json["reason"], r
    assert len(mock.received) == 2
    r = ngx.post("/", payload)
    assert r.status == 200 and "already posted" in r.json["reason"], r
    assert len(mock.received) == 2, "never a third send"


def test_full_thread_pool_queue_is_503(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock), thread_pool="thread_pool dingtalk threads=1 max_queue=1;")
    mock.default = {"status": 200, "body": MockDingTalk.OK, "delay": 1.5}
    results = []

    def send():
        results.append(ngx.post("/", notification()))

    threads = [threading.Thread(target=send) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status for r in results)
    # one thread, a queue of one: which tasks find it full depends on timing (a send posted
    # just before the thread takes the queued task is refused too), so at least one is
    # delivered, and some are refused
    assert 200 in statuses and 503 in statuses, statuses
    busy = [r for r in results if r.status == 503]
    assert all(int(r.headers["retry-after"]) > 0 for r in busy)
    assert 'thread pool "dingtalk" queue is full' in ngx.error_log()
    assert len(mock.accepted()) == statuses.count(200), "200 only for what DingTalk took"


def test_body_over_client_max_body_size_is_413(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "client_max_body_size 1k;"))
    r = ngx.post("/", notification(*[alert(pod=f"p{i}") for i in range(20)]))
    assert r.status == 413, r
    assert mock.received == []


def test_empty_token_from_a_variable_is_404(nginx_factory, mock):
    ngx = nginx_factory(f"""
    map $http_x_team $robot {{ ops {TOKEN}; }}
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token $robot;
            dingtalk_api_url {mock.url};
        }}
    }}
""")
    r = ngx.post("/", notification(), headers={"X-Team": "unknown"})
    assert r.status == 404, r
    assert "no DingTalk robot" in r.json["reason"]
    assert mock.received == []


def test_token_with_foreign_characters_is_refused_and_never_used(nginx_factory, mock):
    ngx = nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token $http_x_token;
            dingtalk_api_url {mock.url};
        }}
    }}
""", log_level="debug")
    for bad in ("abc&sign=evil", "abc def", "abc%26x", "../../x"):
        r = ngx.post("/", notification(), headers={"X-Token": bad})
        assert r.status == 500, (bad, r)
        assert "not a valid robot token" in r.json["reason"]
    assert mock.received == []
    assert "holds characters DingTalk never issues" in ngx.error_log()


def test_replies_are_json_with_a_reason(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    for r in (ngx.post("/", b"{"), ngx.get("/"), ngx.request("PUT", "/")):
        assert r.headers["content-type"] == "application/json"
        assert isinstance(json.loads(r.body)["reason"], str)
