"""The real clients: Debian's Prometheus Alertmanager (and Prometheus) in front of the module.

The other tests post hand-made notifications. Here Debian's prometheus-alertmanager groups the
alerts, builds the webhook body, and retries on its own, so these tests pin down what the
documents promise about the real client (docs/operations.md):

- a group arrives as one message, firing then resolved (send_resolved), times in Asia/Shanghai;
- throttling (130101, then the module's cool-down 503s) is retried by Alertmanager itself until
  DingTalk accepts the message: nothing lost, nothing sent twice;
- a 4xx is never retried by Alertmanager (attempted once, then dropped): why the module only
  answers 4xx for what can never succeed;
- Prometheus -> Alertmanager -> nginx -> DingTalk with an always-firing rule (Prometheus learns
  of its Alertmanager up to 5 s after start, and runs with --rules.alert.resend-delay=1s so the
  alert it could not send yet goes out a second later instead of a minute later).

Alertmanager runs on loopback with no clustering (`--cluster.listen-address=` empty), so it
notifies as soon as group_wait ends. Its retry backoff starts at about 0.5 s and a
notification may retry for max(group_interval, 10 s), so every scenario here takes seconds.

No custom pytest marker: a marker can only be registered from a conftest or an ini file, and
the whole file runs in about 30 s, so it stays in the default run. It is skipped (with the
reason) only when the binaries are not installed; CI installs prometheus-alertmanager and
prometheus.

Alertmanager 0.25's counters: alertmanager_notification_requests_total and
alertmanager_notification_requests_failed_total count each webhook POST (retries included);
alertmanager_notifications_failed_total counts notifications given up on (a 4xx at once, or a
5xx until the notification timed out), so it stays 0 for a notification that succeeded after
retries.
"""

import datetime
import os
import re
import time
import zoneinfo

import pytest

from alertmanager_harness import (ALERTMANAGER_BIN, PROMETHEUS_BIN, Alertmanager, Prometheus,
                                  executable, version, wait_until)
from harness import TOKEN, webhook

pytestmark = pytest.mark.skipif(
    not executable(ALERTMANAGER_BIN),
    reason=f"Alertmanager not installed at {ALERTMANAGER_BIN} "
           "(apt-get install prometheus-alertmanager, or set ALERTMANAGER_BIN)")

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


class Chain:
    """The processes of one test; at teardown all are stopped and their logs printed (pytest
    shows them only for a failed test)."""

    def __init__(self):
        self.procs = []
        self.nginx = []

    def alertmanager(self, webhook_url, **kw):
        am = Alertmanager(webhook_url, **kw)
        self.procs.append(am)
        return am.start()

    def prometheus(self, alertmanager, rules):
        prom = Prometheus(alertmanager, rules)
        self.procs.append(prom)
        return prom.start()

    def watch(self, ngx):
        self.nginx.append(ngx)
        return ngx

    def logs(self):
        out = []
        for p in self.procs:
            out.append(f"----- {p.name} log ({p.binary}, port {p.port}) -----\n{p.log()}")
        for n in self.nginx:
            out.append(f"----- nginx error log ({n.dir}) -----\n{n.error_log()}")
        return "\n".join(out)

    def close(self):
        errors = []
        for p in reversed(self.procs):  # Prometheus before the Alertmanager it talks to
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                errors.append(f"{p.name}: {e!r}")
        print(self.logs())
        for p in self.procs:
            p.cleanup()
        assert not errors, errors


@pytest.fixture
def chain():
    c = Chain()
    try:
        yield c
    finally:
        c.close()


# ------------------------------------------------------------------------------------------
# helpers


def utc(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def shanghai(t):
    """How the module shows a time with the default dingtalk_timezone."""
    return t.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S %z").replace("+0800", "+08:00")


def now_s():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def am_alert(name, pod, starts, ends, namespace="kube-ops", severity="critical"):
    """One alert as Prometheus posts it to /api/v2/alerts."""
    return {
        "labels": {"alertname": name, "severity": severity, "namespace": namespace, "pod": pod},
        "annotations": {"message": f"Pod {namespace}/{pod} is crash looping"},
        "startsAt": utc(starts),
        "endsAt": utc(ends),
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
    }


def messages(mock, name, state=None):
    """What the mock received for alert group `name` (optionally only FIRING or RESOLVED)."""
    out = []
    for r in list(mock.received):
        if r.json is None or not r.json.get("markdown"):
            continue
        title = r.title
        if name in title and (state is None or title.startswith(f"[{state}")):
            out.append(r)
    return out


def accepted(mock, name):
    return [r for r in mock.accepted() if r.json and name in r.title]


# ------------------------------------------------------------------------------------------
# 1. the real chain: firing, then resolved


def test_firing_then_resolved_through_alertmanager(nginx_factory, mock, chain):
    ngx = chain.watch(nginx_factory(webhook(mock)))
    am = chain.alertmanager(f"http://127.0.0.1:{ngx.port}/")
    name = "DingtalkChainCrashLooping"
    started_at = time.monotonic()

    # starting now: Alertmanager flushes at once a group whose first alert started more than
    # group_wait ago, which raced the second alert into a message of its own
    starts, ends = now_s(), now_s() + datetime.timedelta(hours=1)
    am.post_alerts([am_alert(name, "api-0", starts, ends), am_alert(name, "api-1", starts, ends)])

    firing = wait_until(lambda: messages(mock, name, "FIRING"), 10,
                        "the firing message at the mock", chain.logs)
    assert len(firing) == 1, "one message per group, not one per alert"
    msg = firing[0]
    assert msg.title == f"[FIRING:2] {name}"
    assert msg.query["access_token"] == TOKEN
    for pod in ("api-0", "api-1"):
        assert f"**故障pod**: {pod}" in msg.text
        assert f"**告警详情**: Pod kube-ops/{pod} is crash looping" in msg.text
    assert msg.text.count(f"**触发时间**: {shanghai(starts)}") == 2, \
        f"startsAt {utc(starts)} shown in Asia/Shanghai:\n{msg.text}"
    assert "结束时间" not in msg.text, "a firing alert has no end time yet"
    assert "[查看图表](http://prometheus.example/graph?g0.expr=up)" in msg.text

    # Resolve both: endsAt now, as Prometheus does when the rule stops firing.
    ended = now_s() - datetime.timedelta(seconds=1)
    am.post_alerts([am_alert(name, "api-0", starts, ended), am_alert(name, "api-1", starts, ended)])

    resolved = wait_until(lambda: messages(mock, name, "RESOLVED"), 10,
                          "the resolved message at the mock", chain.logs)
    assert len(resolved) == 1
    msg = resolved[0]
    assert msg.title == f"[RESOLVED:2] {name}"
    assert "#### 已恢复 (2)" in msg.text and "告警中" not in msg.text
    assert msg.text.count("**告警状态**: resolved") == 2
    assert msg.text.count(f"**结束时间**: {shanghai(ended)}") == 2, \
        f"endsAt {utc(ended)} shown in Asia/Shanghai:\n{msg.text}"
    assert msg.text.count(f"**触发时间**: {shanghai(starts)}") == 2

    assert len(mock.received) == 2, [r.title for r in mock.received]
    assert am.webhook_requests() == 2 and am.webhook_requests_failed() == 0
    assert ngx.error_log().count("200 delivered, 2 alerts") == 2
    assert time.monotonic() - started_at < 25


# ------------------------------------------------------------------------------------------
# 2. throttling: 130101 twice, the module's cool-down 503s, Alertmanager retries, one message


THROTTLED = {"body": {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}}


def test_throttled_robot_is_retried_by_alertmanager_until_accepted_once(nginx_factory, mock,
                                                                       chain):
    ngx = chain.watch(nginx_factory(webhook(mock, "dingtalk_rate_limit 20/60s cooldown=2s;")))
    mock.answer(THROTTLED, THROTTLED)  # then the default: errcode 0
    am = chain.alertmanager(f"http://127.0.0.1:{ngx.port}/")
    name = "DingtalkThrottledRobot"
    started_at = time.monotonic()

    starts, ends = now_s(), now_s() + datetime.timedelta(hours=1)  # both in one group_wait
    am.post_alerts([am_alert(name, "db-0", starts, ends), am_alert(name, "db-1", starts, ends)])

    wait_until(lambda: accepted(mock, name), 30, "DingTalk accepting the message", chain.logs)
    # Longer than group_interval (2 s): a second flush would show up as a duplicate.
    time.sleep(3)

    ok = accepted(mock, name)
    assert len(ok) == 1, "accepted exactly once: nothing lost, nothing sent twice"
    assert ok[0].title == f"[FIRING:2] {name}"
    assert "**故障pod**: db-0" in ok[0].text and "**故障pod**: db-1" in ok[0].text
    got = [r.json["markdown"]["title"] for r in mock.received]
    assert got == [f"[FIRING:2] {name}"] * 3, got
    codes = [r.answer["body"]["errcode"] for r in mock.received]
    assert codes == [130101, 130101, 0], codes
    # While the robot cools down the module answers 503 itself and DingTalk sees nothing.
    gaps = [b.at - a.at for a, b in zip(mock.received, mock.received[1:])]
    assert all(g >= 1.9 for g in gaps), f"DingTalk hit during the 2 s cool-down: {gaps}"

    # Alertmanager retried by itself (5xx): every failed POST was a 503 it kept retrying,
    # and exactly one POST succeeded. (Usually all within one notification, so
    # alertmanager_notifications_failed_total stays 0; if its 10 s notification timeout runs
    # out first, the next group_interval flush sends again: still one message.)
    log = am.log()
    assert "Notify attempt failed, will retry later" in log, "Alertmanager did not retry"
    assert "unexpected status code 503" in log
    assert "unrecoverable error" not in log, "a 4xx: Alertmanager would have dropped it"
    assert re.search(r'msg="Notify success" attempts=([3-9]|\d\d)', log) \
        or am.webhook_failures() > 0, "the success came after retries"
    assert am.webhook_requests_failed() >= 2
    assert am.webhook_requests() == am.webhook_requests_failed() + 1, "one POST succeeded"

    # nginx says why: the 130101, then 503s while cooling down, then the delivery.
    err = ngx.error_log()
    assert re.search(r"dingtalk \"/\" robot \S+: 503 \w+, 2 alerts, 1 attempt, errcode 130101",
                     err), err
    assert len(re.findall(r": 503 throttled, 2 alerts, 1 attempt, errcode 130101", err)) == 2, err
    assert "robot is cooling down after DingTalk throttled it (130101); answered 503" in err, \
        "the cool-down 503s (DingTalk not asked) are logged"
    # and the module's one-line reasons reach Alertmanager's log
    assert "throttl" in log and "130101" in log, log
    assert err.count("200 delivered, 2 alerts") == 1
    assert time.monotonic() - started_at < 40


# ------------------------------------------------------------------------------------------
# 3. a 4xx is dropped by Alertmanager after one attempt


def test_4xx_is_not_retried_by_alertmanager(nginx_factory, mock, chain):
    ngx = chain.watch(nginx_factory(f"""
    map $arg_team $team_token {{
        ops      {TOKEN};
        default  "";
    }}
    server {{
        listen 127.0.0.1:%PORT%;
        access_log %DIR%/access.log;
        location = / {{
            dingtalk;
            dingtalk_token $team_token;
            dingtalk_api_url {mock.url};
        }}
    }}
"""))
    # group_interval 1m: no second flush of the group within the test, so every POST seen is
    # Alertmanager's retry loop (which retried within a second on the 503s above).
    am = chain.alertmanager(f"http://127.0.0.1:{ngx.port}/?team=nobody", group_interval="1m")
    name = "DingtalkNoRobot"

    starts, ends = now_s(), now_s() + datetime.timedelta(hours=1)
    am.post_alerts([am_alert(name, "web-0", starts, ends)])

    wait_until(lambda: am.webhook_failures() >= 1, 10,
               "Alertmanager giving the notification up", chain.logs)
    time.sleep(3)  # a 5xx would have been retried about four times by now

    access = open(os.path.join(ngx.dir, "access.log")).read().splitlines()
    posts = [line for line in access if '"POST /?team=nobody HTTP/1.1"' in line]
    assert len(posts) == 1, access
    assert '" 404 ' in posts[0], posts[0]
    assert '"Alertmanager/' in posts[0], "the real client's User-Agent"
    assert mock.received == [], "nothing reaches DingTalk without a robot"
    assert am.webhook_requests() == 1 and am.webhook_requests_failed() == 1
    assert am.webhook_failures() == 1, "Alertmanager dropped the notification"

    log = am.log()
    assert "notify retry canceled due to unrecoverable error after 1 attempts" in log, log
    assert "unexpected status code 404" in log
    # the module's one-line reason reaches Alertmanager's log
    assert "dingtalk_token is empty" in log
    assert "Notify attempt failed, will retry later" not in log


# ------------------------------------------------------------------------------------------
# 4. fan-out: one receiver with a webhook_config per robot


DB_TOKEN = "fedcba9876543210" * 4


def test_one_receiver_with_two_webhooks_reaches_each_robot_once(nginx_factory, mock, chain):
    ngx = chain.watch(nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_api_url {mock.url};
        location = /dingtalk/ops/send {{ dingtalk; dingtalk_token {TOKEN}; }}
        location = /dingtalk/db/send {{ dingtalk; dingtalk_token {DB_TOKEN}; }}
    }}
"""))
    base = f"http://127.0.0.1:{ngx.port}/dingtalk"
    am = chain.alertmanager([f"{base}/ops/send", f"{base}/db/send"])
    name = "DingtalkFanOut"

    starts, ends = now_s() - datetime.timedelta(minutes=2), now_s() + datetime.timedelta(hours=1)
    am.post_alerts([am_alert(name, "db-0", starts, ends)])

    wait_until(lambda: len(messages(mock, name)) >= 2, 15, "a message for each robot",
               chain.logs)
    # Twice group_interval (2 s) and then some: a second flush or a retry would show up.
    time.sleep(5)
    robots = sorted(r.query["access_token"] for r in messages(mock, name))
    assert robots == sorted([TOKEN, DB_TOKEN]), "each robot exactly once"
    for r in messages(mock, name):
        assert r.title == f"[FIRING:1] {name}" and "**故障pod**: db-0" in r.text
    assert am.webhook_requests() == 2 and am.webhook_requests_failed() == 0
    assert ngx.error_log().count("200 delivered, 1 alert") == 2


# ------------------------------------------------------------------------------------------
# 5. Prometheus -> Alertmanager -> nginx -> DingTalk


RULES = """
groups:
- name: dingtalk-e2e
  rules:
  - alert: DingtalkAlwaysFiring
    expr: vector(1)
    for: 0s
    labels:
      severity: critical
    annotations:
      message: The whole chain works, from a Prometheus rule to a DingTalk group
"""


@pytest.mark.skipif(not executable(PROMETHEUS_BIN),
                    reason=f"Prometheus not installed at {PROMETHEUS_BIN} "
                           "(apt-get install prometheus, or set PROMETHEUS_BIN)")
def test_prometheus_rule_reaches_dingtalk(nginx_factory, mock, chain):
    ngx = chain.watch(nginx_factory(webhook(mock)))
    am = chain.alertmanager(f"http://127.0.0.1:{ngx.port}/")
    started_at = time.monotonic()
    prom = chain.prometheus(am, RULES)
    name = "DingtalkAlwaysFiring"

    firing = wait_until(lambda: messages(mock, name, "FIRING"), 25,
                        "Prometheus' alert at the mock", chain.logs)
    msg = firing[0]
    assert msg.title == f"[FIRING:1] {name}"
    assert "**告警级别**: critical" in msg.text
    assert f"**告警类型**: {name}" in msg.text
    assert ("**告警详情**: The whole chain works, from a Prometheus rule to a DingTalk group"
            in msg.text)
    assert "故障pod" not in msg.text, "vector(1) has no pod label: no line for it"
    link = re.search(r"\[查看图表\]\(([^)]*)\)", msg.text)
    assert link, msg.text
    assert link.group(1).startswith(f"{prom.url}/graph?g0.expr=vector%281%29"), link.group(1)
    assert "&amp;" not in link.group(1), "the link's query string is kept as it is"
    assert am.webhook_requests_failed() == 0
    assert time.monotonic() - started_at < 30


def test_versions_used():
    """Documents which Alertmanager (and Prometheus) the run used; fails on an unusable binary."""
    am = version(ALERTMANAGER_BIN)
    assert am.startswith("alertmanager, version "), am
    print(am)
    if executable(PROMETHEUS_BIN):
        prom = version(PROMETHEUS_BIN)
        assert prom.startswith("prometheus, version "), prom
        print(prom)
