"""Several robots: Go-bridge URLs routed by map, per-location tokens, token files, mentions,
and robot names (never the token) in metrics and logs."""

import hashlib
import json
import os
import re

import pytest

from harness import REPO, TOKEN, Nginx, alert, notification, world_readable_tmpdir, line_of

ENGLISH = os.path.join(REPO, "templates", "english.mustache")

TOKEN_DB = "feedface00112233feedface00112233"
TOKEN_B = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0"


def default_name(token):
    return "robot-" + hashlib.sha256(token.encode()).hexdigest()[:8]


def write(text, mode=0o644):
    path = os.path.join(world_readable_tmpdir("dingtalk-robot-"), "token")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def server(mock, locations, outer="", token=True):
    body = "".join(f"""
        location = {path} {{
            dingtalk;
            {extra}
        }}""" for path, extra in locations.items())
    return f"""
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_api_url {mock.url};
        dingtalk_thread_pool dingtalk;
        {f"dingtalk_token {TOKEN};" if token else ""}
        {outer}
        {body}
        location = /metrics {{ dingtalk_metrics; }}
    }}
"""


def sent_per_robot(ngx):
    text = ngx.get("/metrics").body.decode()
    return {m[0]: int(m[1]) for m in
            re.findall(r'^dingtalk_messages_sent_total\{robot="([^"]*)"\} (\d+)$', text, re.M)}


def test_go_bridge_urls_route_to_robots_with_map(nginx_factory, mock):
    ngx = nginx_factory(f"""
    map $target $robot_token {{
        ops {TOKEN};
        db  {TOKEN_DB};
        default "";
    }}
    server {{
        listen 127.0.0.1:%PORT%;
        location ~ ^/dingtalk/(?<target>[^/]+)/send$ {{
            dingtalk;
            dingtalk_token $robot_token;
            dingtalk_robot_name $target;
            dingtalk_api_url {mock.url};
        }}
        location /dingtalk/ {{
            default_type application/json;
            return 404 '{{"ok":false,"reason":"not a webhook URL: POST to /dingtalk/<target>/send"}}\n';
        }}
        location = /metrics {{ dingtalk_metrics; }}
    }}
""")
    assert ngx.post("/dingtalk/ops/send", notification()).status == 200
    assert ngx.post("/dingtalk/db/send", notification()).status == 200
    assert ngx.post("/dingtalk/ops/send", notification()).status == 200
    assert [m.query["access_token"] for m in mock.received] == [TOKEN, TOKEN_DB, TOKEN]

    # an unknown target, in any spelling, and a path that is no webhook URL: JSON, never
    # nginx's HTML page or a file lookup
    for path in ("/dingtalk/nosuch/send", "/dingtalk/Ops.old/send", "/dingtalk/ops/send/",
                 "/dingtalk/ops"):
        r = ngx.post(path, notification())
        assert r.status == 404, (path, r)
        assert r.headers["content-type"] == "application/json", path
        assert r.json["ok"] is False, path
    assert len(mock.received) == 3, "an unknown target sends nothing"

    assert sent_per_robot(ngx) == {"ops": 2, "db": 1}
    log = ngx.error_log()
    assert len(re.findall(r'dingtalk "[^"]*" robot ops: 200 delivered', log)) == 2, log
    assert len(re.findall(r'dingtalk "[^"]*" robot db: 200 delivered', log)) == 1, log
    assert "open()" not in log, log
    # one line for each unknown target the map does not know, naming what is missing
    for target in ("nosuch", "Ops.old"):
        lines = [l for l in log.splitlines() if f"/dingtalk/{target}/send" in l]
        assert len(lines) == 1 and "dingtalk_token is empty" in lines[0], lines


def test_per_location_tokens_and_inheritance(nginx_factory, mock):
    path = write(TOKEN_B + "\n")
    ngx = nginx_factory(server(mock, {
        "/inherited": "",
        "/own": f"dingtalk_token {TOKEN_DB};",
        "/file": f"dingtalk_token_file {path};",
    }))
    for p in ("/inherited", "/own", "/file"):
        assert ngx.post(p, notification()).status == 200, p
    assert [m.query["access_token"] for m in mock.received] == [TOKEN, TOKEN_DB, TOKEN_B]
    assert sent_per_robot(ngx) == {default_name(t): 1 for t in (TOKEN, TOKEN_DB, TOKEN_B)}


def test_token_file_read_by_the_master(nginx_factory, mock):
    # 0600 root: the workers (nobody) could not read them, the master reads them at startup
    files = {p: write(c, mode=0o600) for p, c in
             (("/bare", TOKEN_B), ("/newline", TOKEN_DB + "\n"), ("/crlf", TOKEN + "\r\n\n"))}
    ngx = nginx_factory(server(mock, {"/inherits": "", "/newline": "dingtalk_token_file %s;"
                                      % files["/newline"], "/crlf": "dingtalk_token_file %s;"
                                      % files["/crlf"]},
                               outer=f"dingtalk_token_file {files['/bare']};", token=False))
    for p in ("/inherits", "/newline", "/crlf"):
        assert ngx.post(p, notification()).status == 200, p
    assert [m.raw_query for m in mock.received] == [f"access_token={t}"
                                                    for t in (TOKEN_B, TOKEN_DB, TOKEN)]

    # read at configuration time: a new token takes effect on reload, not before
    with open(files["/newline"], "w") as f:
        f.write(TOKEN_B + "\n")
    assert ngx.post("/newline", notification()).status == 200
    ngx.reload()
    assert ngx.post("/newline", notification()).status == 200
    assert [m.query["access_token"] for m in mock.received[3:]] == [TOKEN_DB, TOKEN_B]


BAD_FILES = [
    ("dash", TOKEN_B + "-x\n", "does not hold a DingTalk robot token"),
    ("two-lines", TOKEN_B + "\n" + TOKEN + "\n", "does not hold a DingTalk robot token"),
    ("url", "https://oapi.dingtalk.com/robot/send?access_token=" + TOKEN_B,
     "does not hold a DingTalk robot token"),
    ("empty", "\n", "does not hold a DingTalk robot token"),
    ("missing", None, "cannot open"),
]


@pytest.mark.parametrize("name,content,why", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_token_file_fails_nginx_t(mock, name, content, why):
    path = write(content) if content is not None else "/nonexistent/dingtalk-token"
    ngx = Nginx(server(mock, {"/": f"dingtalk_token_file {path};"}, token=False))
    ok, out = ngx.test_config()
    assert not ok, out
    assert f'dingtalk_token_file: "{path}" {why}' in out or \
        f'dingtalk_token_file: {why} "{path}"' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_token_file')}" in out, out
    assert TOKEN_B not in out and TOKEN not in out, "the file's content is never printed"


@pytest.mark.parametrize("order", ["token-first", "file-first"])
def test_token_and_token_file_at_one_level_is_duplicate(mock, order):
    path = write(TOKEN_B)
    pair = [f"dingtalk_token {TOKEN};", f"dingtalk_token_file {path};"]
    second = pair[1] if order == "token-first" else pair[0]
    ngx = Nginx(server(mock, {"/": " ".join(pair if order == "token-first" else pair[::-1])},
                       token=False))
    ok, out = ngx.test_config()
    assert not ok and "is duplicate" in out, out
    directive = second.split()[0]
    assert f'"{directive}" directive is duplicate' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, second)}" in out, out
    assert TOKEN not in out and TOKEN_B not in out
    # at different levels the inner one wins
    ngx = Nginx(server(mock, {"/": pair[0]}, outer=pair[1], token=False))
    assert ngx.test_config()[0]


def at_of(msg):
    return msg.json.get("at")


def test_mentions_of_mobiles_and_user_ids(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/": "dingtalk_at_mobiles 13800000000 +86-13900000000; "
             "dingtalk_at_user_ids manager01 ops.lead_2;",
        "/critical-only": "dingtalk_at_mobiles 13800000000 severity=critical,page; "
                          "dingtalk_at_user_ids oncall;",
    }))
    assert ngx.post("/", notification()).status == 200
    msg = mock.received[0]
    assert at_of(msg) == {"atMobiles": ["13800000000", "+86-13900000000"],
                          "atUserIds": ["manager01", "ops.lead_2"], "isAtAll": False}
    assert msg.text.endswith("\n\n@13800000000 @+86-13900000000 @manager01 @ops.lead_2")
    assert "@所有人" not in msg.text

    assert ngx.post("/critical-only", notification(alert(severity="page"))).status == 200
    assert ngx.post("/critical-only", notification(alert(severity="warning"))).status == 200
    assert at_of(mock.received[1]) == {"atMobiles": ["13800000000"], "atUserIds": ["oncall"],
                                       "isAtAll": False}
    assert at_of(mock.received[2]) == {"atMobiles": [], "atUserIds": ["oncall"],
                                       "isAtAll": False}
    assert "@13800000000" not in mock.received[2].text and "@oncall" in mock.received[2].text
    # the log line says who was mentioned, or why nobody was
    log = ngx.error_log()
    assert "mentioned @13800000000 @oncall" in log
    assert re.search(r"200 delivered, 1 alert, .*mentioned @13800000000 @\+86-13900000000 "
                     r"@manager01 @ops\.lead_2", log), log


def test_severities_match_in_any_case_and_the_log_says_why_nobody(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {"/": "dingtalk_at_mobiles 13800000000 severity=Critical;"}))
    # the issue: "Critical" in an alert did not match severity=critical
    assert ngx.post("/", notification(alert(severity="CRITICAL"))).status == 200
    assert at_of(mock.received[0])["atMobiles"] == ["13800000000"]
    assert ngx.post("/", notification(alert(severity="warning"))).status == 200
    assert at_of(mock.received[1]) is None
    assert "mentioned nobody: no firing alert has severity critical" in ngx.error_log()


def test_at_all_only_for_firing_alerts_of_a_severity(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {"/": "dingtalk_at_all on severity=critical;"}))
    cases = [
        ("firing critical", notification(alert(severity="critical")), True),
        ("firing warning", notification(alert(severity="warning")), False),
        ("resolved critical", notification(alert(status="resolved", severity="critical",
                                                 ends="2026-11-23T17:00:00Z")), False),
        ("warning firing, critical resolved",
         notification(alert(severity="warning"),
                      alert(status="resolved", pod="x", ends="2026-11-23T17:00:00Z")), False),
        ("one critical among warnings",
         notification(alert(severity="warning"), alert(pod="x", severity="critical")), True),
    ]
    for what, body, everyone in cases:
        before = len(mock.received)
        assert ngx.post("/", body).status == 200, what
        msg = mock.received[before]
        if everyone:
            assert at_of(msg) == {"atMobiles": [], "atUserIds": [], "isAtAll": True}, what
            assert msg.text.endswith("\n\n@所有人"), what
        else:
            assert at_of(msg) is None, what
            assert "@所有人" not in msg.text, what


def test_mention_rules_of_a_location_replace_inherited_ones(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/inherits": "",
        "/replaces": "dingtalk_at_user_ids bob;",
        "/silenced": "dingtalk_at_all off;",
    }, outer="dingtalk_at_mobiles 13800000000; dingtalk_at_all on severity=critical;"))
    for p in ("/inherits", "/replaces", "/silenced"):
        assert ngx.post(p, notification(alert(severity="critical"))).status == 200, p
    inherits, replaces, silenced = mock.received
    assert at_of(inherits) == {"atMobiles": ["13800000000"], "atUserIds": [], "isAtAll": True}
    assert "@13800000000" in inherits.text
    assert at_of(replaces) == {"atMobiles": [], "atUserIds": ["bob"], "isAtAll": False}
    assert "@13800000000" not in replaces.text and replaces.text.endswith("@bob")
    assert at_of(silenced) is None and "@" not in silenced.text.split("\n")[-1]


BAD_MENTIONS = [
    ("dingtalk_at_mobiles 138abc;", "is not a mobile number"),
    ("dingtalk_at_mobiles 13800000000 severity=;", 'empty "severity="'),
    ("dingtalk_at_mobiles severity=critical;", "nobody to mention"),
    ("dingtalk_at_user_ids bad@id;", "is not a DingTalk user id"),
    ("dingtalk_at_user_ids " + "u" * 65 + ";", "is not a DingTalk user id"),
    ("dingtalk_at_all maybe;", "is not on, off or severity="),
    ("dingtalk_at_all on off severity=a severity=b;", "invalid number of arguments"),
    # the issue: severity=critcal passed nginx -t and never fired
    ("dingtalk_at_all on severity=critcal;", 'severity "critcal" looks like a typo of "critical"'),
    ("dingtalk_severity_style Warnig ⚠️;", '"warnig" looks like a typo of "warning"'),
]


@pytest.mark.parametrize("directive,why", BAD_MENTIONS, ids=[b[1] for b in BAD_MENTIONS])
def test_bad_mention_fails_nginx_t(mock, directive, why):
    ngx = Nginx(server(mock, {"/": directive}))
    ok, out = ngx.test_config()
    assert not ok and why in out, out
    assert directive.split()[0] in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, directive)}" in out, out


def test_robot_names_are_never_the_token(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/default": "",
        "/named": f'dingtalk_token {TOKEN_DB}; dingtalk_robot_name "db team/#1";',
        "/variable": f"dingtalk_token {TOKEN_B}; dingtalk_robot_name $http_x_robot;",
    }, token=True))
    mock.answer({}, {"body": {"errcode": 310000, "errmsg": f"bad {TOKEN}"}})
    assert ngx.post("/default", notification()).status == 200
    assert ngx.post("/default", notification()).status == 502
    assert ngx.post("/named", notification()).status == 200
    assert ngx.post("/variable", notification(), headers={"X-Robot": "from-header"}).status == 200

    text = ngx.get("/metrics").body.decode()
    names = set(re.findall(r'robot="([^"]*)"', text))
    assert names == {default_name(TOKEN), "db_team__1", "from-header"}
    assert re.search(r'^dingtalk_messages_failed_total\{robot="%s"\} 1$'
                     % default_name(TOKEN), text, re.M), text
    log = ngx.error_log()
    for name in names:
        assert f" robot {name}: " in log, name
    for secret in (TOKEN, TOKEN_DB, TOKEN_B):
        assert secret not in text and secret not in log
        assert not any(secret[:16] in n for n in names)
    assert "bad ***" in log, "DingTalk's errmsg is redacted too"


def test_a_keyword_robot_gets_its_keyword_in_every_message(nginx_factory, mock):
    mock.keywords = ["值班"]  # the robot refuses what lacks it, as DingTalk does
    ngx = nginx_factory(server(mock, {
        "/without": f"dingtalk_template {ENGLISH};",
        "/with": f"dingtalk_template {ENGLISH}; dingtalk_keyword 值班; "
                 "dingtalk_at_user_ids oncall;",
        "/built-in": "dingtalk_keyword 告警;",
    }))
    r = ngx.post("/without", notification())
    assert r.status == 502 and r.json["errcode"] == 310000, r
    assert "set dingtalk_keyword" in r.json["reason"], "the reply names the directive"
    r = ngx.post("/with", notification())
    assert r.status == 200, r
    # a line of its own at the end (the template printed the mentions already)
    assert mock.received[-1].text.endswith("\n\n@oncall\n\n值班")
    # the built-in layout already says 告警: nothing added
    mock.keywords = ["告警"]
    assert ngx.post("/built-in", notification()).status == 200
    assert not mock.received[-1].text.endswith("告警")


@pytest.mark.parametrize("directive,why", [
    ('dingtalk_keyword "";', "empty"),
    ("dingtalk_keyword " + "k" * 65 + ";", "longer than 64 bytes"),
    ('dingtalk_keyword " padded";', "without control characters or spaces at either end"),
], ids=["empty", "long", "padded"])
def test_a_bad_keyword_fails_nginx_t(mock, directive, why):
    ngx = Nginx(server(mock, {"/": directive}))
    ok, out = ngx.test_config()
    assert not ok and f"dingtalk_keyword: " in out and why in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_keyword')}" in out, out


def test_mentions_named_by_the_firing_alerts(nginx_factory, mock):
    ngx = nginx_factory(server(mock, {
        "/": "dingtalk_at_mobiles_from oncall_mobiles; dingtalk_at_user_ids_from oncall; "
             "dingtalk_at_mobiles 13800000000;",
    }))
    body = notification(
        alert(pod="api-0", extra_labels={"oncall": "zhang.san",
                                         "oncall_mobiles": "13500000000"}),
        alert(pod="api-1", extra_labels={"oncall": "li_si zhang.san"}),
        alert(status="resolved", pod="old-0", ends="2026-11-23T17:00:00Z",
              extra_labels={"oncall": "wang.wu", "oncall_mobiles": "13600000000"}))
    # an annotation wins over the label of the same name
    body["alerts"][0]["annotations"]["oncall_mobiles"] = "13900000000, +86-13700000000,bogus!"
    assert ngx.post("/", body).status == 200
    msg = mock.received[0]
    assert at_of(msg) == {"atMobiles": ["13800000000", "13900000000", "+86-13700000000"],
                          "atUserIds": ["zhang.san", "li_si"], "isAtAll": False}, at_of(msg)
    # the @ text that makes DingTalk notify them, and none for the resolved alert's people
    assert msg.text.endswith("\n\n@13800000000 @13900000000 @+86-13700000000 @zhang.san @li_si")
    assert "wang.wu" not in json.dumps(at_of(msg)) and "13600000000" not in json.dumps(at_of(msg))
    log = ngx.error_log()
    assert ("mentioned @13800000000 @13900000000 @+86-13700000000 @zhang.san @li_si; dropped 1 "
            "named by the alerts that are not a mobile number or user id") in log, log

    # a label naming a crowd: 20 at most
    crowd = " ".join(f"1390000{i:04d}" for i in range(40))
    assert ngx.post("/", notification(alert(extra_labels={"oncall_mobiles": crowd}))).status == 200
    assert len(at_of(mock.received[1])["atMobiles"]) == 1 + 20
    assert "dropped 20 named by the alerts past the first 20" in ngx.error_log()

    # nobody named: the static list alone, and the log says why the alerts added nobody
    assert ngx.post("/", notification(alert())).status == 200
    assert at_of(mock.received[2])["atMobiles"] == ["13800000000"]


@pytest.mark.parametrize("directive", ["dingtalk_at_mobiles_from on-call;",
                                       "dingtalk_at_user_ids_from \"\";"])
def test_a_bad_mention_source_fails_nginx_t(mock, directive):
    ngx = Nginx(server(mock, {"/": directive}))
    ok, out = ngx.test_config()
    name = directive.split()[0]
    assert not ok and f"{name}: " in out and "not a label name" in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, name)}" in out, out
