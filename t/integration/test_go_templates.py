"""Issue #24 through the real nginx: what Go bridge templates do (any value as a condition,
counts compared with a number, Go time layouts, blocks, functions with arguments) sends what
dingtalk-render prints, and every mistake in them fails `nginx -t` with its lines."""

import datetime
import json
import os
import subprocess

import pytest

from harness import REPO, Nginx, line_of
from test_templates import FIXTURES, TOOL, fired_a_while_ago, server, write

FEATURES = os.path.join(FIXTURES, "go-features.mustache")
LAYOUT = "2006-01-02 15:04:05 MST"


def test_every_new_name_sends_what_dingtalk_render_prints(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/": f'dingtalk_template {FEATURES}; dingtalk_timezone Asia/Shanghai "{LAYOUT}";'}))
    for name in ("firing", "resolved", "mixed"):
        payload = fired_a_while_ago(name)
        del mock.received[:]
        assert ngx.post("/", payload).status == 200, name
        sent = mock.received[0]
        now = datetime.datetime.fromtimestamp(sent.at, datetime.timezone.utc)
        out = subprocess.run([TOOL, "--template", FEATURES, "--time-layout", LAYOUT,
                              "--now", now.strftime("%Y-%m-%dT%H:%M:%SZ")],
                             input=payload, capture_output=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.rstrip(b"\n") == sent.body, name
        if name == "mixed":
            text = sent.text
            assert "命名空间 kube-ops · " in text, text            # group_label_is
            assert "🚨 **TargetDown**" in text, text               # label_is, title_case
            assert "- 实例: 10.0.3.15\n" in text, text             # regex_replace, default
            assert "结束: Nov 24 00:05" in text, text              # ends_at "LAYOUT"
            assert "- 开始: 2026-11-23 23:40:00 CST" in text, text  # starts_at "LAYOUT"
            assert "#### ✅ 已恢复 (2)" in text, text               # resolved_count_gt.0


def test_the_zones_layout_shows_the_built_in_messages_times(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {"/": 'dingtalk_timezone UTC "Jan _2 15:04 MST";'}))
    payload = open(os.path.join(FIXTURES, "resolved.json"), "rb").read()
    assert ngx.post("/", payload).status == 200
    assert "**触发时间**: Nov 23 16:04 UTC" in mock.received[0].text, mock.received[0].text
    assert "**结束时间**: Nov 23 16:34 UTC" in mock.received[0].text


BAD_LAYOUTS = [("YYYY-MM-DD HH:mm", 'is not a Go time layout (it has "YYYY")'),
               ("%Y-%m-%d", 'it has "%"'),
               ("today", "has no element of Go's reference time")]


@pytest.mark.parametrize("layout,why", BAD_LAYOUTS, ids=["java", "strftime", "none"])
def test_a_bad_time_layout_fails_nginx_t(mock, layout, why):
    ngx = Nginx(server(mock, {"/": f'dingtalk_timezone Asia/Shanghai "{layout}";'}))
    ok, out = ngx.test_config()
    assert not ok, out
    assert "dingtalk_timezone: " in out and why in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_timezone')}" in out, out


BAD = [  # name, template, its line, what nginx -t says
    ("value-as-text", "ok\n{{#alerts}}\n{{label_is.env.prod}}\n{{/alerts}}\n", 3,
     "label_is is a condition"),
    ("no-value", "{{#alerts}}{{#label_is.env}}x{{/label_is.env}}{{/alerts}}\n", 1,
     "write label_is.NAME.VALUE"),
    ("bad-percent", "\n{{#common_label_is.x.50%}}{{/common_label_is.x.50%}}\n", 2, "%25"),
    ("count", "\n\n{{#firing_count_gt.lots}}x{{/firing_count_gt.lots}}\n", 3, "a number"),
    ("layout", "{{#alerts}}\n\n{{starts_at \"yyyy-MM-dd\"}}\n{{/alerts}}\n", 3,
     "is not a Go time layout"),
    ("regex", "x\n{{#regex_replace \"(a\" \"\"}}{{title}}{{/regex_replace}}\n", 2,
     "regex_replace: missing )"),
    ("group", "{{#regex_replace \"a\" \"$1\"}}{{title}}{{/regex_replace}}\n", 1,
     '"$1" names no group'),
    ("trunc", "\n{{^trunc 3}}{{/trunc}}\n", 2, "trunc is a function"),
    ("block", "### {{title}}\n\n{{>footer}}\n", 3, 'no block "footer" in this template'),
    ("block-line", "{{<a}}\n\n{{nosuch}}\n{{/a}}\n{{>a}}\n", 3, 'unknown name "nosuch"'),
    ("block-loop", "{{<a}}{{>a}}{{/a}}\n{{>a}}\n", None, "uses blocks over 8 deep"),
    # Go template syntax, with what to write instead
    ("go-field", "### {{title}}\n{{#alerts}}\n{{ .Labels.alertname }}\n{{/alerts}}\n", 3,
     'Go template syntax ".Labels.alertname": write {{labels.alertname}}'),
    ("go-if", "\n{{ if eq .Status \"firing\" }}\n", 2,
     "write {{#firing}}...{{/firing}} in an alert, {{#has_firing}}...{{/has_firing}}"),
    ("go-range", "{{ range .Alerts }}\n", 1, "write {{#alerts}}...{{/alerts}}"),
    ("go-label-eq", "\n\n{{ if eq .Labels.severity \"critical\" }}x{{ end }}\n", 3,
     "write {{#label_is.severity.critical}}"),
]


@pytest.mark.parametrize("name,source,line,why", BAD, ids=[b[0] for b in BAD])
def test_a_mistake_fails_nginx_t_with_its_line(mock, name, source, line, why):
    path = write(source, name + ".mustache")
    ngx = Nginx(server(mock, {"/": f"dingtalk_template {path};"}))
    ok, out = ngx.test_config()
    assert not ok, out
    where = f" line {line}: " if line else " "
    assert f'dingtalk_template: "{path}"{where}' in out and why in out, out
    assert f" in {ngx.conf_path}:{line_of(ngx, 'dingtalk_template')}" in out, out
