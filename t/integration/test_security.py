"""Only Alertmanager may post: credentials it already sends (http_config authorization or
basic_auth), JSON only, never from a web page; replies say the category and the log the
detail."""

import os

import pytest

from alertmanager_harness import ALERTMANAGER_BIN, executable, wait_until
from harness import TOKEN, notification, webhook, world_readable_tmpdir

BEARER = "am-to-dingtalk-4d1f0c3b9a7e2f16"
USER, PASSWORD = "alertmanager", "correct-horse-battery-staple"


def secret_file(text):
    d = world_readable_tmpdir("dingtalk-auth-")
    path = os.path.join(d, "credentials")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o400)  # read by nginx's master (root), as a mounted Secret
    return path


@pytest.fixture
def guarded(nginx_factory, mock):
    bearer = secret_file(f"# rotate by adding a line\n{BEARER}\n")
    basic = secret_file(f"{USER}:{PASSWORD}\n")
    return nginx_factory(webhook(mock, f"""dingtalk_auth_bearer_file {bearer};
            dingtalk_auth_basic_file {basic};
            dingtalk_timeout 2s;"""))


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token-wrong-token", "Bearer ",
                                           f"Bearer {BEARER}x", basic(USER, PASSWORD + "x"),
                                           basic("root", PASSWORD), BEARER])
def test_no_or_wrong_credentials_are_401_and_reach_nothing(guarded, mock, authorization):
    headers = {"Authorization": authorization} if authorization is not None else {}
    r = guarded.post("/", notification(), headers=headers)
    assert r.status == 401, r
    assert r.json == {"ok": False, "reason": r.json["reason"]}
    assert "authorization required" in r.json["reason"]
    assert r.headers["www-authenticate"].startswith("Basic realm=\"dingtalk\"")
    assert not mock.received
    log = guarded.error_log()
    assert "answered 401" in log
    assert BEARER not in log and PASSWORD not in log
    if authorization:
        assert authorization not in log


def test_either_credential_delivers(guarded, mock):
    assert guarded.post("/", notification(),
                        headers={"Authorization": f"Bearer {BEARER}"}).status == 200
    assert guarded.post("/", notification(),
                        headers={"Authorization": basic(USER, PASSWORD)}).status == 200
    assert len(mock.received) == 2


def test_a_stranger_learns_nothing_not_even_the_health(guarded):
    r = guarded.get("/")
    assert r.status == 401 and "ready" not in r.body.decode(), r
    assert guarded.get("/", headers={"Authorization": f"Bearer {BEARER}"}).status == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "",
                                          "application/jsonp"])
def test_only_json_is_a_webhook(nginx_factory, mock, content_type):
    """A page on another origin can POST text/plain without a CORS preflight."""
    ngx = nginx_factory(webhook(mock))
    r = ngx.post("/", notification(), headers={"Content-Type": content_type})
    assert r.status == 415 and "application/json" in r.json["reason"], r
    assert not mock.received
    ok = ngx.post("/", notification(), headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status == 200


def test_a_web_page_may_not_post(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    r = ngx.post("/", notification(), headers={"Origin": "https://evil.example"})
    assert r.status == 403 and "web pages may not post" in r.json["reason"], r
    assert not mock.received


def test_replies_say_the_category_and_the_log_the_detail(nginx_factory, mock):
    from harness import free_port

    dead = f"http://127.0.0.1:{free_port()}/robot/send"
    ngx = nginx_factory(f"""
    dingtalk_token {TOKEN};
    dingtalk_timeout 1s;
    server {{
        listen 127.0.0.1:%PORT%;
        location = /dead {{ dingtalk; dingtalk_api_url {dead}; }}
        location = /refused {{ dingtalk; dingtalk_api_url {mock.url}; }}
        location = /verbose {{ dingtalk; dingtalk_api_url {mock.url}; dingtalk_verbose_replies on; }}
    }}
""")
    r = ngx.post("/dead", notification())
    assert r.status == 502 and r.json["reason"] == "cannot reach DingTalk (connect failed)", r
    assert "127.0.0.1" not in r.body.decode() and "port" not in r.body.decode()
    assert "Failed to connect to 127.0.0.1 port" in ngx.error_log(), "the log keeps the detail"
    mock.default = {"body": {"errcode": 310000, "errmsg": "ip 203.0.113.7 not in whitelist"}}
    r = ngx.post("/refused", notification())
    assert r.status == 502 and r.json["errcode"] == 310000, r
    assert "203.0.113.7" not in r.body.decode() and "errmsg" not in r.json
    assert "203.0.113.7" in ngx.error_log()
    v = ngx.post("/verbose", notification())
    assert "203.0.113.7" in v.json["reason"] and v.json["errmsg"], v


def test_an_http_api_url_is_warned_about(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock), start=False)
    ok, out = ngx.test_config()
    assert ok and "dingtalk_api_url is http://" in out and "clear text" in out, out


needs_alertmanager = pytest.mark.skipif(not executable(ALERTMANAGER_BIN),
                                        reason=f"{ALERTMANAGER_BIN} not installed")


@needs_alertmanager
@pytest.mark.parametrize("scheme", ["bearer", "basic"])
def test_alertmanager_with_its_credentials_delivers(guarded, mock, scheme):
    """The real Alertmanager, with the credentials in files as in Kubernetes."""
    from test_alertmanager import Chain, am_alert, now_s, accepted
    import datetime

    if scheme == "bearer":
        config = f"""      authorization:
        type: Bearer
        credentials_file: {secret_file(BEARER)}
"""
    else:
        config = f"""      basic_auth:
        username: {USER}
        password_file: {secret_file(PASSWORD)}
"""
    chain = Chain()
    try:
        am = chain.alertmanager(f"http://127.0.0.1:{guarded.port}/", http_config=config)
        chain.watch(guarded)
        name = f"DingtalkAuth{scheme.title()}"
        starts, ends = now_s() - datetime.timedelta(minutes=1), now_s() + datetime.timedelta(hours=1)
        am.post_alerts([am_alert(name, "db-0", starts, ends)])
        wait_until(lambda: accepted(mock, name), 30, "the delivery", chain.logs)
        assert "answered 401" not in guarded.error_log()
    finally:
        chain.close()


@needs_alertmanager
def test_alertmanager_without_credentials_is_refused(guarded, mock):
    from test_alertmanager import Chain, am_alert, now_s
    import datetime

    chain = Chain()
    try:
        am = chain.alertmanager(f"http://127.0.0.1:{guarded.port}/")
        chain.watch(guarded)
        starts, ends = now_s() - datetime.timedelta(minutes=1), now_s() + datetime.timedelta(hours=1)
        am.post_alerts([am_alert("DingtalkNoAuth", "db-0", starts, ends)])
        wait_until(lambda: "answered 401" in guarded.error_log(), 30, "a 401", chain.logs)
        assert not mock.received, "DingTalk sees nothing"
        wait_until(lambda: "401" in am.log(), 10, "Alertmanager's log of the 401", chain.logs)
    finally:
        chain.close()
