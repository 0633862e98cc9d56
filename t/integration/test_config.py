"""Configuration errors fail `nginx -t` with the directive and file:line; defaults work."""

import re

import pytest

from harness import MockDingTalk, Nginx, TOKEN, notification, line_of


def location(body, before=""):
    # the location body starts on line LOC_LINE of the http block, see line_of()
    return f"""
    {before}
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
{body}
        }}
    }}
"""


BAD = [
    ("dingtalk_api_url ftp://oapi.dingtalk.com/robot/send;", "dingtalk_api_url",
     "http:// or https://"),
    ("dingtalk_api_url https:///robot/send;", "dingtalk_api_url", "no host"),
    ("dingtalk_api_url https://x/send?access_token=abc;", "dingtalk_api_url", "dingtalk_token"),
    ("dingtalk_timezone Mars/Olympus_Mons;", "dingtalk_timezone", "unknown time zone"),
    ("dingtalk_token https://oapi.dingtalk.com/robot/send?access_token=abc;", "dingtalk_token",
     "not the whole URL"),
    ("dingtalk_token abc-def;", "dingtalk_token", "letters and digits"),
    ("dingtalk_secret notasecret;", "dingtalk_secret", "SEC"),
    # a secret cut short when it was copied: DingTalk's have 64 hex digits
    ("dingtalk_secret SEC" + "0123456789abcdef" * 3 + ";", "dingtalk_secret", "64 hex digits"),
    ("dingtalk_hide_labels pod-name;", "dingtalk_hide_labels", "not a label name"),
    ("dingtalk_hide_labels uid uid;", "dingtalk_hide_labels", "named twice"),
    ("dingtalk_hide_labels off uid;", "dingtalk_hide_labels", "off stands alone"),
    ("dingtalk_silence_link maybe;", "dingtalk_silence_link", "invalid value"),
    ("dingtalk_timeout soon;", "dingtalk_timeout", "invalid value"),
    ("dingtalk_ssl_verify maybe;", "dingtalk_ssl_verify", "invalid value"),
    ("dingtalk_ssl_trusted_certificate /nonexistent/ca.pem;", "dingtalk_ssl_trusted_certificate",
     "cannot open"),
    ("dingtalk_ssl_trusted_certificate /etc/hostname;", "dingtalk_ssl_trusted_certificate",
     "no PEM certificate"),
    ("dingtalk_token a b;", "dingtalk_token", "invalid number of arguments"),
    ("dingtalk_rate_limit 0/60s;", "dingtalk_rate_limit", "COUNT/PERIOD"),
    ("dingtalk_rate_limit 20;", "dingtalk_rate_limit", "COUNT/PERIOD"),
    ("dingtalk_rate_limit 65/60s;", "dingtalk_rate_limit", "from 1 to 64"),
    ("dingtalk_rate_limit 20/soon;", "dingtalk_rate_limit", "invalid period"),
    ("dingtalk_rate_limit 20/60s burst=5;", "dingtalk_rate_limit", "invalid parameter"),
    ("dingtalk_rate_limit 20/60s hold=later;", "dingtalk_rate_limit", "invalid parameter"),
    ("dingtalk_frobnicate on;", "dingtalk_frobnicate", "unknown directive"),
    ("dingtalk_max_alerts 0;", "dingtalk_max_alerts", "must be from 1 to 10000"),
    ("dingtalk_max_alerts many;", "dingtalk_max_alerts", "invalid number"),
    ("dingtalk_max_body_size lots;", "dingtalk_max_body_size", "invalid value"),
    ("dingtalk_token_file /dev/zero;", "dingtalk_token_file", "larger than 4096 bytes"),
    # silencing from the chat (issue #25)
    ("dingtalk_action_url ftp://hook.example.com/a;", "dingtalk_action_url", "http:// or https://"),
    ("dingtalk_action_url https://hook.example.com/a(b);", "dingtalk_action_url", "markdown link"),
    ("dingtalk_action_key_file /etc/hostname;", "dingtalk_action_key_file", "line 1:"),
    ("dingtalk_action_key_file /nonexistent/keys;", "dingtalk_action_key_file", "cannot open"),
    ("dingtalk_action_durations 10s;", "dingtalk_action_durations", "from 1m to 365d"),
    ("dingtalk_action_durations 2h resolved=1d 3h;", "dingtalk_action_durations", "last"),
    ("dingtalk_alertmanager_url http://admin:pw@am:9093;", "dingtalk_alertmanager_url",
     "must not hold credentials"),
    ("dingtalk_alertmanager_basic_file /etc/hostname;", "dingtalk_alertmanager_basic_file",
     "expected user:password"),
]


@pytest.mark.parametrize("directive,name,why", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_directive_fails_nginx_t_with_file_and_line(directive, name, why):
    token = "" if directive.startswith("dingtalk_token") else f"dingtalk_token {TOKEN};"
    ngx = Nginx(location(f"""            dingtalk;
            {token}
            {directive}"""))
    ok, out = ngx.test_config()
    assert not ok, out
    assert name in out and why in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, directive)}" in out, out
    assert TOKEN not in out


def test_dingtalk_is_only_allowed_in_a_location():
    ngx = Nginx("dingtalk;\n" + location(f"dingtalk; dingtalk_token {TOKEN};"))
    ok, out = ngx.test_config()
    assert not ok and '"dingtalk" directive is not allowed here' in out, out


def test_zero_timeout_is_refused():
    ngx = Nginx(location(f"dingtalk; dingtalk_token {TOKEN}; dingtalk_timeout 0;"))
    ok, out = ngx.test_config()
    assert not ok and "dingtalk_timeout must be more than 0" in out, out


def test_no_token_anywhere_fails_naming_dingtalk_token_and_line():
    ngx = Nginx(location("            dingtalk;"), env={"ROBOT_TOKEN": TOKEN})
    ok, out = ngx.test_config()
    assert not ok, out
    assert "dingtalk_token" in out and "env ROBOT_TOKEN" in out, out
    assert re.search(re.escape(ngx.conf_path) + r":\d+", out), out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk;')}" in out, out


def test_robot_token_from_the_environment(nginx_factory):
    mock = MockDingTalk()
    try:
        ngx = nginx_factory(location(f"dingtalk; dingtalk_api_url {mock.url};"),
                            main="env ROBOT_TOKEN;", env={"ROBOT_TOKEN": "envtoken123"})
        assert ngx.post("/", notification()).status == 200
        assert mock.received[0].query["access_token"] == "envtoken123"
        # a reload keeps resolving it from nginx's environment
        ngx.reload()
        assert ngx.post("/", notification()).status == 200
        assert mock.received[1].query["access_token"] == "envtoken123"
    finally:
        mock.close()


def test_robot_token_declared_but_empty_fails():
    ngx = Nginx(location("dingtalk;"), main="env ROBOT_TOKEN;", env={"ROBOT_TOKEN": ""})
    ok, out = ngx.test_config()
    assert not ok and "ROBOT_TOKEN is empty" in out, out


def test_robot_token_with_a_value_in_the_env_directive(nginx_factory):
    ngx = nginx_factory(location("dingtalk;"), main="env ROBOT_TOKEN=fromconf42;")
    assert ngx.get("/").status == 200


def test_directives_inherit_from_http_and_server(nginx_factory):
    mock = MockDingTalk()
    try:
        ngx = nginx_factory(f"""
    dingtalk_token {TOKEN};
    dingtalk_timezone UTC;
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_api_url {mock.url};
        location = /a {{ dingtalk; }}
        location = /b {{ dingtalk; dingtalk_timezone Asia/Tokyo; }}
    }}
""")
        assert ngx.post("/a", notification()).status == 200
        assert ngx.post("/b", notification()).status == 200
        assert "2026-11-23 16:04:05 +00:00" in mock.received[0].text
        assert "2026-11-24 01:04:05 +09:00" in mock.received[1].text
    finally:
        mock.close()


def test_default_thread_pool_is_used_when_none_is_named(nginx_factory):
    mock = MockDingTalk()
    try:
        ngx = nginx_factory(location(f"dingtalk; dingtalk_token {TOKEN}; "
                                     f"dingtalk_api_url {mock.url};"), thread_pool="")
        assert ngx.post("/", notification()).status == 200
    finally:
        mock.close()


def test_unknown_thread_pool_fails_nginx_t_naming_its_line():
    """Finding 13: the error named the http block's closing brace."""
    ngx = Nginx(location(f"""            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_thread_pool nosuch;"""))
    ok, out = ngx.test_config()
    assert not ok and 'unknown thread pool "nosuch"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_thread_pool nosuch')}" in out, out


def test_zone_size_too_small_names_its_line():
    ngx = Nginx("dingtalk_zone_size 16k;\n" + location(f"dingtalk; dingtalk_token {TOKEN};"))
    ok, out = ngx.test_config()
    assert not ok and "dingtalk_zone_size must be at least" in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_zone_size 16k')}" in out, out


def test_action_check_interval_is_bounded_and_names_its_line():
    for value in ("500ms", "11m", "soon"):
        ngx = Nginx(f"dingtalk_action_check_interval {value};\n" +
                    location(f"dingtalk; dingtalk_token {TOKEN};"))
        ok, out = ngx.test_config()
        assert not ok and "dingtalk_action_check_interval" in out, (value, out)
        assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_action_check_interval')}" in out, out
    ngx = Nginx("dingtalk_action_check_interval 30s;\n" +
                location(f"dingtalk; dingtalk_token {TOKEN};"))
    ok, out = ngx.test_config()
    assert ok, out


def test_one_token_two_names_fails_nginx_t():
    """Finding 16: metrics of one robot under two names changed name with every delivery."""
    ngx = Nginx(f"""
    dingtalk_token {TOKEN};
    server {{
        listen 127.0.0.1:%PORT%;
        location = /a {{ dingtalk; dingtalk_robot_name ops; }}
        location = /b {{ dingtalk; dingtalk_robot_name db; }}
        location = /c {{ dingtalk; dingtalk_robot_name ops; }}
    }}
""")
    ok, out = ngx.test_config()
    assert not ok, out
    assert 'dingtalk_robot_name "db" names a robot that is already named "ops"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'location = /a')}" in out, out
    assert TOKEN not in out


def test_a_template_that_is_not_utf8_fails_nginx_t(tmp_path):
    """Finding 10: a template with a byte 0xff made a request body that was not JSON."""
    from harness import world_readable_tmpdir
    import os

    d = world_readable_tmpdir("dingtalk-tmpl-")
    path = os.path.join(d, "bad.mustache")
    with open(path, "wb") as f:
        f.write(b"{{title}}\nline two \xff\n")
    ngx = Nginx(location(f"dingtalk; dingtalk_token {TOKEN}; dingtalk_template {path};"))
    ok, out = ngx.test_config()
    assert not ok and "line 2: not valid UTF-8" in out, out


def test_limit_except_guards_the_webhook(nginx_factory):
    """Finding 17: with limit_except, an allowed POST fell through to the static handler (404,
    which Alertmanager drops)."""
    mock = MockDingTalk()
    try:
        ngx = nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            limit_except GET {{ allow 127.0.0.1; deny all; }}
        }}
        location = /closed {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            limit_except GET {{ deny all; }}
        }}
    }}
""")
        r = ngx.post("/", notification())
        assert r.status == 200 and r.json["ok"], r
        assert ngx.get("/").status == 200
        assert ngx.post("/closed", notification()).status == 403
        assert ngx.get("/closed").status == 200
        assert len(mock.received) == 1
    finally:
        mock.close()


def test_the_example_config_passes_nginx_t():
    import os
    import shutil
    import subprocess

    from harness import MODULE, NGINX_BIN, REPO, world_readable_tmpdir

    d = world_readable_tmpdir("dingtalk-example-")
    conf = open(os.path.join(REPO, "nginx.conf.example")).read()
    conf = conf.replace("modules/ngx_http_dingtalk_module.so", MODULE)
    os.mkdir(os.path.join(d, "logs"))
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    env = dict(os.environ, ROBOT_TOKEN=TOKEN)
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["DINGTALK_NGINX_PRELOAD"]
    p = subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", path, "-e", d + "/error.log"],
                       capture_output=True, text=True, env=env)
    shutil.rmtree(d, ignore_errors=True)
    assert p.returncode == 0, p.stderr


def test_dingtalk_action_without_keys_fails_nginx_t_naming_the_location():
    ngx = Nginx("""
    server {
        listen 127.0.0.1:%PORT%;
        location = /dingtalk/action {
            dingtalk_action;
        }
    }
""")
    ok, out = ngx.test_config()
    assert not ok, out
    assert '"dingtalk_action" in location "/dingtalk/action" needs dingtalk_action_key_file' in out


def test_two_content_handlers_in_one_location_fail_nginx_t():
    for first, second in (("dingtalk;", "dingtalk_action;"), ("dingtalk_action;", "dingtalk;"),
                          ("dingtalk_metrics;", "dingtalk;"), ("dingtalk_action;", "dingtalk_action;")):
        ngx = Nginx(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location = /both {{
            {first}
            {second}
        }}
    }}
""")
        ok, out = ngx.test_config()
        assert not ok, (first, second, out)
        name = second.rstrip(";")
        assert re.search(rf'"{name}" directive is one content handler too many: this location '
                         r'already has one .* in \S+nginx\.conf:\d+', out), out


def test_dingtalk_action_without_alertmanager_fails_nginx_t_naming_the_location(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("k1 0123456789abcdef0123456789abcdef-config\n")
    ngx = Nginx(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location = /dingtalk/action {{
            dingtalk_action;
            dingtalk_action_key_file {keys};
        }}
    }}
""")
    ok, out = ngx.test_config()
    assert not ok, out
    assert ('"dingtalk_action" in location "/dingtalk/action" needs dingtalk_alertmanager_url'
            in out)
