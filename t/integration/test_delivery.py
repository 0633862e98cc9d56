"""What arrives at DingTalk, and what Alertmanager is told, for each kind of notification."""

import json
import re

from harness import SECRET, TOKEN, alert, notification, webhook


def test_firing_group_arrives_as_one_markdown_message(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    body = notification(alert(pod="api-0"), alert(pod="api-1"), alert(pod="api-2"))
    r = ngx.post("/", body)

    assert r.status == 200, r
    assert r.json["ok"] is True and r.json["errcode"] == 0 and r.json["alerts"] == 3
    assert len(mock.received) == 1, "one message per notification, never one per alert"
    msg = mock.received[0]
    assert msg.path == "/robot/send"
    assert msg.query["access_token"] == TOKEN
    assert msg.headers["Content-Type"].startswith("application/json")
    assert msg.json["msgtype"] == "markdown"
    assert msg.title == "[FIRING:3] KubePodCrashLooping"
    for pod in ("api-0", "api-1", "api-2"):
        assert f"**故障pod**: {pod}" in msg.text
    for field in ("告警级别", "告警类型", "故障namespace", "告警详情", "告警状态", "触发时间"):
        assert msg.text.count(f"**{field}**") == 3, field
    assert "2026-11-24 00:04:05 +08:00" in msg.text, "startsAt shown in Asia/Shanghai"
    assert "结束时间" not in msg.text and "0001" not in msg.text
    assert "[查看图表](http://prometheus.example/graph?g0.expr=up)" in msg.text
    assert msg.sig_ok is None, "no secret configured: no signature"


def test_resolved_group_shows_end_time(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    body = notification(alert(status="resolved", ends="2026-11-23T17:00:00Z"),
                        alert(status="resolved", pod="api-1", ends="2026-11-23T17:30:00.5Z"))
    r = ngx.post("/", body)

    assert r.status == 200, r
    msg = mock.received[0]
    assert msg.title == "[RESOLVED:2] KubePodCrashLooping"
    assert "#### 已恢复 (2)" in msg.text and "告警中" not in msg.text
    assert "**结束时间**: 2026-11-24 01:00:00 +08:00" in msg.text
    assert "**结束时间**: 2026-11-24 01:30:00 +08:00" in msg.text
    assert msg.text.count("**告警状态**: resolved") == 2


def test_mixed_group_shows_firing_and_resolved_apart(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    body = notification(alert(status="resolved", pod="old-0", ends="2026-11-23T17:00:00Z"),
                        alert(pod="new-0"), alert(pod=None, extra_labels={"instance": "10.0.0.7:9100",
                                                                          "job": "node"}))
    r = ngx.post("/", body)

    assert r.status == 200, r
    text = mock.received[0].text
    assert mock.received[0].title == "[FIRING:2, RESOLVED:1] KubePodCrashLooping"
    firing_at, resolved_at = text.index("#### 告警中 (2)"), text.index("#### 已恢复 (1)")
    assert firing_at < text.index("new-0") < resolved_at < text.index("old-0")
    # an alert without a pod says what is wrong all the same
    assert "**故障实例**: 10.0.0.7:9100" in text
    assert "**其他标签**: job=node" in text
    assert "**: -\n" not in text, "no field shown as a dash"


def test_timezone_directive_changes_times(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_timezone America/New_York;"))
    assert ngx.post("/", notification(alert(starts="2026-07-01T16:00:00Z"))).status == 200
    assert ngx.post("/", notification(alert(starts="2026-12-01T16:00:00Z"))).status == 200
    assert "2026-07-01 12:00:00 -04:00" in mock.received[0].text  # daylight saving
    assert "2026-12-01 11:00:00 -05:00" in mock.received[1].text


def test_signed_request_is_accepted_by_the_mock(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, f"dingtalk_secret {SECRET};"))
    r = ngx.post("/", notification())
    assert r.status == 200, r
    msg = mock.received[0]
    assert re.fullmatch(r"\d{13}", msg.query["timestamp"])
    assert msg.sig_ok is True, "HMAC-SHA256 signature, base64 and URL-encoded"


def test_token_and_secret_from_variables(nginx_factory, mock):
    ngx = nginx_factory(f"""
    map $http_x_team $team_token {{
        ops    {TOKEN};
        db     feedface00112233;
    }}
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token $team_token;
            dingtalk_secret $http_x_secret;
            dingtalk_api_url {mock.url};
        }}
    }}
""")
    assert ngx.post("/", notification(), headers={"X-Team": "db"}).status == 200
    assert ngx.post("/", notification(), headers={"X-Team": "ops", "X-Secret": SECRET}).status == 200
    assert mock.received[0].query["access_token"] == "feedface00112233"
    assert mock.received[0].sig_ok is None
    assert mock.received[1].query["access_token"] == TOKEN
    assert mock.received[1].sig_ok is True


def test_https_with_the_test_ca(nginx_factory, tls_mock, certs):
    ngx = nginx_factory(webhook(tls_mock, f"dingtalk_ssl_trusted_certificate {certs.ca};"))
    r = ngx.post("/", notification())
    assert r.status == 200, r
    assert len(tls_mock.received) == 1


def test_untrusted_certificate_is_refused(nginx_factory, certs):
    from harness import MockDingTalk

    rogue = MockDingTalk(tls_cert=certs.rogue_cert, tls_key=certs.rogue_key)
    try:
        ngx = nginx_factory(webhook(rogue, f"dingtalk_ssl_trusted_certificate {certs.ca};"))
        r = ngx.post("/", notification())
        assert r.status == 502, r
        assert r.json["ok"] is False
        assert "TLS" in r.json["reason"] and "certificate" in r.json["reason"]
        assert rogue.received == [], "nothing may be sent over an unverified connection"
    finally:
        rogue.close()


def test_ssl_verify_off_accepts_any_certificate_and_warns(nginx_factory, certs):
    from harness import MockDingTalk

    rogue = MockDingTalk(tls_cert=certs.rogue_cert, tls_key=certs.rogue_key)
    try:
        ngx = nginx_factory(webhook(rogue, "dingtalk_ssl_verify off;"))
        assert ngx.post("/", notification()).status == 200
        assert "dingtalk_ssl_verify is off" in ngx.error_log()
    finally:
        rogue.close()


def test_body_spilled_to_a_temp_file_is_read_whole(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "client_body_buffer_size 1k; client_max_body_size 4m;"),
                        log_level="debug")
    alerts = [alert(pod=f"api-{i}", message="x" * 200) for i in range(40)]
    body = json.dumps(notification(*alerts))
    assert len(body) > 8 * 1024
    r = ngx.post("/", body)
    assert r.status == 200, r
    assert r.json["alerts"] == 40
    assert "a client request body is buffered to a temporary file" in ngx.error_log()


def test_huge_group_is_cut_to_fit_dingtalk_limit(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "client_max_body_size 16m;"))
    alerts = [alert(pod=f"api-{i}", message="long description " * 40) for i in range(300)]
    r = ngx.post("/", notification(*alerts, truncated=7))
    assert r.status == 200, r
    msg = mock.received[0]
    assert len(msg.body) < 20000, "DingTalk refuses bodies over 20000 bytes (460101)"
    shown = r.json["shown"]
    assert 0 < shown < 300
    assert msg.text.count("**故障pod**") == shown
    assert f"另有 {300 - shown + 7} 条告警未显示" in msg.text
    assert "http://alertmanager.example:9093/#/alerts" in msg.text


def test_markdown_and_odd_bytes_in_values_cannot_break_the_message(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    nasty = "**bold** [link](javascript:alert(1)) <b>x</b>\r\n# heading\t`code` 中文🙂"
    a = alert(pod=nasty, message=nasty)
    a["generatorURL"] = "javascript:alert(1)"
    r = ngx.post("/", notification(a))
    assert r.status == 200, r
    text = mock.received[0].text
    assert "\\*\\*bold\\*\\*" in text and "\\[link\\]" in text
    assert "&lt;b&gt;" in text and "<b>" not in text
    assert "\n# heading" not in text and "\r" not in text
    assert "中文🙂" in text
    assert "javascript:" not in text.replace("(javascript:alert(1))", "")
    assert "查看图表" not in text, "only http(s) links are rendered"
