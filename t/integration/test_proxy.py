"""dingtalk_proxy: every delivery through a real forward proxy (Debian's tinyproxy), DingTalk's
certificate still verified end to end; without the directive, no proxy whatever the environment
says; credentials never in a log, a reply, the metrics or nginx -t's output."""

import re

import pytest

from harness import TOKEN, MockDingTalk, Nginx, free_port, line_of, notification

PASSWORD = "Pr0xy-Passw0rd-Never-Logged"


def server(locations, http=""):
    return f"""
    {http}
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_token {TOKEN};
        dingtalk_thread_pool dingtalk;
        dingtalk_timeout 3s;
{locations}
    }}
"""


def test_https_goes_through_the_proxy_with_dingtalks_certificate_verified(
        nginx_factory, proxies, tls_mock, certs):
    rogue = MockDingTalk(tls_cert=certs.rogue_cert, tls_key=certs.rogue_key)
    try:
        proxy = proxies(tls_mock.port, rogue.port)
        ngx = nginx_factory(server(f"""
        dingtalk_proxy {proxy.url()};
        dingtalk_ssl_trusted_certificate {certs.ca};
        location = / {{ dingtalk; dingtalk_api_url {tls_mock.url}; }}
        location = /rogue {{ dingtalk; dingtalk_api_url {rogue.url}; }}
"""))
        r = ngx.post("/", notification())
        assert r.status == 200, r
        assert len(tls_mock.received) == 1
        assert tls_mock.received[0].query["access_token"] == TOKEN
        assert f"CONNECT 127.0.0.1:{tls_mock.port} HTTP/1.1" in proxy.log(), proxy.log()

        # The proxy relays bytes: a certificate our CA did not sign is refused through it too.
        r = ngx.post("/rogue", notification())
        assert r.status == 502, r
        assert "TLS certificate not trusted" in r.json["reason"], r
        assert f"CONNECT 127.0.0.1:{rogue.port} HTTP/1.1" in proxy.log(), proxy.log()
        assert rogue.received == [], "nothing may be sent over an unverified connection"
    finally:
        rogue.close()


ENV_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY")


def test_without_dingtalk_proxy_the_environment_is_ignored(nginx_factory, tls_mock, mock, certs):
    dead = free_port()
    env = "\n".join(f"env {name}=http://127.0.0.1:{dead};" for name in ENV_PROXIES)
    ngx = nginx_factory(server(f"""
        dingtalk_ssl_trusted_certificate {certs.ca};
        location = /tls {{ dingtalk; dingtalk_api_url {tls_mock.url}; }}
        location = /http {{ dingtalk; dingtalk_api_url {mock.url}; }}
        location = /off {{ dingtalk; dingtalk_proxy off; dingtalk_api_url {mock.url}; }}
"""), main=env, env={name: f"http://127.0.0.1:{dead}" for name in ENV_PROXIES})
    for path in ("/tls", "/http", "/off"):
        r = ngx.post(path, notification())
        assert r.status == 200, (path, r, ngx.error_log()[-2000:])
    assert len(tls_mock.received) == 1 and len(mock.received) == 2


def test_off_in_a_location_overrides_the_servers_proxy(nginx_factory, proxies, mock):
    proxy = proxies(mock.port)
    ngx = nginx_factory(server(f"""
        dingtalk_proxy {proxy.url()};
        dingtalk_api_url {mock.url};
        location = /via {{ dingtalk; }}
        location = /direct {{ dingtalk; dingtalk_proxy off; }}
"""))
    assert ngx.post("/direct", notification()).status == 200
    assert "POST http://" not in proxy.log()
    assert ngx.post("/via", notification()).status == 200
    # an http:// target is forwarded by the proxy (no CONNECT): it sees the whole URL
    assert f"POST http://127.0.0.1:{mock.port}/robot/send?access_token=" in proxy.log()
    assert len(mock.received) == 2


def test_proxy_credentials_work_and_are_never_shown(nginx_factory, proxies, tls_mock, certs):
    proxy = proxies(tls_mock.port, auth=("ops", PASSWORD))
    good = proxy.url(f"ops:{PASSWORD}@")
    wrong = proxy.url("ops:Wr0ng-Passw0rd-Never-Logged@")
    ngx = nginx_factory(server(f"""
        dingtalk_ssl_trusted_certificate {certs.ca};
        dingtalk_api_url {tls_mock.url};
        dingtalk_verbose_replies on;
        location = / {{ dingtalk; dingtalk_proxy {good}; }}
        location = /wrong {{ dingtalk; dingtalk_proxy {wrong}; }}
        location = /none {{ dingtalk; dingtalk_proxy {proxy.url()}; }}
        location = /metrics {{ dingtalk_metrics; }}
"""), log_level="debug")
    ok = ngx.post("/", notification())
    assert ok.status == 200, ok
    assert len(tls_mock.received) == 1
    replies = [ok]
    for path in ("/wrong", "/none"):
        r = ngx.post(path, notification())
        assert r.status == 502, r
        # tinyproxy 1.11 answers a CONNECT without the right credentials with 401, not 407
        assert re.search(r"the proxy did not open the way to DingTalk \(HTTP 40[17]: check the "
                         r"user and password in dingtalk_proxy\)", r.json["reason"]), r
        replies.append(r)
    assert len(tls_mock.received) == 1, "a refused CONNECT reaches nothing"
    replies.append(ngx.get("/metrics"))
    log = ngx.error_log()
    assert "[debug]" in log, "the check must run at debug level"
    assert f"(the proxy http://***@127.0.0.1:{proxy.port})" in log, log[-3000:]
    assert re.search(r"CONNECT tunnel failed, response 40[17]", log), log[-3000:]
    for secret in (PASSWORD, "Wr0ng-Passw0rd-Never-Logged"):
        assert secret not in log
        for r in replies:
            assert secret.encode() not in r.body, r


def test_unreachable_proxy_is_a_502_that_names_the_proxy(nginx_factory, mock):
    dead = free_port()
    ngx = nginx_factory(server(f"""
        dingtalk_api_url {mock.url};
        dingtalk_proxy http://ops:{PASSWORD}@127.0.0.1:{dead};
        location = / {{ dingtalk; }}
        location = /verbose {{ dingtalk; dingtalk_verbose_replies on; }}
"""))
    r = ngx.post("/", notification())
    assert r.status == 502, r
    assert r.json["reason"] == "cannot reach the proxy", r
    v = ngx.post("/verbose", notification())
    assert v.json["reason"].startswith(f"cannot reach the proxy http://***@127.0.0.1:{dead}: "), v
    assert mock.received == []
    log = ngx.error_log()
    assert f"502 unreachable, 1 alert, " in log
    assert f"cannot reach the proxy http://***@127.0.0.1:{dead}: Failed to connect" in log, log
    assert "attempts" in log, "a proxy that is down is retried like a failed connect"
    assert PASSWORD not in log and PASSWORD.encode() not in r.body + v.body


BAD_PROXIES = [
    (f"ftp://ops:{PASSWORD}@proxy.example:21", "must be an http://, https:// or socks5h:// URL"),
    (f"socks5://ops:{PASSWORD}@proxy.example:1080", "socks5h://"),
    (f"http://ops:{PASSWORD}@proxy.example", "needs a port"),
    (f"http://ops:{PASSWORD}@proxy.example:3128/x", "without a path"),
]


@pytest.mark.parametrize("url,why", BAD_PROXIES, ids=[b[1] for b in BAD_PROXIES])
def test_bad_proxy_fails_nginx_t_with_file_line_and_no_password(url, why):
    ngx = Nginx(server(f"""
        location = / {{
            dingtalk;
            dingtalk_proxy {url};
        }}
"""))
    ok, out = ngx.test_config()
    assert not ok, out
    assert "dingtalk_proxy" in out and why in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_proxy')}" in out, out
    assert "***@proxy.example" in out, out
    assert PASSWORD not in out, out
