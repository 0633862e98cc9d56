"""dingtalk_template / dingtalk_title_template through the real nginx: the shipped templates,
what a custom template sees, the size limit, and mistakes caught by `nginx -t`."""

import datetime
import json
import os
import signal
import subprocess
import time
import urllib.parse

import pytest

from harness import REPO, TOKEN, Nginx, alert, notification, world_readable_tmpdir, line_of

TEMPLATES = os.path.join(REPO, "templates")
FIXTURES = os.path.join(REPO, "t", "fixtures")
TOOL = os.environ.get("DINGTALK_RENDER", os.path.join(REPO, "build", "dingtalk-render"))
# The Go bridge's title, ported (docs/migrating.md, "From the Go bridge")
GO_TITLE = ("[{{status_upper}}{{#has_firing}}:{{firing_count}}{{/has_firing}}] "
            "{{group_label_values}}{{#has_other_common_labels}} ({{other_common_label_values}})"
            "{{/has_other_common_labels}}")
AM = "http://alertmanager.example:9093"


def write(text, name="t.mustache"):
    path = os.path.join(world_readable_tmpdir("dingtalk-tpl-"), name)
    with open(path, "w") as f:
        f.write(text)
    return path


def server(mock, locations):
    """One server; locations maps a path to extra directives for a webhook location. Each
    location is a robot of its own (the module posts one notification once per robot: here the
    same payload goes to several locations)."""
    body = "".join(f"""
        location = {path} {{
            dingtalk;
            dingtalk_token {TOKEN}{chr(ord("a") + i)};
            {extra}
        }}""" for i, (path, extra) in enumerate(locations.items()))
    return f"""
    dingtalk_token {TOKEN};
    server {{
        listen 127.0.0.1:%PORT%;
        client_max_body_size 16m;
        dingtalk_api_url {mock.url};
        dingtalk_thread_pool dingtalk;
        dingtalk_rate_limit off;
        {body}
    }}
"""


def silence(labels):
    matchers = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    return f"{AM}/#/silences/new?filter=" + urllib.parse.quote("{" + matchers + "}", safe="")


def big_group(n=300):
    return notification(*[alert(pod=f"api-{i}", message="long description " * 40)
                          for i in range(n)], truncated=7)


BODIES = {
    "firing": notification(alert(pod="api-0"), alert(pod="api-1", severity="warning")),
    "resolved": notification(alert(status="resolved", ends="2026-11-23T17:00:00Z"),
                             alert(status="resolved", pod="api-1", ends="2026-11-23T17:30:00Z")),
    "mixed": notification(alert(status="resolved", pod="old-0", ends="2026-11-23T17:00:00Z"),
                          alert(pod="new-0", message="**x** <b>&</b> [l](u)"),
                          alert(pod=None, extra_labels={"instance": "10.0.0.7:9100"})),
    "cut": big_group(),
}


def test_default_template_is_byte_identical_to_the_builtin_message(nginx_factory, mock):
    default = os.path.join(TEMPLATES, "default.mustache")
    ngx = nginx_factory(server(mock, {
        "/builtin": "",
        "/template": f"dingtalk_template {default};",
        "/builtin-at": "dingtalk_at_mobiles 13800000000; dingtalk_at_user_ids ops.lead;",
        "/template-at": f"dingtalk_template {default}; "
                        "dingtalk_at_mobiles 13800000000; dingtalk_at_user_ids ops.lead;",
    }))
    for kind, body in BODIES.items():
        del mock.received[:]
        replies = [ngx.post(p, body) for p in ("/builtin", "/template", "/builtin-at",
                                               "/template-at")]
        assert [r.status for r in replies] == [200] * 4, (kind, replies)
        assert replies[0].json["shown"] == replies[1].json["shown"], kind
        sent = [m.body for m in mock.received]
        assert len(sent) == 4, kind
        assert sent[1] == sent[0], f"{kind}: default.mustache must render the built-in message"
        assert sent[3] == sent[2], f"{kind}: ... mentions included"
        assert sent[0] != sent[2] and "@13800000000 @ops.lead" in mock.received[3].text, kind
        if kind == "cut":
            shown = replies[1].json["shown"]
            assert 0 < shown < 300 and len(sent[1]) < 20000
            assert f"另有 {300 - shown + 7} 条告警未显示" in mock.received[1].text


def test_compact_and_english_templates_deliver(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/compact": f"dingtalk_template {TEMPLATES}/compact.mustache;",
        "/english": f"dingtalk_template {TEMPLATES}/english.mustache;",
    }))
    body = BODIES["mixed"]
    assert ngx.post("/compact", body).status == 200
    assert ngx.post("/english", body).status == 200
    compact, english = mock.received[0], mock.received[1]
    assert compact.title == english.title == "[FIRING:2, RESOLVED:1] KubePodCrashLooping"

    text = compact.text
    assert text.startswith("#### \\[FIRING:2, RESOLVED:1\\] KubePodCrashLooping\n")
    assert ("- 🔥 **KubePodCrashLooping** critical · kube-ops/new-0 · 2026-11-24 00:04:05 +08:00"
            " · [图表](http://prometheus.example/graph?g0.expr=up)") in text
    assert "- ✅ **KubePodCrashLooping** critical · kube-ops/old-0 · 2026-11-24 00:04:05 +08:00 " \
           "→ 2026-11-24 01:00:00 +08:00" in text
    group_silence = silence({"alertname": "KubePodCrashLooping"})
    assert f"[Alertmanager]({AM}/#/alerts) · [静默]({group_silence})" in text
    assert text.count("\n- ") == 3 and "告警级别" not in text

    text = english.text
    assert "#### Firing (2)" in text and "#### Resolved (1)" in text
    assert text.index("#### Firing") < text.index("new-0") < text.index("#### Resolved")
    assert "**Severity**: critical" in text and "**pod**: new-0\n\n**Namespace**: kube-ops" in text
    assert "**Ended**: 2026-11-24 01:00:00 +08:00" in text
    assert "**instance**: 10.0.0.7:9100" in text, "what is wrong, when it is not a pod"
    assert "[Silence](" in text and "告警" not in text

    r = ngx.post("/english", big_group())
    assert r.status == 200 and len(mock.received[2].body) < 20000
    assert f"**{300 - r.json['shown'] + 7} more alerts not shown**" in mock.received[2].text


CUSTOM = """{{! every kind of name a template can use }}
T={{title}}|{{status}}|{{status_upper}}|{{firing_count}}/{{resolved_count}}/{{alert_count}}|{{receiver}}
G={{group_labels.alertname}} C={{{common_labels.alertname}}}
{{#alerts}}
A{{index}}:{{status}}:{{labels.team}}={{{labels.team}}}:{{annotations.runbook}}:{{severity}}:{{#first}}FIRST{{/first}}:{{silence_url}}
{{/alerts}}
{{#firing}}F:{{alertname}}:{{pod}};{{/firing}}
{{#resolved}}R:{{pod}}:{{ends_at}};{{/resolved}}
AM={{alertmanager_url}}
GS={{silence_url}}
{{#has_more}}MORE={{more_count}}/{{omitted}}/{{truncated_alerts}}:{{more}}{{/has_more}}
{{^has_more}}NOTHING MORE{{/has_more}}
CL={{#common_label_list}}{{name}}:{{value}};{{/common_label_list}}
"""


def test_custom_template_sees_labels_annotations_and_links(nginx_factory, mock):
    path = write(CUSTOM)
    ngx = nginx_factory(server(mock, {"/": f"dingtalk_template {path};",
                                      "/at": f"dingtalk_template {path}; "
                                             "dingtalk_at_user_ids ops.lead;"}))
    a1 = alert(pod="api-0", extra_labels={"team": "db_ops*<b>&"})
    a1["annotations"]["runbook"] = "https://runbook.example/crash"
    a2 = alert(status="resolved", severity="warning", pod="api-1", ends="2026-11-23T17:00:00Z",
               extra_labels={"team": "web"})
    r = ngx.post("/", notification(a2, a1, truncated=2))
    assert r.status == 200, r
    text = mock.received[0].text
    assert "{{" not in text and "NOTHING MORE" not in text
    assert "T=\\[FIRING:1, RESOLVED:1\\] KubePodCrashLooping|firing|FIRING|1/1/2|dingtalk\n" in text
    assert "G=KubePodCrashLooping C=KubePodCrashLooping\n" in text
    esc = "db\\_ops\\*&lt;b&gt;&amp;"  # {{x}} and {{{x}}} both escaped for markdown
    assert f"A1:firing:{esc}={esc}:https://runbook.example/crash:critical:FIRST:" \
           f"{silence(a1['labels'])}\n" in text
    assert f"A2:resolved:web=web::warning::{silence(a2['labels'])}\n" in text
    assert "F:KubePodCrashLooping:api-0;\n" in text
    assert "R:api-1:2026-11-24 01:00:00 +08:00;\n" in text
    assert f"AM={AM}/#/alerts\n" in text
    assert f"GS={silence({'alertname': 'KubePodCrashLooping'})}\n" in text
    assert "MORE=2/0/2:**另有 2 条告警未显示**（被 Alertmanager max_alerts 截断），" \
           f"[在 Alertmanager 中查看全部]({AM}/#/alerts)" in text
    assert text.endswith("CL=alertname:KubePodCrashLooping;")

    # without externalURL there are no links, and nothing more to show
    body = notification(alert())
    body["externalURL"] = ""
    assert ngx.post("/", body).status == 200
    text = mock.received[1].text
    assert "AM=\n" in text and "GS=\n" in text and "NOTHING MORE" in text and "MORE=" not in text

    # a template that does not print the mentions gets them appended: DingTalk needs them
    assert ngx.post("/at", notification()).status == 200
    assert mock.received[2].text.endswith("CL=alertname:KubePodCrashLooping;\n\n@ops.lead")
    assert mock.received[2].json["at"]["atUserIds"] == ["ops.lead"]


def test_title_template(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/": 'dingtalk_title_template "{{status_upper}} {{common_labels.alertname}} '
             'x{{alert_count}} ({{title}})";',
        "/empty": 'dingtalk_title_template "{{#has_mentions}}{{mentions}}{{/has_mentions}}";',
        "/at": 'dingtalk_title_template "{{mentions}} {{firing_count}}"; '
               "dingtalk_at_mobiles 13800000000;",
    }))
    def body():  # a notification of its own for each location (one robot posts each once)
        return notification(alert(name="Disk*Full_1"), alert(name="Disk*Full_1", pod="x"),
                            group="Disk*Full_1")

    assert ngx.post("/", body()).status == 200
    # the title is plain text: no markdown escapes; the text keeps its built-in layout
    assert mock.received[0].title == "FIRING Disk*Full_1 x2 ([FIRING:2] Disk*Full_1)"
    assert mock.received[0].text.startswith("### \\[FIRING:2\\] Disk\\*Full\\_1\n")
    assert ngx.post("/empty", body()).status == 200
    assert mock.received[1].title == "[FIRING:2] Disk*Full_1", "an empty title falls back"
    assert ngx.post("/at", body()).status == 200
    assert mock.received[2].title == "@13800000000 2"


BAD = [
    ("unclosed", "### {{title}}\n\n{{#alerts}}\n**{{pod}}**\n", 3, 'Unclosed section "alerts"'),
    ("unknown", "### {{title}}\n{{#alerts}}\n{{lables.team}}\n{{/alerts}}\n", 3,
     'unknown name "lables.team"'),
    ("partial", "### {{title}}\n\n\n{{> footer}}\n", 4,
     'no block "footer" in this template (partials are not supported'),
    # after a delimiter change nothing was checked, and <%> x%> rendered a client's value
    ("delimiters", "ok\n{{=<% %>=}}\n<%> detail%>\n", 2,
     "changing the delimiters is not supported"),
    ("tag", "a\n{{title\n", 2, "Unclosed tag"),
    # the closing tag in the wrong place is named, not the section it left open
    ("misplaced", "### {{title}}\n{{#resolved}}\nok\n{{/firing}}\n", 4,
     "{{/firing}} where {{/resolved}} (line 2) was expected"),
    ("stray", "### {{title}}\n{{#alerts}}{{pod}}{{/alerts}}\n\n{{/alerts}}\n", 4,
     'Unopened section "alerts"'),
]


@pytest.mark.parametrize("name,source,line,why", BAD, ids=[b[0] for b in BAD])
def test_bad_template_fails_nginx_t_with_template_line_and_conf_line(mock, name, source, line,
                                                                     why):
    path = write(source, name + ".mustache")
    ngx = Nginx(server(mock, {"/": f"dingtalk_template {path};"}))
    ok, out = ngx.test_config()
    assert not ok, out
    conf = f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_template')}"
    assert f'dingtalk_template: "{path}" line {line}: {why}' in out, out
    assert f" in {conf}" in out, out


def test_missing_template_file_and_bad_title_template_fail_nginx_t(mock):
    ngx = Nginx(server(mock, {"/": "dingtalk_template /nonexistent/t.mustache;"}))
    ok, out = ngx.test_config()
    assert not ok and 'dingtalk_template: cannot open "/nonexistent/t.mustache"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_template')}" in out, out

    # the title sees the names the text sees, and is checked the same way
    ngx = Nginx(server(mock, {"/": 'dingtalk_title_template "{{#alerts}}{{pood}}{{/alerts}}";'}))
    ok, out = ngx.test_config()
    assert not ok and 'dingtalk_title_template: line 1: unknown name "pood"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_title_template')}" in out, out

    ngx = Nginx(server(mock, {"/": f"dingtalk_template {write('x')}; "
                                   f"dingtalk_template {write('y')};"}))
    ok, out = ngx.test_config()
    assert not ok and '"dingtalk_template" directive is duplicate' in out, out


def test_huge_template_is_cut_to_fit(nginx_factory, mock):
    fixed = write("# " + "固定文本 " * 3000 + "\n{{#alerts}}{{pod}}\n{{/alerts}}")
    per_alert = write("{{#alerts}}\n" + "y" * 400 + " {{pod}}\n{{/alerts}}"
                      "{{#has_more}}MORE {{omitted}}{{/has_more}}\n")
    ngx = nginx_factory(server(mock, {"/fixed": f"dingtalk_template {fixed};",
                                      "/per-alert": f"dingtalk_template {per_alert};"}))
    r = ngx.post("/fixed", notification())
    assert r.status == 200, r
    msg = mock.received[0]
    assert len(msg.body) < 20000 and len(msg.body) > 19000
    assert msg.text.endswith("…") and msg.text.startswith("# 固定文本")

    r = ngx.post("/per-alert", notification(*[alert(pod=f"p{i}") for i in range(300)]))
    assert r.status == 200, r
    msg, shown = mock.received[1], r.json["shown"]
    assert 0 < shown < 300 and msg.text.count("y" * 400) == shown
    assert 19500 - 2 * 420 < len(msg.body) <= 19500, "as many alerts as fit, not fewer"
    assert msg.text.endswith(f"MORE {300 - shown}")


def test_template_file_is_read_at_configuration_time(nginx_factory, mock):
    path = write("V1 {{status}}\n")
    ngx = nginx_factory(server(mock, {"/": f"dingtalk_template {path};"}))
    assert ngx.post("/", notification()).status == 200
    with open(path, "w") as f:
        f.write("V2 {{status}}\n")
    assert ngx.post("/", notification()).status == 200
    ngx.reload()
    assert ngx.post("/", notification()).status == 200
    assert [m.text for m in mock.received] == ["V1 firing", "V1 firing", "V2 firing"]

    # a broken file on reload: nginx keeps the running configuration
    with open(path, "w") as f:
        f.write("{{#alerts}}\n")
    ngx.allowed.append("Unclosed section")
    ngx.signal(signal.SIGHUP)
    deadline = time.time() + 10
    while "Unclosed section" not in ngx.error_log() and time.time() < deadline:
        time.sleep(0.05)
    assert "Unclosed section" in ngx.error_log()
    assert ngx.post("/", notification()).status == 200
    assert mock.received[3].text == "V2 firing"


def fired_a_while_ago(name):
    """A fixture whose firing alerts started 2 h 3.5 min ago: the durations the module renders
    when it sends (in words, to the minute) are the ones the tool renders for the receipt time."""
    payload = json.load(open(os.path.join(FIXTURES, name + ".json")))
    start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=7410)
    for a in payload["alerts"]:
        if a["status"] == "firing":
            a["startsAt"] = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(payload).encode()


GALLERY = {  # location: (directives, dingtalk-render options)
    "/built-in": ("", []),
    "/go-bridge": (f'dingtalk_template {TEMPLATES}/go-bridge.mustache; '
                   f"dingtalk_title_template '{GO_TITLE}';",
                   ["--template", f"{TEMPLATES}/go-bridge.mustache", "--title-template", GO_TITLE]),
    "/compact": (f"dingtalk_template {TEMPLATES}/compact.mustache;",
                 ["--template", f"{TEMPLATES}/compact.mustache"]),
    "/oncall": (f"dingtalk_template {TEMPLATES}/oncall.mustache; "
                "dingtalk_severity_style critical 🚨 '#FF0000'; "
                "dingtalk_severity_style warning ⚠️;",
                ["--template", f"{TEMPLATES}/oncall.mustache",
                 "--severity-style", "critical 🚨 #FF0000", "--severity-style", "warning ⚠️"]),
}


def test_the_gallery_sends_what_dingtalk_render_prints(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {path: d for path, (d, _) in GALLERY.items()}))
    for name in ("firing", "resolved", "mixed"):
        payload = fired_a_while_ago(name)
        for path, (_, options) in GALLERY.items():
            del mock.received[:]
            assert ngx.post(path, payload).status == 200, (name, path)
            sent = mock.received[0]
            now = datetime.datetime.fromtimestamp(sent.at, datetime.timezone.utc)
            out = subprocess.run([TOOL, *options, "--now", now.strftime("%Y-%m-%dT%H:%M:%SZ")],
                                 input=payload, capture_output=True, timeout=30)
            assert out.returncode == 0, out.stderr
            assert out.stdout.rstrip(b"\n") == sent.body, (name, path)
            if path == "/oncall" and name == "mixed":
                # the configured styles and a duration, as DingTalk shows them
                assert '🚨 **TargetDown** · <font color="#FF0000">critical</font>' in sent.text
                assert "⚠️ **KubePodCrashLooping**" in sent.text
                assert "已持续 2小时3分钟" in sent.text, sent.text


def test_the_title_sees_the_top_level_names_and_counts_are_false_at_zero(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {"/": (
        "dingtalk_title_template '{{#firing_count}}🔥{{/firing_count}}{{status_upper}}"
        "{{#has_firing}} firing{{/has_firing}}{{^has_more}} all{{/has_more}} {{external_url}} "
        "{{emoji}}';")}))
    resolved = notification(alert(status="resolved", ends="2026-11-23T17:00:00Z"))
    assert ngx.post("/", resolved).status == 200
    # the issue: {{#firing_count}} was true at 0, which gave "🔥RESOLVED"
    assert mock.received[0].title == "RESOLVED all http://alertmanager.example:9093 ✅"
    assert ngx.post("/", notification(alert())).status == 200
    assert mock.received[1].title == "🔥FIRING firing all http://alertmanager.example:9093 🔴"


BAD_STYLES = [
    ("dingtalk_severity_style critical 🔴 'dark red';", "a colour is #RGB, #RRGGBB or a name"),
    ("dingtalk_severity_style critical **;", "an emoji is up to 32 bytes of UTF-8"),
    ("dingtalk_severity_style critical;", 'invalid number of arguments in "dingtalk_severity_style"'),
]


@pytest.mark.parametrize("directive,why", BAD_STYLES, ids=["colour", "emoji", "arguments"])
def test_a_bad_severity_style_fails_nginx_t_naming_its_line(mock, directive, why):
    ngx = Nginx(server(mock, {"/": directive}))
    ok, out = ngx.test_config()
    assert not ok and why in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_severity_style')}" in out, out


@pytest.mark.parametrize("directive", [
    "dingtalk_severity_style critical 🔴 #FF0000;",
    "dingtalk_title_template #{{title}};",
    "dingtalk_keyword #告警;",
])
def test_an_unquoted_hash_says_the_arguments_ran_on(mock, directive):
    # nginx reads "#..." as a comment, ";" included: the next line's words become arguments
    ngx = Nginx(server(mock, {"/": directive + "\n            dingtalk_timeout 5s;"}))
    ok, out = ngx.test_config()
    name = directive.split()[0]
    assert not ok, out
    assert f'"{name}" takes' in out and "unquoted # starts a comment" in out, out
    assert '"#FF0000"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_timeout 5s')}" in out, out
    quoted = directive.replace(" #", " '#", 1).replace(";", "';")
    assert Nginx(server(mock, {"/": quoted})).test_config()[0], quoted
