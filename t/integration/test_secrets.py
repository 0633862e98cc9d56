"""The robot token and signing secret never reach a log line or a reply, at any log level."""

from harness import MockDingTalk, SECRET, TOKEN, notification, webhook


def test_no_token_or_secret_in_debug_log_or_replies(nginx_factory, mock, certs):
    rogue = MockDingTalk(tls_cert=certs.rogue_cert, tls_key=certs.rogue_key)
    dead = MockDingTalk()
    dead.close()
    try:
        ngx = nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_token {TOKEN};
        dingtalk_secret {SECRET};
        dingtalk_timeout 1s;
        location = /ok {{ dingtalk; dingtalk_api_url {mock.url}; }}
        location = /tls {{ dingtalk; dingtalk_api_url {rogue.url}; }}
        location = /dead {{ dingtalk; dingtalk_api_url {dead.url}; }}
    }}
""", log_level="debug")
        replies = []
        for answer in ({}, {"body": {"errcode": 310000, "errmsg": f"sign not match {TOKEN}"}},
                       {"status": 500, "body": f"error for access_token={TOKEN}"},
                       {"delay": 2}):
            mock.default = dict(answer)  # retries of a failure get the same answer
            replies.append(ngx.post("/ok", notification()))
        replies += [ngx.post("/tls", notification()), ngx.post("/dead", notification()),
                    ngx.post("/ok", b"{broken")]
        # the late answer (2 s, past dingtalk_timeout) is waited for: 200
        assert [r.status for r in replies] == [200, 502, 502, 200, 502, 502, 400]
        # the token did reach DingTalk: the check below is not vacuous
        assert mock.received[0].query["access_token"] == TOKEN
        log = ngx.error_log()
        assert "[debug]" in log, "the check must run at debug level"
        for r in replies:
            assert TOKEN.encode() not in r.body and SECRET.encode() not in r.body, r
        assert TOKEN not in log and SECRET not in log
        assert TOKEN[:16] not in log, "not even a prefix of the token"
    finally:
        rogue.close()


def test_nginx_itself_logs_variables_at_debug(nginx_factory, mock):
    """Finding 8: with docs/operations.md's map recipe at debug level, nginx core logs the token
    ("http map", "http script var"). The module cannot silence nginx: its own lines never hold
    it, and docs/operations.md (Logs) says what to do instead (token files, no debug in production)."""
    ngx = nginx_factory(f"""
    map $uri $robot_token {{
        /ops    {TOKEN};
        default "";
    }}
    map $uri $robot_secret {{
        /ops    {SECRET};
        default "";
    }}
    server {{
        listen 127.0.0.1:%PORT%;
        location = /ops {{
            dingtalk;
            dingtalk_token $robot_token;
            dingtalk_secret $robot_secret;
            dingtalk_api_url {mock.url};
        }}
    }}
""", log_level="debug")
    assert ngx.post("/ops", notification()).status == 200
    assert mock.received[0].sig_ok
    lines = ngx.error_log().splitlines()
    holding = [l for l in lines if TOKEN in l or SECRET in l]
    assert holding, "nginx core does log variables at debug: the documented warning is true"
    for line in holding:
        assert "http map" in line or "http script" in line, line
        assert "dingtalk" not in line, line


def test_a_token_file_stays_out_of_the_debug_log(nginx_factory, mock):
    from harness import world_readable_tmpdir
    import os

    d = world_readable_tmpdir("dingtalk-token-")
    path = os.path.join(d, "token")
    with open(path, "w") as f:
        f.write(TOKEN + "\n")
    ngx = nginx_factory(webhook(mock, f"dingtalk_token_file {path};").replace(
        f"dingtalk_token {TOKEN};", ""), log_level="debug")
    assert ngx.post("/", notification()).status == 200
    assert mock.received[0].query["access_token"] == TOKEN
    log = ngx.error_log()
    assert "[debug]" in log and TOKEN not in log


def test_the_secret_from_a_file(nginx_factory, mock):
    """dingtalk_secret_file: as dingtalk_token_file, for the signing secret (a mounted
    Secret, no nginx syntax in it)."""
    from harness import world_readable_tmpdir, line_of, Nginx
    import os

    d = world_readable_tmpdir("dingtalk-secret-")
    good, bad = os.path.join(d, "secret"), os.path.join(d, "bad")
    with open(good, "w") as f:
        f.write(SECRET + "\n")
    with open(bad, "w") as f:
        f.write("SECnot-hex-at-all\n")
    ngx = nginx_factory(webhook(mock, f"dingtalk_secret_file {good};"))
    assert ngx.post("/", notification()).status == 200
    assert mock.received[0].sig_ok is True
    broken = Nginx(webhook(mock, f"dingtalk_secret_file {bad};"))
    ok, out = broken.test_config()
    assert not ok and f'dingtalk_secret_file: "{bad}" does not hold a DingTalk signing' in out, out
    assert f"{broken.conf_path}:{line_of(broken, 'dingtalk_secret_file')}" in out, out
    assert "not-hex" not in out, "the file's content is never printed"
