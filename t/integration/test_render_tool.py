"""dingtalk-render prints exactly what the module sends, and --send delivers it."""

import json
import os
import subprocess

from harness import REPO, SECRET, TOKEN, MockDingTalk, free_port, webhook

TOOL = os.environ.get("DINGTALK_RENDER", os.path.join(REPO, "build", "dingtalk-render"))
FIXTURES = os.path.join(REPO, "t", "fixtures")


def run(*args, stdin=None):
    return subprocess.run([TOOL, *args], input=stdin, capture_output=True, timeout=30)


def test_prints_exactly_what_the_module_sends(nginx_factory, mock):
    template = os.path.join(REPO, "templates", "english.mustache")
    ngx = nginx_factory(webhook(mock, f"dingtalk_template {template}; "
                                      "dingtalk_at_mobiles 13800000000;"))
    for name in ("firing", "resolved", "mixed"):
        payload = open(os.path.join(FIXTURES, name + ".json"), "rb").read()
        assert ngx.post("/", payload).status == 200
        out = run("--template", template, "--at-mobiles", "13800000000", stdin=payload)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip(b"\n") == mock.received[-1].body, name


def test_text_zone_and_errors():
    payload = os.path.join(FIXTURES, "firing.json")
    out = run("--text", "--zone", "UTC", payload)
    assert out.returncode == 0 and b"2026-11-23 16:04:05 +00:00" in out.stdout
    assert not out.stdout.startswith(b"{")
    bad = run(stdin=b'{"alerts": 3}')
    assert bad.returncode == 1 and b"alerts must be an array" in bad.stderr
    assert run("--zone", "Mars/Base", payload).returncode == 2
    assert run("--frobnicate").returncode == 2
    broken = run("--title-template", "{{#oops}}", payload)
    assert broken.returncode == 1 and b"line 1" in broken.stderr


def test_send_signs_and_never_prints_the_token(mock):
    url = f"{mock.url}?access_token={TOKEN}"
    out = run("--send", url, "--secret", SECRET, os.path.join(FIXTURES, "firing.json"))
    assert out.returncode == 0, out.stderr
    assert mock.received[0].sig_ok is True
    assert json.loads(mock.received[0].body)["msgtype"] == "markdown"
    mock.answer({"body": {"errcode": 310000, "errmsg": f"keywords not in content {TOKEN}"}})
    out = run("--send", url, os.path.join(FIXTURES, "firing.json"))
    assert out.returncode == 3 and b"310000" in out.stderr
    assert TOKEN.encode() not in out.stderr + out.stdout


def test_strict_makes_a_name_no_alert_has_an_error(tmp_path):
    template = tmp_path / "t.mustache"
    template.write_text("{{#alerts}}{{labels.instnace}} {{labels.instance}}\n{{/alerts}}")
    payload = os.path.join(FIXTURES, "firing.json")
    # the issue: {{labels.instnace}} rendered empty without a word
    out = run("--template", str(template), payload)
    assert out.returncode == 0 and b"{{labels.instnace}} is set in no alert" in out.stderr
    assert b"instance" not in out.stderr, "a name some alert has is fine"
    out = run("--strict", "--template", str(template), payload)
    assert out.returncode == 1 and b"{{labels.instnace}} is set in no alert" in out.stderr
    assert out.stdout == b""
    template.write_text("{{#alerts}}{{labels.instance}}\n{{/alerts}}")
    assert run("--strict", "--template", str(template), payload).returncode == 0


def test_keyword_and_severity_rules_as_the_module_sends_them(nginx_factory, mock):
    template = os.path.join(REPO, "templates", "english.mustache")
    ngx = nginx_factory(webhook(mock, f"dingtalk_template {template}; dingtalk_keyword prometheus; "
                                      "dingtalk_at_mobiles 13800000000 severity=Warning; "
                                      "dingtalk_at_all on severity=critical;"))
    for name in ("firing", "resolved", "mixed"):
        payload = open(os.path.join(FIXTURES, name + ".json"), "rb").read()
        assert ngx.post("/", payload).status == 200
        out = run("--template", template, "--keyword", "prometheus",
                  "--at-mobiles", "13800000000 severity=Warning",
                  "--at-all", "on severity=critical", stdin=payload)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip(b"\n") == mock.received[-1].body, name
    mixed = json.loads(mock.received[-1].body)
    assert mixed["at"] == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": True}
    assert "prometheus" in mixed["markdown"]["text"]
    assert json.loads(mock.received[1].body).get("at") is None, "resolved: nobody"
    bad = run("--at-all", "on severity=critcal", os.path.join(FIXTURES, "firing.json"))
    assert bad.returncode == 2 and b"looks like a typo" in bad.stderr


def test_hidden_labels_and_silence_links_as_the_module_sends_them(nginx_factory, mock):
    locations = {"/": "", "/hide": "dingtalk_hide_labels job container; dingtalk_silence_link off;",
                 "/all": "dingtalk_hide_labels off;"}
    # a robot per location: the same payload goes to each (one robot posts it once)
    ngx = nginx_factory("server { listen 127.0.0.1:%PORT%; " + "".join(
        f"location = {path} {{ dingtalk; dingtalk_token {TOKEN}{chr(ord('a') + i)}; "
        f"dingtalk_api_url {mock.url}; {extra} }}"
        for i, (path, extra) in enumerate(locations.items())) + " }")
    payload = open(os.path.join(FIXTURES, "node.json"), "rb").read()
    for path, args in (("/", []), ("/hide", ["--hide-labels", "job container",
                                              "--silence-link", "off"]),
                       ("/all", ["--hide-labels", "off"])):
        assert ngx.post(path, payload).status == 200
        out = run(*args, stdin=payload)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip(b"\n") == mock.received[-1].body, path
    default, hidden, everything = (json.loads(m.body)["markdown"]["text"] for m in mock.received)
    assert "**故障节点**: worker-3" in default and "**故障实例**: 10.0.3.15:9100" in default
    for noise in ("uid=", "prometheus=", "service=", "endpoint="):
        # in no line, and no matcher of the silence links
        assert noise not in default.replace("%3D", "="), noise
        assert noise in everything, noise
    assert "[静默](http://alertmanager.example:9093/#/silences/new?filter=" in default
    assert "静默" not in hidden and "job=" not in hidden and "container=" not in hidden


def test_send_through_a_proxy_and_never_print_its_password(mock, proxies):
    password = "Pr0xy-Passw0rd-Never-Logged"
    proxy = proxies(mock.port, auth=("ops", password))
    url, payload = f"{mock.url}?access_token={TOKEN}", os.path.join(FIXTURES, "firing.json")
    out = run("--send", url, "--proxy", proxy.url(f"ops:{password}@"), payload)
    assert out.returncode == 0, out.stderr
    assert len(mock.received) == 1
    assert f"POST http://127.0.0.1:{mock.port}/robot/send?access_token=" in proxy.log()

    dead = free_port()
    out = run("--send", url, "--proxy", f"http://ops:{password}@127.0.0.1:{dead}", payload)
    assert out.returncode == 3, out.stderr
    assert f"cannot reach the proxy http://***@127.0.0.1:{dead}".encode() in out.stderr
    bad = run("--send", url, "--proxy", f"ftp://ops:{password}@127.0.0.1:{dead}", payload)
    assert bad.returncode == 2 and b"--proxy must be an http://" in bad.stderr, bad.stderr
    for o in (out, bad):
        assert password.encode() not in o.stderr + o.stdout
    assert len(mock.received) == 1


def test_mentions_from_the_alerts_as_the_module_sends_them(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_at_mobiles_from oncall_mobiles; "
                                      "dingtalk_at_user_ids_from oncall;"))
    payload = json.loads(open(os.path.join(FIXTURES, "mixed.json"), "rb").read())
    firing, resolved = payload["alerts"][1], payload["alerts"][0]
    firing["labels"]["oncall"] = "zhang.san"
    firing["annotations"]["oncall_mobiles"] = "+86-13700000000 13900000000"
    resolved["labels"]["oncall"] = "resolved.nobody"
    body = json.dumps(payload).encode()
    assert ngx.post("/", body).status == 200
    out = run("--at-mobiles-from", "oncall_mobiles", "--at-user-ids-from", "oncall", stdin=body)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip(b"\n") == mock.received[-1].body
    assert json.loads(out.stdout)["at"] == {"atMobiles": ["+86-13700000000", "13900000000"],
                                            "atUserIds": ["zhang.san"], "isAtAll": False}


def test_severity_style_takes_the_colour_quoted_as_in_nginx_conf(nginx_factory, mock, tmp_path):
    template = tmp_path / "style.mustache"
    template.write_text("{{#alerts}}{{emoji}} {{color}} {{labels.severity}}\n{{/alerts}}")
    # nginx strips the quotes of "#FF0000" in the directive; the tool takes the same words
    ngx = nginx_factory(webhook(mock, f"dingtalk_template {template}; "
                                      'dingtalk_severity_style critical 🔴 "#FF0000"; '
                                      "dingtalk_severity_style warning '🟡' 'gold';"))
    payload = open(os.path.join(FIXTURES, "mixed.json"), "rb").read()
    assert ngx.post("/", payload).status == 200
    assert "🔴 #FF0000 critical" in mock.received[0].text, mock.received[0].text
    for critical, warning in (('critical 🔴 "#FF0000"', "warning '🟡' 'gold'"),
                              ("critical 🔴 '#FF0000'", 'warning "🟡" "gold"'),
                              ("critical 🔴 #FF0000", "warning 🟡 gold")):
        out = run("--template", str(template), "--severity-style", critical,
                  "--severity-style", warning, stdin=payload)
        assert out.returncode == 0, (critical, out.stderr)
        assert out.stdout.rstrip(b"\n") == mock.received[0].body, critical
    for bad in ('critical 🔴 "#FF0000', "critical", "critical 🔴 #FF0000 extra"):
        out = run("--severity-style", bad, stdin=payload)
        assert out.returncode == 2 and out.stderr.startswith(b"dingtalk-render: --severity-style"), \
            (bad, out.stderr)


def test_a_usage_error_prints_one_line_of_usage_and_help_prints_all():
    payload = os.path.join(FIXTURES, "firing.json")
    for args in (["--frobnicate"], ["--zone"], [payload, payload], ["-x", payload]):
        out = run(*args)
        assert out.returncode == 2 and out.stdout == b"", args
        lines = out.stderr.decode().splitlines()
        assert len(lines) == 2 and lines[0].startswith("dingtalk-render: "), out.stderr
        assert lines[1].startswith("usage: dingtalk-render [options] [PAYLOAD.json]"), lines
        assert "--help" in lines[1]
    for args in (["--help"], ["-h"], ["--text", "--help"]):
        full = run(*args)
        assert full.returncode == 0 and full.stderr == b"", args
        assert b"--severity-style" in full.stdout and b"Exit status:" in full.stdout, args


def test_each_warning_once_per_name_and_text_ends_with_a_newline(tmp_path):
    template = tmp_path / "t.mustache"
    template.write_text("{{#alerts}}{{labels.instnace}} {{labels.instnace}}\n{{/alerts}}"
                        "{{#alerts.firing}}{{labels.instnace}}{{/alerts.firing}}")
    payload = os.path.join(FIXTURES, "mixed.json")
    assert len(json.load(open(payload))["alerts"]) > 1
    # named in the text (several times, in several sections) and in the title: one warning
    out = run("--text", "--template", str(template), "--title-template", "{{labels.instnace}}",
              payload)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(b"{{labels.instnace}} is set in no alert") == 1, out.stderr
    assert out.stdout.endswith(b"\n") and not out.stdout.endswith(b"\n\n"), out.stdout[-40:]
    # the built-in text, and several messages, too
    for args in (["--text", payload], ["--text", "--max-messages", "3", payload]):
        out = run(*args)
        assert out.returncode == 0 and out.stdout.endswith(b"\n"), (args, out.stdout[-40:])


def test_fold_prints_the_message_the_module_folds(nginx_factory, mock, tmp_path):
    # three notifications wait for the robot's next slot: the module sends one message of them,
    # and --fold prints that message (firing first, then in order of arrival)
    from harness import alert, notification
    import threading
    import time
    ngx = nginx_factory(webhook(mock, "dingtalk_rate_limit 1/4s hold=8s; "
                                      "dingtalk_at_mobiles 13800000000;"))
    assert ngx.post("/", notification(alert(name="First", pod="p0"), group="First")).status == 200
    payloads = [notification(alert(name="Gone", pod="p1", status="resolved",
                                   ends="2026-11-23T17:00:00Z"), group="Gone"),
                notification(alert(name="Disk", pod="p2"), group="Disk"),
                notification(alert(name="Node", pod="p3"), group="Node")]
    replies = []
    threads = []
    for p in payloads:
        threads.append(threading.Thread(target=lambda p=p: replies.append(ngx.post("/", p))))
        threads[-1].start()
        time.sleep(0.3)  # an order of arrival
    for t in threads:
        t.join()
    assert [r.status for r in replies] == [200] * 3, replies
    assert len(mock.received) == 2, "one message for the three"
    paths = []
    for i, p in enumerate(payloads):
        paths.append(str(tmp_path / f"{i}.json"))
        open(paths[-1], "w").write(json.dumps(p))
    out = run("--fold", "--at-mobiles", "13800000000", *paths)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip(b"\n") == mock.received[1].body
    title = json.loads(out.stdout)["markdown"]["title"]
    assert title.startswith("3 条通知: [FIRING:1] Disk; [FIRING:1] Node; [RESOLVED:1] Gone"), title
    assert run(paths[0], paths[1]).returncode == 2, "several payloads need --fold"
