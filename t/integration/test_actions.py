"""Silencing from the chat (issue #25), as far as it is built: the signed links in the messages
of a location with dingtalk_action_url and dingtalk_action_key_file, checked here with the key;
the action location's GET (the confirmation page, or why a link is refused) and its POST, which
makes the silence in Debian's real Alertmanager 0.25 (alertmanager_harness.py)."""

import base64
import hashlib
import hmac
import os
import json
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.parse

import pytest

from alertmanager_harness import ALERTMANAGER_BIN, Alertmanager, executable, http_get
from harness import alert, notification, relay, webhook, world_readable_tmpdir

SECRET = "0123456789abcdef0123456789abcdef-integration"
AM_TOKEN = "am-api-token-never-in-a-message"
BASE = "https://hook.example.com/dingtalk/action"


def conf_file(name, text):
    d = world_readable_tmpdir("dingtalk-action-")
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o400)  # read by nginx's master (root), as a mounted Secret
    return path


def unb64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def varint(b, i):
    v, shift = 0, 0
    while True:
        v |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if not b[i - 1] & 0x80:
            return v, i


def string(b, i):
    n, i = varint(b, i)
    return b[i:i + n].decode(), i + n


def decode(token):
    """The link a token names, after checking its signature with SECRET."""
    kid, payload, tag = token.split(".")
    want = hmac.new(SECRET.encode(), f"dingtalk-action-link-v1\n{kid}\n{payload}".encode(),
                    hashlib.sha256).digest()[:16]
    assert hmac.compare_digest(unb64(tag), want), token
    b = unb64(payload)
    assert b[0] == 1
    expires, i = varint(b, 1)
    until = b[i] == 1
    seconds, i = varint(b, i + 1)
    fingerprint, i = string(b, i)
    n, i = varint(b, i)
    matchers = {}
    for _ in range(n):
        name, i = string(b, i)
        matchers[name], i = string(b, i)
    return {"expires": expires, "until": until, "seconds": seconds,
            "fingerprint": fingerprint, "matchers": matchers}


def b64(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def put_varint(v):
    out = b""
    while v >= 0x80:
        out += bytes([(v & 0x7F) | 0x80])
        v >>= 7
    return out + bytes([v])


def put_string(s):
    return put_varint(len(s.encode())) + s.encode()


def encode(matchers, expires, seconds=7200, until=False, fingerprint="", kid="k1"):
    """A link as the module writes one (src/action.cpp), signed with SECRET."""
    b = bytes([1]) + put_varint(expires) + bytes([1 if until else 0]) + put_varint(seconds)
    b += put_string(fingerprint) + put_varint(len(matchers))
    for name, value in matchers.items():
        b += put_string(name) + put_string(value)
    payload = b64(b)
    tag = hmac.new(SECRET.encode(), f"dingtalk-action-link-v1\n{kid}\n{payload}".encode(),
                   hashlib.sha256).digest()[:16]
    return f"{kid}.{payload}.{b64(tag)}"


def test_firing_alerts_carry_signed_links_that_name_them(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    am = conf_file("am-token", AM_TOKEN + "\n")
    ngx = nginx_factory(webhook(mock, f"""dingtalk_action_url {BASE};
            dingtalk_action_key_file {keys};
            dingtalk_alertmanager_url http://alertmanager.internal:9093;
            dingtalk_alertmanager_bearer_file {am};"""))
    firing = alert(pod="api-7", extra_labels={"prometheus": "monitoring/k8s"},
                   fingerprint="3ed2f3b1a2c4d5e6")
    resolved = alert(pod="api-8", status="resolved", ends="2026-11-23T17:00:00Z")
    before = int(time.time())
    r = ngx.post("/", notification(firing, resolved))
    assert r.status == 200, r
    text = mock.received[0].text
    assert "**静默**: [2小时](" in text and "[1天](" in text and "[直到恢复](" in text, text
    tokens = re.findall(re.escape(BASE) + r"\?l=([A-Za-z0-9_.-]+)\)", text)
    assert len(tokens) == 3, text  # the resolved alert has none
    links = [decode(t) for t in tokens]
    assert [(l["seconds"], l["until"]) for l in links] == [(7200, False), (86400, False),
                                                          (7 * 86400, True)]
    for link in links:
        assert link["matchers"] == {"alertname": "KubePodCrashLooping", "severity": "critical",
                                    "namespace": "kube-ops", "pod": "api-7"}, "prometheus hidden"
        assert link["fingerprint"] == "3ed2f3b1a2c4d5e6"
        assert before + 86400 <= link["expires"] <= int(time.time()) + 86400
    body = mock.received[0].body.decode() if isinstance(mock.received[0].body, bytes) \
        else mock.received[0].body
    assert "alertmanager.internal" not in body and AM_TOKEN not in body
    assert SECRET not in ngx.error_log() and AM_TOKEN not in ngx.error_log()


def test_without_the_directives_messages_are_as_before(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    r = ngx.post("/", notification(alert()))
    assert r.status == 200, r
    assert "action?l=" not in mock.received[0].text
    assert "**静默**:" not in mock.received[0].text


def with_action(mock, keys, am_url="http://127.0.0.1:9", am_token=None):
    """A webhook location writing links, the action location they point at (asking the
    Alertmanager at am_url, with a bearer token file when am_token), and the metrics."""
    bearer = f"dingtalk_alertmanager_bearer_file {conf_file('am', am_token)};" if am_token else ""
    return webhook(mock, f"""dingtalk_action_url {BASE};
            dingtalk_action_key_file {keys};""") .replace(
        "location = /static {", f"""location = /dingtalk/action {{
            dingtalk_action;
            dingtalk_action_key_file {keys};
            dingtalk_alertmanager_url {am_url};
            {bearer}
            dingtalk_thread_pool dingtalk;
        }}
        location = /metrics {{
            dingtalk_metrics;
        }}
        location = /static {{""")


def link_of(ngx, mock, **labels):
    r = ngx.post("/", notification(alert(**labels)))
    assert r.status == 200, r
    text = mock.received[-1].text
    return re.findall(re.escape(BASE) + r"\?l=([A-Za-z0-9_.-]+)\)", text)[0]


def test_a_links_get_answers_the_confirmation_page(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys))
    token = link_of(ngx, mock, pod='<script>alert("x")</script>')
    for _ in range(10):  # a GET never acts: the same page, every time
        r = ngx.get(f"/dingtalk/action?l={token}")
        assert r.status == 200, r
    page = r.body.decode()
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["content-security-policy"].startswith("default-src 'none';")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in page and "&lt;script&gt;" in page
    assert f'name="l" value="{token}"' in page and 'name="t" value="' in page
    assert "静默2小时</button>" in page and '<html lang="zh-CN">' in page
    assert '<form method="post" action="?">' in page, "the POST's URL leaves the link out"


def test_links_written_here_are_the_modules(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys))
    token = encode({"alertname": "Disk", "instance": "db-1"}, expires=int(time.time()) + 60,
                   until=True, seconds=86400)
    r = ngx.get(f"/dingtalk/action?l={token}")
    assert r.status == 200, r
    assert "直到恢复（最长1天）" in r.body.decode()
    assert decode(token)["matchers"] == {"alertname": "Disk", "instance": "db-1"}


def test_refused_links_say_why(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys))
    token = link_of(ngx, mock)
    kid, payload, tag = token.split(".")
    altered = f"{kid}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{tag}"
    cases = [(altered, 403, "链接被改动过"), ("k9." + payload + "." + tag, 403, "不再有效"),
             ("nonsense", 403, "不是完整的操作链接"), (None, 400, "不是完整的操作链接"),
             (encode({"alertname": "A"}, expires=int(time.time()) - 1), 403, "已过期")]
    for link, status, why in cases:
        r = ngx.get("/dingtalk/action" + (f"?l={link}" if link else ""))
        assert r.status == status and why in r.body.decode(), (link, r)
        assert "<h1 class=\"refused\">链接无效</h1>" in r.body.decode()
        assert r.headers["content-security-policy"].startswith("default-src 'none';")


# ------------------------------------------------------------------------------------------
# the POST, against the real Alertmanager


@pytest.fixture
def alertmanager():
    if not executable(ALERTMANAGER_BIN):
        pytest.skip(f"{ALERTMANAGER_BIN} not installed (Debian's prometheus-alertmanager)")
    am = Alertmanager("http://127.0.0.1:9/unused").start()
    yield am
    am.stop()
    am.cleanup()


def silences(am):
    """Alertmanager's silences that are not expired."""
    status, text = http_get(am.url + "/api/v2/silences")
    assert status == 200, text
    return [s for s in json.loads(text) if s["status"]["state"] != "expired"]


def form_token(ngx, token):
    r = ngx.get(f"/dingtalk/action?l={token}")
    assert r.status == 200, r
    return re.search(r'name="t" value="([^"]+)"', r.body.decode()).group(1)


def post_form(ngx, fields, headers=None, raw=None):
    """POSTs the form as a browser does from the page (its own Origin, same-origin), to where
    its action="?" points: the page's path, without the query that holds the link."""
    hdrs = {"Content-Type": "application/x-www-form-urlencoded",
            "Origin": f"http://127.0.0.1:{ngx.port}", "Sec-Fetch-Site": "same-origin"}
    hdrs.update(headers or {})
    body = raw if raw is not None else urllib.parse.urlencode(fields)
    return ngx.post("/dingtalk/action?", body, headers=hdrs)


def actions(ngx):
    """dingtalk_actions_total by result, checked by promtool."""
    text = ngx.get("/metrics").body.decode()
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return {m[0]: int(m[1]) for m in re.findall(
        r'^dingtalk_actions_total\{action="silence",result="(\w+)"\} (\d+)$', text, re.M)}


def test_the_pages_form_silences_the_alert_once(nginx_factory, mock, alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, alertmanager.url, am_token=AM_TOKEN))
    token = link_of(ngx, mock, pod="api-7")
    for _ in range(10):
        t = form_token(ngx, token)
    assert silences(alertmanager) == [], "a GET never acts"
    before = int(time.time())
    form = {"l": token, "t": t, "name": "张三", "comment": "disk swap tonight"}
    r = post_form(ngx, form)
    assert r.status == 200, r
    page = r.body.decode()
    assert "<h1 class=\"ok\">已静默</h1>" in page and "2小时" in page, page
    assert r.headers["content-security-policy"].startswith("default-src 'none';")
    made = silences(alertmanager)
    assert len(made) == 1, made
    s = made[0]
    assert sorted((m["name"], m["value"], m["isEqual"], m["isRegex"]) for m in s["matchers"]) == \
        sorted((n, v, True, False) for n, v in {"alertname": "KubePodCrashLooping",
                                                "severity": "critical", "namespace": "kube-ops",
                                                "pod": "api-7"}.items())
    assert s["createdBy"] == "DingTalk: 张三"
    assert "disk swap tonight" in s["comment"]
    ends = time.mktime(time.strptime(s["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before + 7200 - 5 <= ends <= time.time() + 7200 + 5, s["endsAt"]
    assert s["id"] in page

    r = post_form(ngx, form)  # the same link again
    assert r.status == 200, r
    assert "已在静默中" in r.body.decode() and "DingTalk: 张三" in r.body.decode()
    assert len(silences(alertmanager)) == 1, "no second silence"
    assert actions(ngx) == {"created": 1, "already": 1, "failed": 0, "refused": 0}
    log = ngx.error_log()
    assert f'action silence created: alert "KubePodCrashLooping", silence {s["id"]},' in log
    assert f'action silence already: alert "KubePodCrashLooping", silence {s["id"]},' in log
    # nginx adds the request line to each line of a request: the POST's has no query (the
    # form's action), so at info level the log holds neither the link nor any other secret
    assert 'request: "POST /dingtalk/action? HTTP/1.1"' in log
    for secret in (token, t, AM_TOKEN, SECRET):
        assert secret not in log, secret


def test_posts_that_are_not_the_pages_form_are_refused(nginx_factory, mock, alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, alertmanager.url))
    token = link_of(ngx, mock)
    t = form_token(ngx, token)
    kid, payload, tag = token.split(".")
    altered = f"{kid}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{tag}"
    other = encode({"alertname": "Other"}, expires=int(time.time()) + 600)
    wrong = t[:-1] + ("A" if t[-1] != "A" else "B")
    cases = [
        ({"l": token}, {}, 403, "不是该链接的页面"),
        ({"l": token, "t": wrong}, {}, 403, "不是该链接的页面"),
        ({"l": other, "t": t}, {}, 403, "不是该链接的页面"),  # another link's token
        ({"l": altered, "t": t}, {}, 403, "链接被改动过"),
        ({"l": token, "t": t}, {"Origin": "https://evil.example"}, 403, "其他网站"),
        ({"l": token, "t": t}, {"Sec-Fetch-Site": "cross-site", "Origin": "null"}, 403,
         "其他网站"),
        ({"l": token, "t": t}, {"Content-Type": "application/json"}, 415, "本页"),
        ({"l": token, "t": t, "name": "a\x01b"}, {}, 400, "姓名含有控制字符"),
    ]
    for fields, headers, status, why in cases:
        r = post_form(ngx, fields, headers)
        assert r.status == status and why in r.body.decode(), (fields, headers, r)
        assert r.headers["content-type"] == "text/html; charset=utf-8"
    big = urllib.parse.urlencode({"l": token, "t": t, "comment": "x" * 5000})
    r = post_form(ngx, {"l": token}, raw=big)
    assert r.status == 413, r
    assert silences(alertmanager) == [], "nothing was silenced"
    assert actions(ngx) == {"created": 0, "already": 0, "failed": 0, "refused": len(cases) + 1}
    assert ngx.error_log().count("action silence refused") == len(cases) + 1


def test_alertmanager_down_is_a_failure_page_and_changes_nothing(nginx_factory, mock,
                                                                 alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, alertmanager.url))
    token = link_of(ngx, mock)
    form = {"l": token, "t": form_token(ngx, token), "name": "ops"}
    alertmanager.stop()
    r = post_form(ngx, form)
    assert r.status == 502, r
    page = r.body.decode()
    assert "未静默" in page and "无法连接 Alertmanager" in page
    assert "没有做任何更改" in page
    alertmanager.start()  # its storage kept: what a half-done POST had left would be there
    assert silences(alertmanager) == []
    r = post_form(ngx, form)
    assert r.status == 200 and "已静默" in r.body.decode(), r
    assert len(silences(alertmanager)) == 1
    assert actions(ngx) == {"created": 1, "already": 0, "failed": 1, "refused": 0}
    assert 'action silence failed: alert "KubePodCrashLooping": Alertmanager could not be ' \
        'reached' in ngx.error_log()


class SlowFront:
    """A TCP front for the Alertmanager: what nginx sends reaches it `delay` seconds late."""

    def __init__(self, target_port, delay):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, args=(target_port, delay), daemon=True).start()

    def _serve(self, target_port, delay):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            threading.Thread(target=relay, args=(conn, upstream, delay), daemon=True).start()
            threading.Thread(target=relay, args=(upstream, conn), daemon=True).start()

    def close(self):
        self.sock.close()


def test_a_graceful_quit_finishes_the_post_in_flight(nginx_factory, mock, alertmanager):
    """nginx -s quit while the task asks Alertmanager: the worker waits for it (its timer), the
    person gets the page, and the silence is made."""
    front = SlowFront(alertmanager.port, delay=1.0)
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, front.url))
    token = link_of(ngx, mock)
    form = {"l": token, "t": form_token(ngx, token)}
    replies = []
    posting = threading.Thread(target=lambda: replies.append(post_form(ngx, form)))
    posting.start()
    time.sleep(0.5)  # the task is waiting for Alertmanager's first answer
    ngx.signal(signal.SIGQUIT)
    posting.join(15)
    front.close()
    assert replies and replies[0].status == 200 and "已静默" in replies[0].body.decode(), \
        replies
    assert len(silences(alertmanager)) == 1


# ------------------------------------------------------------------------------------------
# "until resolved": the module asks Alertmanager whether the alert still fires and expires the
# silence once it does not (Alertmanager sends no resolved notification for a silenced alert)


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


LABELS = {"alertname": "KubePodCrashLooping", "severity": "critical", "namespace": "kube-ops"}


def fire(am, pod, ends=None):
    """The alert of `pod` posted to Alertmanager as Prometheus does (ends: resolved then);
    its fingerprint."""
    a = {"labels": {**LABELS, "pod": pod}, "startsAt": iso(START)}
    if ends is not None:
        a["endsAt"] = iso(ends)
    am.post_alerts([a])
    found = [x for x in am.alerts() if x["labels"].get("pod") == pod]
    assert ends is not None or found, am.alerts()
    return found[0]["fingerprint"] if found else None


START = time.time() - 60


def links_of(ngx, mock, pod, fingerprint):
    """The alert's links (2 hours, 1 day, until resolved) in the message the module sends."""
    r = ngx.post("/", notification(alert(pod=pod, fingerprint=fingerprint)))
    assert r.status == 200, r
    return re.findall(re.escape(BASE) + r"\?l=([A-Za-z0-9_.-]+)\)", mock.received[-1].text)


def silence_from(ngx, token):
    r = post_form(ngx, {"l": token, "t": form_token(ngx, token), "name": "ops"})
    assert r.status == 200 and "已静默" in r.body.decode(), r
    return re.search(r"[0-9a-f]{8}-[0-9a-f-]{27}", r.body.decode()).group(0)


def state_of(am, silence_id):
    status, text = http_get(am.url + "/api/v2/silence/" + silence_id)
    assert status == 200, text
    return json.loads(text)["status"]["state"]


def expires(ngx):
    text = ngx.get("/metrics").body.decode()
    return {m[0]: int(m[1]) for m in re.findall(
        r'^dingtalk_actions_total\{action="expire",result="(\w+)"\} (\d+)$', text, re.M)}


def with_checks(mock, keys, am_url, interval="1s"):
    return f"dingtalk_action_check_interval {interval};\n" + with_action(mock, keys, am_url)


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s: {what}"
        time.sleep(0.2)


def test_an_until_resolved_silence_is_expired_when_its_alert_resolves(nginx_factory, mock,
                                                                      alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_checks(mock, keys, alertmanager.url))
    until = silence_from(ngx, links_of(ngx, mock, "api-1", fire(alertmanager, "api-1"))[2])
    two_hours = silence_from(ngx, links_of(ngx, mock, "api-2", fire(alertmanager, "api-2"))[0])
    time.sleep(2.5)  # checks while both alerts fire: nothing expired
    assert state_of(alertmanager, until) == "active"
    assert state_of(alertmanager, two_hours) == "active"
    assert [a["status"]["state"] for a in alertmanager.alerts()] == ["suppressed"] * 2

    resolved = time.time()
    fire(alertmanager, "api-1", ends=resolved)
    fire(alertmanager, "api-2", ends=resolved)
    wait_for(lambda: state_of(alertmanager, until) == "expired", 60, "the silence expired")
    took = time.time() - resolved
    assert took < 60, took
    time.sleep(2.5)  # more checks: the 2-hour silence is not the module's to lift
    assert state_of(alertmanager, two_hours) == "active"
    assert expires(ngx) == {"expired": 1, "gone": 0, "failed": 0, "full": 0}
    assert f"action expire expired: silence {until}, its alert " in ngx.error_log()
    print(f"expired {took:.1f} s after the alert resolved (checks every 1 s)")


def test_the_zone_keeps_them_across_a_reload_and_one_worker_expires_each(nginx_factory, mock,
                                                                         alertmanager):
    """Two workers, a reload between the POST and the alert's end: the new workers find the
    silence in the shared zone, and it is expired once (one worker checks at a time)."""
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_checks(mock, keys, alertmanager.url), workers=2)
    until = silence_from(ngx, links_of(ngx, mock, "api-6", fire(alertmanager, "api-6"))[2])
    ngx.reload()
    fire(alertmanager, "api-6", ends=time.time())
    wait_for(lambda: state_of(alertmanager, until) == "expired", 60, "the silence expired")
    time.sleep(2.5)
    assert expires(ngx) == {"expired": 1, "gone": 0, "failed": 0, "full": 0}
    assert ngx.error_log().count(f"action expire expired: silence {until}") == 1


class SwitchableFront:
    """A TCP front for the Alertmanager that can be 'down': then it closes every connection
    unanswered, as a restarting Alertmanager behind a Service does."""

    def __init__(self, target_port):
        self.down = False
        self.open = []  # the relayed connections: going down closes them (kept-alive ones too)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, args=(target_port,), daemon=True).start()

    def _serve(self, target_port):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.down:
                conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            self.open += [conn, upstream]
            threading.Thread(target=relay, args=(conn, upstream), daemon=True).start()
            threading.Thread(target=relay, args=(upstream, conn), daemon=True).start()

    def go_down(self):
        self.down = True
        for s in self.open:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.open = []

    def close(self):
        self.sock.close()


def test_a_check_that_fails_keeps_the_silence_for_the_next(nginx_factory, mock, alertmanager):
    front = SwitchableFront(alertmanager.port)
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_checks(mock, keys, front.url))
    until = silence_from(ngx, links_of(ngx, mock, "api-3", fire(alertmanager, "api-3"))[2])
    front.go_down()
    fire(alertmanager, "api-3", ends=time.time())
    wait_for(lambda: expires(ngx).get("failed", 0) >= 2, 30, "checks that failed")
    assert state_of(alertmanager, until) == "active"
    front.down = False
    wait_for(lambda: state_of(alertmanager, until) == "expired", 60, "the silence expired")
    counts = expires(ngx)
    assert counts["expired"] == 1 and counts["failed"] >= 2, counts
    log = ngx.error_log()
    assert f"action expire failed: silence {until}: Alertmanager could not be reached" in log
    assert log.count("[warn]") >= 1 and f"action expire expired: silence {until}" in log
    front.close()


STORE_PORT = 26397


@pytest.fixture
def store():
    from test_store import Redis
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (scripts/install-deps.sh test installs it)")
    r = Redis(port=STORE_PORT).start()
    yield r
    r.kill()


def with_store(mock, keys, am_url):
    return f"dingtalk_store redis://127.0.0.1:{STORE_PORT} timeout=300ms;\n" + \
        with_checks(mock, keys, am_url)


def test_another_instance_expires_it_through_the_store(nginx_factory, mock, alertmanager, store):
    """dingtalk_store: the instance that made the silence is gone; another one, whose zone never
    knew it, finds it in the store and expires it once the alert resolves."""
    keys = conf_file("keys", f"k1 {SECRET}\n")
    a = nginx_factory(with_store(mock, keys, alertmanager.url))
    b = nginx_factory(with_store(mock, keys, alertmanager.url))
    until = silence_from(a, links_of(a, mock, "api-4", fire(alertmanager, "api-4"))[2])
    a.stop()
    fire(alertmanager, "api-4", ends=time.time())
    wait_for(lambda: state_of(alertmanager, until) == "expired", 60, "the silence expired")
    assert f"action expire expired: silence {until}" in b.error_log()
    assert expires(b)["expired"] == 1


def test_a_store_that_is_down_keeps_the_zones_copy(nginx_factory, mock, alertmanager, store):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_store(mock, keys, alertmanager.url))
    token = links_of(ngx, mock, "api-5", fire(alertmanager, "api-5"))[2]
    store.kill()
    until = silence_from(ngx, token)
    fire(alertmanager, "api-5", ends=time.time())
    wait_for(lambda: state_of(alertmanager, until) == "expired", 60, "the silence expired")
    log = ngx.error_log()
    assert f'"until resolved" silence {until} is kept here' in log
    assert f"action expire expired: silence {until}" in log
