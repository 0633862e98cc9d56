"""Silencing from the chat (issue #25), as far as it is built: the signed links in the messages
of a location with dingtalk_action_url and dingtalk_action_key_file, checked here with the key
the way the action location will check them. The action location itself comes next."""

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
