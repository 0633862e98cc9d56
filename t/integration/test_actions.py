"""Silencing from the chat (issue #25), as far as it is built: the signed links in the messages
of a location with dingtalk_action_url and dingtalk_action_key_file, checked here with the key;
the action location's GET (the confirmation page, or why a link is refused). Its POST, which
makes the silence, comes next."""

import base64
import hashlib
import hmac
import os
import re
import time

from harness import alert, notification, webhook, world_readable_tmpdir

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


def with_action(mock, keys):
    return webhook(mock, f"""dingtalk_action_url {BASE};
            dingtalk_action_key_file {keys};""") .replace(
        "location = /static {", f"""location = /dingtalk/action {{
            dingtalk_action;
            dingtalk_action_key_file {keys};
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
    assert "Silence for 2 hours</button>" in page


def test_links_written_here_are_the_modules(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys))
    token = encode({"alertname": "Disk", "instance": "db-1"}, expires=int(time.time()) + 60,
                   until=True, seconds=86400)
    r = ngx.get(f"/dingtalk/action?l={token}")
    assert r.status == 200, r
    assert "until resolved (at most 1 day)" in r.body.decode()
    assert decode(token)["matchers"] == {"alertname": "Disk", "instance": "db-1"}


def test_refused_links_say_why(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys))
    token = link_of(ngx, mock)
    kid, payload, tag = token.split(".")
    altered = f"{kid}.{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{tag}"
    cases = [(altered, 403, "altered"), ("k9." + payload + "." + tag, 403, "no longer accepted"),
             ("nonsense", 403, "not a complete action link"), (None, 400, "not a complete"),
             (encode({"alertname": "A"}, expires=int(time.time()) - 1), 403, "expired")]
    for link, status, why in cases:
        r = ngx.get("/dingtalk/action" + (f"?l={link}" if link else ""))
        assert r.status == status and why in r.body.decode(), (link, r)
        assert r.headers["content-security-policy"].startswith("default-src 'none';")
    r = ngx.post("/dingtalk/action", f"l={token}",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 405, "the POST is not built yet"
