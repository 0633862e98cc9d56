"""dingtalk-render --from-go-template against the Go bridge itself: each template of
t/fixtures/go-templates/ (the bridge's own and ones users published) is converted, loaded as
nginx loads it, and the messages our dingtalk-render makes from the Alertmanager fixtures are
compared with those Go's text/template makes from the original (gobridge/render.go: the
bridge's data and functions, on Go's standard library).

The texts are compared after these two normalisations, and no other (docs/go-templates.md,
"What the comparison test allows"):

1. Runs of blank lines are one blank line, and the text has no blank line at its start or end
   (ours collapses blank lines when rendering; markdown shows them the same).
2. Markdown escapes are dropped on both sides: `\\_`, `\\*`, `` \\` `` become `_`, `*`, `` ` ``
   (ours escapes every value and label name, the bridge only what a template passed to
   `markdown`: `pod\\_name` here, `pod_name` there).

The titles are compared without the white space around them (a title is one line: the bridge
sends the line breaks around a `define`'s text, ours drops them).
"""

import json
import os
import re
import shutil
import subprocess

import pytest

from harness import REPO
from test_templates import server, write

TOOL = os.environ.get("DINGTALK_RENDER", os.path.join(REPO, "build", "dingtalk-render"))
HERE = os.path.dirname(__file__)
TEMPLATES = os.path.join(REPO, "t", "fixtures", "go-templates")
PAYLOADS = [os.path.join(REPO, "t", "fixtures", name + ".json")
            for name in ("firing", "resolved", "mixed", "node")]
DEFAULT = os.path.join(TEMPLATES, "bridge-default.tmpl")
NOW = "2026-11-24T02:00:00Z"

# fixture -> the files the bridge loads: its built-in default.tmpl always comes first
FIXTURES = {
    "bridge-default": [DEFAULT],
    "bridge-legacy": [DEFAULT, os.path.join(TEMPLATES, "bridge-legacy.tmpl")],
    "bridge-issue43": [DEFAULT, os.path.join(TEMPLATES, "bridge-issue43.tmpl")],
    "issue8-timonwong": [DEFAULT, os.path.join(TEMPLATES, "issue8-timonwong.tmpl")],
    "issue15-ray8587": [DEFAULT, os.path.join(TEMPLATES, "issue15-ray8587.tmpl")],
    "issue86-frui85": [DEFAULT, os.path.join(TEMPLATES, "issue86-frui85.tmpl")],
}


@pytest.fixture(scope="module")
def go_render(tmp_path_factory):
    """The Go program, built once (GOPATH mode, no module, no network)."""
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain (scripts/install-deps.sh test installs golang-go)")
    out = tmp_path_factory.mktemp("gobridge")
    env = dict(os.environ, GO111MODULE="off", GOFLAGS="", GOCACHE=str(out / "cache"),
               GOPATH=str(out / "gopath"), CGO_ENABLED="0")
    binary = str(out / "render")
    subprocess.run([go, "build", "-o", binary, os.path.join(HERE, "gobridge", "render.go")],
                   check=True, env=env, timeout=120)
    return binary


def convert(files):
    args = [TOOL]
    for f in files:
        args += ["--from-go-template", f]
    return subprocess.run(args, capture_output=True, timeout=30)


def directives(template):
    """The nginx directives the converter wrote in the template's nginx_directives block."""
    block = re.search(r"\{\{<nginx_directives\}\}\n(.*?)\{\{/nginx_directives\}\}", template, re.S)
    found = {}
    for line in (block.group(1) if block else "").splitlines():
        m = re.match(r"(dingtalk_\w+) (.*);(\s+#.*)?$", line)
        if m:
            found[m.group(1)] = m.group(2)
    return found


def ours(template_path, found, payload):
    args = [TOOL, "--template", template_path, "--now", NOW]
    if "dingtalk_title_template" in found:
        title = found["dingtalk_title_template"]
        args += ["--title-template", re.sub(r"\\(.)", r"\1", title[1:-1])]
    zone, layout = "Asia/Shanghai", None
    if "dingtalk_timezone" in found:
        zone, _, layout = found["dingtalk_timezone"].partition(" ")
        args += ["--time-layout", json.loads(layout)]
    out = subprocess.run(args + ["--zone", zone, payload], capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)["markdown"]
    return sent["title"], sent["text"]


def theirs(go_render, files, payload):
    out = subprocess.run([go_render, payload, *files], capture_output=True, timeout=30,
                         env=dict(os.environ, TZ="Asia/Shanghai"))
    assert out.returncode == 0, out.stderr
    sent = json.loads(out.stdout)
    return sent["title"], sent["text"]


def normalised(text):
    text = re.sub(r"\\([_*`])", r"\1", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n").rstrip()  # a last line of spaces is a blank line too


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_converted_template_sends_what_the_go_bridge_sent(go_render, tmp_path, name):
    files = FIXTURES[name]
    converted = convert(files)
    assert converted.returncode == 0, converted.stderr  # every construct converted
    template = tmp_path / (name + ".mustache")
    template.write_bytes(converted.stdout)
    found = directives(converted.stdout.decode())
    for payload in PAYLOADS:
        title, text = ours(str(template), found, payload)
        go_title, go_text = theirs(go_render, files, payload)
        where = f"{name} with {os.path.basename(payload)}"
        assert normalised(text) == normalised(go_text), where
        assert title.strip() == go_title.strip(), where


def test_nginx_loads_it_with_its_directives_and_sends_what_the_go_bridge_sent(nginx_factory,
                                                                              mock, go_render):
    files = FIXTURES["issue8-timonwong"]
    converted = convert(files)
    assert converted.returncode == 0, converted.stderr
    path = write(converted.stdout.decode(), "issue8.mustache")
    block = re.search(r"\{\{<nginx_directives\}\}\n(.*?)\{\{/nginx_directives\}\}",
                      converted.stdout.decode(), re.S).group(1)
    ngx = nginx_factory(server(mock, {"/": f"dingtalk_template {path};\n{block}"}))
    payload = PAYLOADS[2]
    assert ngx.post("/", open(payload, "rb").read()).status == 200
    sent = json.loads(mock.received[0].body)["markdown"]
    go_title, go_text = theirs(go_render, files, payload)
    assert sent["title"] == go_title
    assert normalised(sent["text"]) == normalised(go_text)


def test_format_shows_each_time_as_alertmanager_wrote_it(go_render, tmp_path):
    """Go's `.StartsAt.Format` prints a time in the offset it was written with: on a host in
    Asia/Shanghai, Alertmanager writes +08:00 and the group reads local times. The converter's
    `dingtalk_timezone as_sent` does the same (resolved.json has a Z time and a +08:00 one)."""
    source = tmp_path / "format.tmpl"
    source.write_text('{{ define "ding.link.content" }}{{ range .Alerts.Resolved }}'
                      '- {{ .Labels.instance }} {{ .StartsAt.Format "2006-01-02 15:04:05 -07:00" }}'
                      ' .. {{ .EndsAt.Format "15:04" }}\n{{ end }}{{ end }}\n')
    files = [DEFAULT, str(source)]
    converted = convert(files)
    assert converted.returncode == 0, converted.stderr
    found = directives(converted.stdout.decode())
    assert found["dingtalk_timezone"] == 'as_sent "2006-01-02 15:04:05 -07:00"'
    template = tmp_path / "format.mustache"
    template.write_bytes(converted.stdout)
    _, text = ours(str(template), found, PAYLOADS[1])
    _, go_text = theirs(go_render, files, PAYLOADS[1])
    assert normalised(text) == normalised(go_text)
    assert "2026-11-23 16:04:05 +00:00 .. 16:34" in text
    assert "2026-11-24 00:09:35 +08:00 .. 00:41" in text


def test_a_template_the_go_bridge_refuses_is_named_with_its_line(go_render):
    files = [DEFAULT, os.path.join(TEMPLATES, "issue17-standnorthstar.tmpl")]
    go = subprocess.run([go_render, PAYLOADS[0], *files], capture_output=True, timeout=30)
    assert go.returncode == 1 and b"issue17-standnorthstar.tmpl:21: unexpected {{end}}" in go.stderr
    out = convert(files)
    assert out.returncode == 4, out.stderr
    assert b"issue17-standnorthstar.tmpl line 21: `end` closes nothing" in out.stderr, out.stderr


def test_what_it_cannot_convert_is_named_and_the_rest_loads(tmp_path):
    source = tmp_path / "t.tmpl"
    source.write_text('{{ define "ding.link.content" }}{{ range .Alerts }}\n'
                      '{{ $x := .Labels.a }}{{ .Labels.alertname }}\n{{ end }}{{ end }}\n')
    out = convert([str(source)])
    assert out.returncode == 4
    assert out.stderr.decode() == (f"dingtalk-render: {source} line 2: `$x := .Labels.a`: no "
                                   "variables: name the value where it is used\n")
    template = tmp_path / "t.mustache"
    template.write_bytes(out.stdout)
    rendered = subprocess.run([TOOL, "--text", "--template", str(template), PAYLOADS[0]],
                              capture_output=True, timeout=30)
    assert rendered.returncode == 0 and b"KubePodCrashLooping" in rendered.stdout


def test_files_that_are_no_template():
    missing = convert(["/nonexistent.tmpl"])
    assert missing.returncode == 1 and b"cannot read /nonexistent.tmpl" in missing.stderr
    big = subprocess.run([TOOL, "--from-go-template", "/dev/zero"], capture_output=True,
                         timeout=30)
    assert big.returncode == 1 and b"/dev/zero is over 1 MiB" in big.stderr
