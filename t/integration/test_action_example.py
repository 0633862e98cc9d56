"""The action location as nginx.conf.example ships it (commented out): uncommented, it loads,
its links open the page, and its limit_req stops a flood of requests from one address before
the module sees them (issue #25: the page is public, phones reach it)."""

import os
import re

from harness import REPO, TOKEN, Nginx, alert, notification
from test_actions import SECRET, alertmanager, conf_file, silences  # noqa: F401

EXAMPLE = os.path.join(REPO, "nginx.conf.example")


def uncommented_http_block(keys, am_url, mock_url):
    """The example's http block with its silencing lines uncommented and pointed at the test's
    key file, Alertmanager, DingTalk stand-in and port."""
    text = open(EXAMPLE).read()
    body = text[text.index("http {\n") + len("http {\n"):text.rindex("}")]
    start, end = body.index("# Silencing from the chat"), body.index("# ...to here")
    region = re.sub(r"^(\s*)# (?=dingtalk_|location|    |\})", r"\1", body[start:end], flags=re.M)
    body = body[:start] + region + body[end:]
    body = body.replace("# limit_req_zone", "limit_req_zone")
    assert "\n        dingtalk_action_url" in body and "\n            dingtalk_action;" in body
    return (body.replace("access_log logs/access.log;", f"dingtalk_api_url {mock_url};")
            .replace("listen 127.0.0.1:5000;", "listen 127.0.0.1:%PORT%;")
            .replace("https://hook.example.com/dingtalk/action",
                     "http://127.0.0.1:%PORT%/dingtalk/action")
            .replace("/etc/nginx/dingtalk-action-keys", keys)
            .replace("http://alertmanager-operated.monitoring:9093", am_url))


def test_the_examples_action_location_is_rate_limited(nginx_factory, mock, alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(uncommented_http_block(keys, alertmanager.url, mock.url),
                        main="env ROBOT_TOKEN;", env={"ROBOT_TOKEN": TOKEN})
    r = ngx.post("/", notification(alert(pod="api-7")))
    assert r.status == 200, r
    link = re.findall(r"\((http://127\.0\.0\.1:\d+(/dingtalk/action\?l=[^)]+))\)",
                      mock.received[-1].text)[0][1]
    statuses = [ngx.get(link).status for _ in range(15)]
    # rate=10r/m burst=10 nodelay: the first and ten more at once, then 429 for a while
    assert statuses == [200] * 11 + [429] * 4, statuses
    assert silences(alertmanager) == [], "a GET never acts"
    assert ngx.get("/healthz").status == 200, "the limit is the action location's only"
