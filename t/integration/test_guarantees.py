"""Issue 22's delivery guarantees, each test an attempt to break one through real nginx.

The group's view is the truth: every test counts what the DingTalk stand-in posted (harness.py's
MockDingTalk.posted(): an errcode 0 when it answers, a request it read and then closed on without
answering), never what the module answered. The stand-in misbehaves only after it has read the
whole request, when DingTalk already has the message.

The guarantees, and the test that tries to break each:

- No blind resend. A request that reached DingTalk whole is in doubt until DingTalk answers:
  the module waits for the answer (dingtalk_answer_timeout, default 5m) instead of opening
  another attempt, and answers the webhook when the answer comes.
  A: DingTalk stalled 60 s while the real Alertmanager (group_interval 15s) retries: each
     message once, nothing lost (seen before: 8 copies of one message).
  B: 100 notifications, 40% of DingTalk's answers 12 s late or never (the connection closed after
     it posted): nothing lost, no copy after a late answer (seen before: 69 copies).
  C: 30 webhooks, a DingTalk that takes 3 s, 8 threads, dingtalk_timeout 10s: a 5xx only for
     what DingTalk never had, a 200 only for what it posted once, and after the client's
     retries each posted exactly once (seen before: 24 posted, 16 answered 200).
- The one exception: when no answer can ever come (the connection closed after the whole
  request, unanswered), the message may go once more on a fresh connection, never twice more.
  B: at most one copy of a message whose request was closed on.
  H: libcurl's own resend on a reused keep-alive connection that closed unanswered does not add
     a third send: that message is posted at most twice, and the webhook is not lost.
- Remember alerts, not messages. A notification is its groupKey, status and alerts (fingerprint
  or labels, status, startsAt, endsAt), not its bytes; a retry sends exactly the alerts not yet
  posted, in pages numbered on from the messages taken.
  D1: 80 alerts in 3 messages, the second refused once; the retry 7 s later is rendered afresh
      (durations cross the hour, so the pages move): every alert once (seen before: api-030
      never posted, and a 200).
  D2: the same with a reload between the tries that hides one more label: every alert once.
  F: the same notification twice at once (two replicas, in two workers; identical bodies, or
     bodies that differ in externalURL): posted once, both answered 200.
  G: a retry of a notification whose alerts were all posted: 200 at once, nothing sent.
- Folding storms (dingtalk_fold, default on): webhooks of one robot waiting for a rate-limit
  slot go out together in one message when a slot frees, each answered 200 when it is taken.
  fold: three held in two workers go as one message whose title says 3.
  E: 60 notifications in 5 s, 2 workers, dingtalk_rate_limit 20/60s, a stand-in that answers
     130101 past 20 a minute, clients retrying as Alertmanager does: every alert in the group
     within 70 s of its arrival, <= 20 messages in any 60 s, no 130101, nothing lost, no copies
     (seen before: 60 messages over 124 s).
  E with the real Alertmanager: the same storm from Debian's Alertmanager 0.25 (60 alerts with
     distinct alertnames posted to its API in 5 s, group_by [alertname], group_wait 1s,
     group_interval 10s), each alert's delay counted from its group's first notification (the
     "flushing" line of Alertmanager's log): the same goals, and Alertmanager hears a 200 for
     every group.

Clients retry as Alertmanager 0.25 does (harness.like_alertmanager): one flush of 60 s for B, C
and H; for E, group_interval 10s, so each flush has 10 s and starts its backoff again at 500 ms
(with a 5-minute group_interval the backoff's gaps reach 20-30 s within the first minute, and
no limiter that holds a webhook for `hold` could meet 70 s). Sizes: B keeps 100 notifications
(its time is the 12 s answers, not the count), with dingtalk_rate_limit off as in C (neither is
about the rate limit); E keeps the table's 60 in 5 s at 20/60s, its silence links off so that a
fold of forty alerts fits one message. Settings that no test names are at their defaults:
dingtalk_answer_timeout 5m (A's 60 s stall needs it), dingtalk_fold on.

The long rows (A, B, C, E and E with the real Alertmanager) run in background threads,
started together when the module's first test runs (only those selected), and are joined by
their tests at the end of the file; the others run meanwhile. The whole file takes about 70 s:
`make integration PYTEST_ARGS="-k test_guarantees"` (a path in PYTEST_ARGS comes after
t/integration, and the whole suite would run).
"""

import collections
import datetime
import http.client
import json
import random
import re
import threading
import time

import pytest

from alertmanager_harness import ALERTMANAGER_BIN, Alertmanager, executable, wait_until
from harness import (REPO, TOKEN, MockDingTalk, Nginx, alert, like_alertmanager, notification,
                     webhook)

TEMPLATES = f"{REPO}/templates"
REFUSED = {"body": {"errcode": 310000, "errmsg": "keywords not in content"}}


# ------------------------------------------------------------------------------------------
# helpers


def utc(t):
    return t.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def two_workers(mock, extra=""):
    """A webhook location and /pid (the worker's pid) on a reuseport listener, so that the
    kernel spreads connections over both workers and a test can pick a connection per worker."""
    return webhook(mock, extra + """
        }
        location = /pid {
            return 200 $pid;""").replace("listen 127.0.0.1:%PORT%;",
                                         "listen 127.0.0.1:%PORT% reuseport;")


def worker_connections(ngx, count, workers=2):
    """count kept-alive connections to ngx that together reach each of its workers, in turn:
    [worker 1, worker 2, worker 1, ...]; each a (pid, http.client.HTTPConnection)."""
    by_pid = collections.defaultdict(list)
    for _ in range(200):
        c = http.client.HTTPConnection("127.0.0.1", ngx.port, timeout=30)
        c.request("GET", "/pid")
        by_pid[int(c.getresponse().read())].append(c)
        if len(by_pid) >= workers and all(len(v) >= count // workers + 1 for v in by_pid.values()):
            break
    assert len(by_pid) == workers, f"every connection went to {list(by_pid)}"
    ordered = []
    for i in range(count):
        pid = list(by_pid)[i % workers]
        ordered.append((pid, by_pid[pid].pop()))
    for rest in by_pid.values():
        for c in rest:
            c.close()
    return ordered


def post_on(conn, payload, timeout=30):
    """POST on a kept-alive connection: (status, when the reply ended)."""
    conn.sock.settimeout(timeout)
    conn.request("POST", "/", body=json.dumps(payload),
                 headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status, time.time()


def posts_by_pod(mock, pods):
    """{pod: times the group saw it}."""
    return {p: len(recs) for p, recs in mock.posts_of(pods).items()}


def requests_of(mock, name):
    """Every request the stand-in read that names `name`, posted or not."""
    return [r for r in list(mock.received) if r.json and name in r.title + "\n" + r.text]


def story(mock):
    """What the stand-in saw, one line a request: for a failing test's message."""
    t0 = mock.received[0].at if mock.received else 0
    lines = []
    for r in list(mock.received):
        what = ("close" if r.answer and r.answer.get("close") else
                "drop" if r.answer is None else
                f"errcode {r.answer.get('body', mock.OK).get('errcode')}"
                if isinstance(r.answer.get("body", mock.OK), dict) else
                f"HTTP {r.answer.get('status')}")
        posted = f"posted at {r.posted_at - t0:6.1f}" if r.posted_at else "not posted"
        lines.append(f"  read at {r.at - t0:6.1f} {'reused' if r.reused else 'fresh '} "
                     f"{what:14} {posted}  {r.title if r.json else r.body[:40]!r}")
    return "\n".join(lines)


def title_numbers(title):
    m = re.search(r"\((\d+)/(\d+)\)$", title)
    return (int(m.group(1)), int(m.group(2))) if m else None


# ------------------------------------------------------------------------------------------
# the long rows run in background threads


BACKGROUND = {}  # test name -> its scenario


def background(test_name):
    def register(fn):
        BACKGROUND[test_name] = fn
        return fn
    return register


class Run(threading.Thread):
    def __init__(self, fn):
        super().__init__(name=fn.__name__, daemon=True)
        self.fn, self.error = fn, None

    def run(self):
        started = time.monotonic()
        self.value = None
        try:
            self.value = self.fn()  # a row may return what to print: its timeline
        except BaseException as e:  # an assertion, a skip: re-raised in the test
            self.error = e
        finally:
            self.took = time.monotonic() - started

    def result(self, timeout=420):
        self.join(timeout)
        assert not self.is_alive(), f"{self.fn.__name__} still running after {timeout} s"
        print(f"{self.fn.__name__} ran {self.took:.0f} s (in the background)")
        if self.value:
            print(self.value)
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def rows(request):
    """Starts the selected long rows at once, each in its thread; their tests join them."""
    selected = {item.name for item in request.session.items}
    runs = {name: Run(fn) for name, fn in BACKGROUND.items() if name in selected}
    for r in runs.values():
        r.start()
    yield runs
    for r in runs.values():
        r.join(420)


pytestmark = pytest.mark.usefixtures("rows")


def join_row(rows, request):
    run = rows.get(request.node.name) or Run(BACKGROUND[request.node.name])
    if not run.is_alive() and run.ident is None:
        run.start()
    run.result()


class Scene:
    """The processes of a background row (pytest's fixtures are for the test's own thread):
    on leaving, the stand-ins are released, nginx quits (a line in its error log that the
    nginx_factory fixture would fail on fails the row too) and every process is stopped."""

    def __init__(self):
        self.mocks, self.nginxes, self.procs = [], [], []

    def mock(self, **kw):
        m = MockDingTalk(**kw)
        self.mocks.append(m)
        return m

    def nginx(self, http, **kw):
        n = Nginx(http, **kw)
        self.nginxes.append(n)
        return n.start()

    def alertmanager(self, url, **kw):
        am = Alertmanager(url, **kw)
        self.procs.append(am)
        return am.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        problems = []
        try:
            for m in self.mocks:
                m.release()
            for p in self.procs:
                p.stop()
            for n in self.nginxes:
                try:
                    n.stop()
                finally:
                    problems += n.problems()
        finally:
            for m in self.mocks:
                m.close()
            for p in self.procs:
                p.cleanup()
        if exc[0] is None:
            assert not problems, "unexpected lines in nginx's error log:\n" + "\n".join(problems)


# ------------------------------------------------------------------------------------------
# the directives


def test_the_new_directives_are_accepted(mock):
    ngx = Nginx(f"""
    dingtalk_answer_timeout 5m;
    server {{
        listen 127.0.0.1:%PORT%;
        dingtalk_answer_timeout 2m;
        location = / {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            dingtalk_answer_timeout 30s;
            dingtalk_fold off;
        }}
        location = /folded {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            dingtalk_fold on;
        }}
    }}
""")
    ok, out = ngx.test_config()
    assert ok, out


# ------------------------------------------------------------------------------------------
# F: two at once


@pytest.mark.parametrize("second", ["the same body", "another replica's body"])
def test_f_the_same_notification_twice_at_once_is_posted_once(nginx_factory, mock, second):
    """Two Alertmanager replicas (or a retry beside its original) send one notification at
    once, through both workers, while DingTalk takes 2 s: one message, both answered 200."""
    ngx = nginx_factory(two_workers(mock), workers=2)
    (pid_a, a), (pid_b, b) = worker_connections(ngx, 2)
    mock.default = {"delay": 2}
    first = notification(alert(name="Replicated", pod="pod-f1"),
                         alert(name="Replicated", pod="pod-f2", status="resolved",
                               ends="2026-11-23T17:00:00Z"), group="Replicated")
    other = json.loads(json.dumps(first))
    if second != "the same body":
        other["externalURL"] = "http://alertmanager-1.example:9093"
    replies = {}

    def send(name, conn, payload, after):
        time.sleep(after)
        replies[name] = post_on(conn, payload)

    threads = [threading.Thread(target=send, args=("a", a, first, 0)),
               threading.Thread(target=send, args=("b", b, other, 0.3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    time.sleep(1)  # a send beside the first would show by now
    assert replies["a"][0] == 200 and replies["b"][0] == 200, replies
    posts = posts_by_pod(mock, ["pod-f1", "pod-f2"])
    assert posts == {"pod-f1": 1, "pod-f2": 1}, \
        f"posted {posts} (workers {pid_a} and {pid_b}):\n{story(mock)}"
    assert len(mock.received) == 1, story(mock)


# ------------------------------------------------------------------------------------------
# G: a retry of what was all posted


def test_g_a_retry_of_a_posted_notification_gets_200_and_sends_nothing(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock))
    alerts = [alert(name="Retried", pod="pod-g1"),
              alert(name="Retried", pod="pod-g2", status="resolved", ends="2026-11-23T17:00:00Z")]
    payload = notification(*alerts, group="Retried")
    assert ngx.post("/", payload).status == 200
    assert len(mock.posted()) == 1
    # Alertmanager's retry (its 200 was lost), then a replica's copy: alerts in another order,
    # its own externalURL
    replica = dict(payload, alerts=list(reversed(alerts)),
                   externalURL="http://alertmanager-1.example:9093")
    for again in (payload, replica):
        t = time.time()
        r = ngx.post("/", again)
        took = time.time() - t
        assert r.status == 200, r
        assert took < 1.0, f"answered after {took:.1f} s: not at once"
    time.sleep(0.5)
    assert len(mock.received) == 1, "a retry of what the group has seen sends nothing:\n" + \
        story(mock)


# ------------------------------------------------------------------------------------------
# H: libcurl's own resend


def test_h_a_reused_connection_closed_unanswered_is_posted_at_most_twice(nginx_factory, mock):
    """The stand-in reads a request on a kept-alive connection and closes it without an answer
    (it posted the message), then does the same to the next request: libcurl's habit of
    sending again on a reused connection that closed unanswered must not be a third send."""
    ngx = nginx_factory(webhook(mock))
    assert ngx.post("/", notification(alert(name="KeptAlive", pod="pod-h0"),
                                      group="KeptAlive")).status == 200
    mock.answer({"close": True}, {"close": True})  # then errcode 0 again
    tries = like_alertmanager(ngx, notification(alert(name="Closed", pod="pod-h1"),
                                                group="Closed"),
                              random.Random(8), flush_timeout=30)
    time.sleep(1)
    sent = requests_of(mock, "pod-h1")
    assert sent and sent[0].reused, \
        "the first send must come on the kept-alive connection:\n" + story(mock)
    posts = posts_by_pod(mock, ["pod-h1"])["pod-h1"]
    assert posts >= 1 and tries[-1].status == 200, f"lost: {tries}\n{story(mock)}"
    assert posts <= 2, f"posted {posts} times (once more at most):\n{story(mock)}"


# ------------------------------------------------------------------------------------------
# folding


def test_fold_held_webhooks_in_two_workers_go_as_one_message(nginx_factory, mock):
    """The slot is taken; three notifications (two alerts each) wait for the next in two
    workers: one message holds all six alerts, its title says 3, each webhook gets 200 once it
    was taken."""
    ngx = nginx_factory(two_workers(mock, "dingtalk_rate_limit 1/4s hold=8s;"), workers=2)
    conns = worker_connections(ngx, 3)
    assert ngx.post("/", notification(alert(name="Before", pod="pod-k0"),
                                      group="Before")).status == 200
    groups = ("FoldAlpha", "FoldBeta", "FoldGamma")
    payloads = [notification(alert(name=g, pod=f"pod-k{i}a"), alert(name=g, pod=f"pod-k{i}b"),
                             group=g) for i, g in enumerate(groups, start=1)]
    replies = {}

    def send(i):
        replies[i] = post_on(conns[i][1], payloads[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    time.sleep(0.5)
    pods = [f"pod-k{i}{x}" for i in (1, 2, 3) for x in "ab"]
    posted = mock.posted()
    statuses = [replies[i][0] for i in range(3)]
    folded = [p for p in pods if len(posted) > 1 and p in posted[1].text]
    assert len(posted) == 2 and folded == pods, \
        f"not one fold of the three: {len(posted) - 1} message(s) after the first, the next " \
        f"holding {folded}; the waiting webhooks answered {statuses}, in workers " \
        f"{[pid for pid, _ in conns]}:\n{story(mock)}"
    assert statuses == [200, 200, 200], replies
    fold = posted[1]
    assert re.search(r"(?<!\d)3(?!\d)", fold.title), \
        f"the title should say 3 notifications were folded: {fold.title!r}"
    assert all(replies[i][1] >= fold.posted_at for i in range(3)), \
        "a 200 before the message holding its alerts was taken"


# ------------------------------------------------------------------------------------------
# D1, D2: a retry rendered afresh sends exactly the alerts not posted


def hour_crossing(now):
    """80 firing alerts that started 1 h 59 min 56 s before `now`: rendered 7 s later, their
    durations say 2小时 instead of 1小时59分钟, and the pages hold more of them."""
    starts = utc(now - datetime.timedelta(hours=1, minutes=59, seconds=56))
    return notification(*[alert(pod=f"api-{i:03d}", message=f"pod api-{i:03d} " + "x" * 100,
                                starts=starts,
                                extra_labels={"team": "payments-platform-oncall-rotation"})
                          for i in range(80)])


ONCALL = f"dingtalk_max_messages 3; dingtalk_template {TEMPLATES}/oncall.mustache;"
HIDDEN = "dingtalk_hide_labels prometheus prometheus_replica uid endpoint service team;"


def refused_then_retried(ngx, mock, between=lambda: None):
    mock.answer(mock.OK, REFUSED)  # (2/3) refused once, then errcode 0
    start = time.time()
    payload = hour_crossing(datetime.datetime.now(datetime.timezone.utc))
    first = ngx.post("/", payload)
    assert 500 <= first.status < 600, f"a refusal Alertmanager retries: {first}"
    assert len(mock.received) == 2 and "1小时59分钟" in mock.received[0].text, story(mock)
    between()
    time.sleep(max(0.0, start + 7 - time.time()))
    retry = ngx.post("/", payload)
    resent = mock.received[2:]
    assert resent and "已持续 2小时（" in resent[0].text, "the retry crossed the hour"
    pods = [f"api-{i:03d}" for i in range(80)]
    posts = posts_by_pod(mock, pods)
    missing = [p for p, n in posts.items() if n == 0]
    twice = {p: n for p, n in posts.items() if n > 1}
    pages = []
    for r in mock.received:
        shown = re.findall(r"api-\d{3}", r.text)
        pages.append(f"{r.title[-6:]} errcode {r.answer.get('body', mock.OK)['errcode']} "
                     f"{min(shown)}..{max(shown)}")
    assert not missing and not twice, \
        f"never posted: {missing}; more than once: {twice}; retry answered {retry.status}; " \
        f"pages: {pages}"
    assert retry.status == 200, retry
    numbers = [title_numbers(r.title) for r in resent]
    assert [n for n, _ in numbers] == list(range(2, 2 + len(resent))) and \
        {total for _, total in numbers} == {1 + len(resent)}, \
        f"the retry's pages number on from the one taken: {[r.title for r in resent]}"


def test_d1_a_retry_rendered_afresh_posts_every_alert_once(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, ONCALL))
    refused_then_retried(ngx, mock)


def test_d2_a_reload_between_the_tries_moves_the_pages_every_alert_still_once(nginx_factory,
                                                                              mock):
    ngx = nginx_factory(webhook(mock, ONCALL))

    def reload_hiding_team():
        with open(ngx.conf_path) as f:
            conf = f.read()
        with open(ngx.conf_path, "w") as f:
            f.write(conf.replace(ONCALL, ONCALL + " " + HIDDEN))
        ngx.reload()

    refused_then_retried(ngx, mock, between=reload_hiding_team)
    assert "team%3D" in mock.received[0].text and "team%3D" not in mock.received[-1].text, \
        "the reload hid the label from the silence links"


# ------------------------------------------------------------------------------------------
# A: DingTalk stalled 60 s, the real Alertmanager retrying


def am_alert(pod, starts, ends):
    """One alert as Prometheus posts it to Alertmanager's /api/v2/alerts."""
    return {"labels": {"alertname": "payments", "severity": "critical", "namespace": "pay",
                       "pod": pod},
            "annotations": {"message": f"Pod pay/{pod} is failing"},
            "startsAt": utc(starts), "endsAt": utc(ends),
            "generatorURL": "http://prometheus.example/graph?g0.expr=up"}


@background("test_a_dingtalk_stalled_60s_with_alertmanager_retrying_posts_each_message_once")
def row_a():
    if not executable(ALERTMANAGER_BIN):
        pytest.skip(f"Alertmanager not installed at {ALERTMANAGER_BIN}")
    with Scene() as scene:
        mock = scene.mock()
        mock.stall()
        ngx = scene.nginx(webhook(mock))  # dingtalk_answer_timeout at its default: 5m
        am = scene.alertmanager(f"http://127.0.0.1:{ngx.port}/", group_interval="15s")
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        hour, second = datetime.timedelta(hours=1), datetime.timedelta(seconds=1)
        # pay-2 has ended by the first flush (group_wait 3s): [FIRING:2, RESOLVED:1] payments
        am.post_alerts([am_alert("pay-0", now, now + hour), am_alert("pay-1", now, now + hour),
                        am_alert("pay-2", now, now + second)])
        wait_until(lambda: mock.received, 20, "Alertmanager's first notification", am.log)
        time.sleep(max(0.0, mock.received[0].at + 60 - time.time()))
        mock.release()
        wait_until(lambda: am.webhook_requests() > am.webhook_requests_failed(), 45,
                   "a 200 for Alertmanager after DingTalk answered",
                   lambda: story(mock) + "\n" + ngx.error_log()[-3000:])
        time.sleep(5)  # a copy would be posted by now
        posted = mock.posted()
        posts = posts_by_pod(mock, ["pay-0", "pay-1", "pay-2"])
        assert all(posts.values()), f"lost: {posts}\n{story(mock)}"
        assert posted[0].title == "[FIRING:2, RESOLVED:1] payments", posted[0].title
        assert not mock.copies() and posts == {"pay-0": 1, "pay-1": 1, "pay-2": 1}, \
            f"{len(posted)} messages posted for one notification:\n{story(mock)}"
        return (f"{len(posted)} message posted for the notification; Alertmanager sent "
                f"{am.webhook_requests():.0f} webhooks ({am.webhook_requests_failed():.0f} "
                f"failed); DingTalk had {len(mock.received)} request(s)")


def test_a_dingtalk_stalled_60s_with_alertmanager_retrying_posts_each_message_once(rows,
                                                                                    request):
    join_row(rows, request)


# ------------------------------------------------------------------------------------------
# B: late and lost answers


B_NOTIFICATIONS = 100


@background("test_b_late_and_lost_answers_lose_nothing_and_copy_only_after_a_close")
def row_b():
    with Scene() as scene:
        mock = scene.mock()
        ngx = scene.nginx(webhook(mock, "dingtalk_rate_limit off;"), workers=2,
                          thread_pool="thread_pool dingtalk threads=64 max_queue=1024;")
        seen = collections.Counter()

        def behaviour(rec):
            """The k-th request of a notification: 20% answered 12 s late, 20% closed on
            unanswered (both after posting), the rest at once; seeded by notification and k,
            so the same whatever the arrival order."""
            pod = re.search(r"pod-b\d{3}", rec.text).group(0)
            k = seen[pod]
            seen[pod] += 1
            r = random.Random(f"B:{pod}:{k}").random()
            return {"delay": 12} if r < 0.2 else {"close": True} if r < 0.4 else {}

        mock.behaviour = behaviour
        pods = [f"pod-b{i:03d}" for i in range(B_NOTIFICATIONS)]

        def alertmanager(i):
            time.sleep(i * 5 / B_NOTIFICATIONS)  # 100 notifications over 5 s
            payload = notification(alert(name=f"Late{i:03d}", pod=pods[i]), group=f"Late{i:03d}")
            return like_alertmanager(ngx, payload, random.Random(i), flush_timeout=60)

        threads = []
        histories = [None] * B_NOTIFICATIONS
        for i in range(B_NOTIFICATIONS):
            t = threading.Thread(target=lambda i=i: histories.__setitem__(i, alertmanager(i)))
            t.start()
            threads.append(t)
        for t in threads:
            t.join(120)
        late = [r for r in mock.received if r.answer and r.answer.get("delay")]
        if late:  # what DingTalk answers late is posted when it answers
            time.sleep(max(0.0, max(r.at for r in late) + 12.5 - time.time()))

        posts = posts_by_pod(mock, pods)
        closed = {p for p in pods
                  if any(r.answer and r.answer.get("close") for r in requests_of(mock, p))}
        firsts = [requests_of(mock, p)[0] for p in pods if requests_of(mock, p)]
        assert sum(1 for r in firsts if r.answer.get("delay")) >= 10 and \
            sum(1 for r in firsts if r.answer.get("close")) >= 10, "the stand-in misbehaved"
        lost = [p for p in pods if posts[p] == 0]
        after_late = {p: posts[p] for p in pods if p not in closed and posts[p] > 1}
        after_close = {p: posts[p] for p in closed if posts[p] > 2}
        unanswered = [i for i, h in enumerate(histories) if not h or h[-1].status != 200]
        summary = (f"{sum(posts.values())} posted for {B_NOTIFICATIONS} notifications; lost "
                   f"{lost}; copies after a late answer {after_late}; more than one copy "
                   f"after a close {after_close}; without a 200: {unanswered}")
        assert not lost, summary
        assert not after_late, summary
        assert not after_close, summary
        return summary


def test_b_late_and_lost_answers_lose_nothing_and_copy_only_after_a_close(rows, request):
    join_row(rows, request)


# ------------------------------------------------------------------------------------------
# C: a slow DingTalk and a busy pool


C_WEBHOOKS = 30


@background("test_c_a_slow_dingtalk_5xx_only_for_what_it_never_had_each_posted_once")
def row_c():
    with Scene() as scene:
        mock = scene.mock()
        mock.default = {"delay": 3}  # DingTalk takes 3 s, and posts when it answers
        ngx = scene.nginx(webhook(mock, "dingtalk_timeout 10s; dingtalk_rate_limit off;"),
                          thread_pool="thread_pool dingtalk threads=8 max_queue=1024;")
        pods = [f"pod-c{i:03d}" for i in range(C_WEBHOOKS)]
        histories = [None] * C_WEBHOOKS

        def alertmanager(i):
            payload = notification(alert(name=f"Slow{i:03d}", pod=pods[i]), group=f"Slow{i:03d}")
            histories[i] = like_alertmanager(ngx, payload, random.Random(300 + i),
                                             flush_timeout=60)

        threads = [threading.Thread(target=alertmanager, args=(i,)) for i in range(C_WEBHOOKS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        time.sleep(3.5)  # what DingTalk read last is posted by now

        wrong = []
        for pod, tries in zip(pods, histories):
            sent = requests_of(mock, pod)
            for t in tries:
                had = [r for r in sent if r.at < t.end]
                posted = [r for r in sent if r.posted_at and r.posted_at <= t.end]
                if t.status is not None and t.status >= 500 and had:
                    wrong.append(f"{pod}: {t.status} after DingTalk had {len(had)} request(s)")
                if t.status == 200 and len(posted) != 1:
                    wrong.append(f"{pod}: 200 when posted {len(posted)} times")
        posts = posts_by_pod(mock, pods)
        first = [h[0].status for h in histories]
        summary = (f"first answers: {first.count(200)} x 200 of {C_WEBHOOKS}; posted "
                   f"{sum(posts.values())}; not 1: {({p: n for p, n in posts.items() if n != 1})}")
        assert not wrong, summary + "\n" + "\n".join(wrong)
        assert all(n == 1 for n in posts.values()), summary
        assert all(h[-1].status == 200 for h in histories), summary
        return summary


def test_c_a_slow_dingtalk_5xx_only_for_what_it_never_had_each_posted_once(rows, request):
    join_row(rows, request)


# ------------------------------------------------------------------------------------------
# E: a storm against DingTalk's real limit, folded


E_NOTIFICATIONS = 60


@background("test_e_a_storm_is_folded_every_alert_within_70s_at_dingtalks_limit")
def row_e():
    with Scene() as scene:
        mock = scene.mock()
        mock.dingtalk_limit = (20, 60.0)  # DingTalk's own: 130101 past 20 a minute
        # The silence links off: a fold of forty alerts stays within one message.
        ngx = scene.nginx(webhook(mock, "dingtalk_rate_limit 20/60s; dingtalk_silence_link off;"),
                          workers=2, thread_pool="thread_pool dingtalk threads=8 max_queue=1024;")
        pods = [f"pod-e{i:02d}" for i in range(E_NOTIFICATIONS)]
        histories = [None] * E_NOTIFICATIONS

        def alertmanager(i):
            """Alertmanager with group_interval 10s: each flush retries for 10 s, the next
            starts its backoff again; given up 75 s after the first POST."""
            time.sleep(i * 5 / E_NOTIFICATIONS)  # 60 notifications in 5 s
            payload = notification(alert(name=f"Storm{i:02d}", pod=pods[i]), group=f"Storm{i:02d}")
            histories[i] = like_alertmanager(ngx, payload, random.Random(500 + i),
                                             flush_timeout=10, group_interval=10, give_up=75)

        threads = [threading.Thread(target=alertmanager, args=(i,))
                   for i in range(E_NOTIFICATIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(150)
        time.sleep(2)  # a copy would be posted by now

        posted = mock.posts_of(pods)
        lost = [p for p in pods if not posted[p]]
        delay = {p: posted[p][0].posted_at - h[0].start
                 for p, h in zip(pods, histories) if posted[p]}
        late = {p: round(d) for p, d in delay.items() if d > 70}
        copies = {p: len(recs) for p, recs in posted.items() if len(recs) > 1}
        times = sorted(r.at for r in mock.posted())
        crowded = [round(times[k] - times[0]) for k in range(len(times) - 20)
                   if times[k + 20] - times[k] < 60]
        summary = (f"{len(times)} messages over {times[-1] - times[0]:.0f} s; lost {lost}; "
                   f"later than 70 s: {late}; longest delay "
                   f"{max(delay.values(), default=0):.0f} s; copies {copies}; 130101 answered "
                   f"{mock.over_limit} times; more than 20 in the 60 s from {crowded}")
        assert not lost and not late, summary
        assert not copies, summary
        assert mock.over_limit == 0, summary
        assert not crowded, summary
        return summary


def test_e_a_storm_is_folded_every_alert_within_70s_at_dingtalks_limit(rows, request):
    join_row(rows, request)


# ------------------------------------------------------------------------------------------
# E with the real Alertmanager: the same storm, its retries as Alertmanager 0.25 makes them


AM_FLUSHING = re.compile(r'^ts=(\S+) .*aggrGroup="\{\}:\{alertname=\\"(\w+)\\"\}" '
                         r'msg=flushing', re.M)


AM_SUCCESS = re.compile(r'^ts=(\S+) .*msg="Notify success"', re.M)


def am_time(ts):
    """time.time() of a timestamp of Alertmanager's log (2026-12-07T00:32:32.161Z)."""
    at = datetime.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ")
    return at.replace(tzinfo=datetime.timezone.utc).timestamp()


def am_first_flushes(am):
    """{alertname: when its group's first notification went (time.time())}, from Alertmanager's
    debug log: the "flushing" line of a group comes just before its webhook is sent."""
    first = {}
    for ts, name in AM_FLUSHING.findall(am.log()):
        first.setdefault(name, am_time(ts))
    return first


def am_notified(am):
    """Flushes Alertmanager ended with a 200 (its log's "Notify success"): once a group's
    did, its dedup stage sends nothing more for a repeat_interval, so one a group. (Its
    metrics cannot say it while flushes run: a flush counts as failed only at its end.)"""
    return am.log().count('msg="Notify success"')


@background("test_e_with_the_real_alertmanager_every_alert_within_70s_at_dingtalks_limit")
def row_e_alertmanager():
    """E's storm from Debian's Alertmanager 0.25: 60 alerts with distinct alertnames posted to
    its API within 5 s, one group each (group_by [alertname], group_wait 1s). group_interval
    10s: a failed flush is retried within its deadline, max(group_interval, 10s) = 10 s, with
    backoff from 500 ms (gaps of 4 s at most), then again at the next flush, 10 s after the last
    began, its backoff from 500 ms again. So a webhook of every waiting group comes every few
    seconds, and one that came within `hold` of the slot's freeing waits for it on a timer; a
    longer group_interval stretches the gaps (to 20-30 s within the first minute of a 5m one)
    but the fold does not need them: every waiting notification is in the robot's room, and
    any request of the robot that finds the slot carries them all. repeat_interval 1h: no
    reminder within the test."""
    if not executable(ALERTMANAGER_BIN):
        pytest.skip(f"Alertmanager not installed at {ALERTMANAGER_BIN}")
    with Scene() as scene:
        mock = scene.mock()
        mock.dingtalk_limit = (20, 60.0)  # DingTalk's own: 130101 past 20 a minute
        ngx = scene.nginx(webhook(mock, "dingtalk_rate_limit 20/60s; dingtalk_silence_link off;"),
                          workers=2, thread_pool="thread_pool dingtalk threads=8 max_queue=1024;")
        am = scene.alertmanager(f"http://127.0.0.1:{ngx.port}/", group_wait="1s",
                                group_interval="10s", repeat_interval="1h")
        names = [f"AmStorm{i:02d}" for i in range(E_NOTIFICATIONS)]
        pods = [f"pod-am{i:02d}" for i in range(E_NOTIFICATIONS)]
        begin = time.time()
        for i, (name, pod) in enumerate(zip(names, pods)):  # 60 alerts in 5 s
            time.sleep(max(0.0, begin + i * 5 / E_NOTIFICATIONS - time.time()))
            now = datetime.datetime.now(datetime.timezone.utc)
            a = am_alert(pod, now, now + datetime.timedelta(hours=1))
            a["labels"]["alertname"] = name
            am.post_alerts([a])
        posted_in = time.time() - begin

        def diagnostics():
            return (f"Alertmanager notified {am_notified(am):.0f} groups\n{story(mock)}\n"
                    + ngx.error_log()[-4000:])

        wait_until(lambda: am_notified(am) >= E_NOTIFICATIONS, begin + 95 - time.time(),
                   "Alertmanager's 60 groups notified", diagnostics)
        time.sleep(3)  # a copy would be posted by now

        first = am_first_flushes(am)
        posted = mock.posts_of(pods)
        lost = [p for p in pods if not posted[p]]
        delay = {n: posted[p][0].posted_at - first[n]
                 for n, p in zip(names, pods) if posted[p] and n in first}
        late = {n: round(d) for n, d in delay.items() if d > 70}
        copies = {p: len(recs) for p, recs in posted.items() if len(recs) > 1}
        messages = mock.posted()
        times = sorted(r.at for r in messages)
        crowded = [round(times[k] - times[0]) for k in range(len(times) - 20)
                   if times[k + 20] - times[k] < 60]
        t0 = min(first.values())
        folds = [(r.at - t0, sum(p in r.text for p in pods)) for r in messages
                 if sum(p in r.text for p in pods) > 1]
        log = ngx.error_log()
        timeline = (
            f"60 alerts posted to Alertmanager in {posted_in:.1f} s; its first notification at "
            f"0.0 s, its last group's first at {max(first.values()) - t0:.1f} s; "
            f"{len(times)} messages at the stand-in: the first 20 from "
            f"{times[0] - t0:.1f} s to {times[min(19, len(times) - 1)] - t0:.1f} s, "
            f"folds (at s, notifications): {[(round(t, 1), n) for t, n in folds]}; "
            f"delays {min(delay.values(), default=0):.1f}-{max(delay.values(), default=0):.1f} s; "
            f"Alertmanager sent {am.webhook_requests():.0f} webhooks "
            f"({am.webhook_requests_failed():.0f} failed), its last 200 at "
            f"{max(am_time(ts) for ts in AM_SUCCESS.findall(am.log())) - t0:.1f} s; nginx: "
            f"{log.count('waits to go with the others')} waited in the room, "
            f"{log.count('one message for ')} folds, {log.count('answered 503')} answered 503, "
            f"{log.count('client closed the connection while')} left while waiting")
        summary = (f"{timeline}; lost {lost}; later than 70 s: {late}; copies {copies}; "
                   f"130101 answered {mock.over_limit} times; more than 20 in the 60 s from "
                   f"{crowded}")
        assert len(first) == E_NOTIFICATIONS, f"flushes seen for {sorted(first)}"
        assert not lost and not late, summary + "\n" + story(mock)
        assert not copies, summary + "\n" + story(mock)
        assert mock.over_limit == 0, summary + "\n" + story(mock)
        assert not crowded, summary + "\n" + story(mock)
        return timeline


def test_e_with_the_real_alertmanager_every_alert_within_70s_at_dingtalks_limit(rows, request):
    join_row(rows, request)
