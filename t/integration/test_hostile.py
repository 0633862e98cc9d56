"""Hostile and odd request bodies, table-driven, against one nginx for the whole module.

Each row is one POST. Bad bodies (not an Alertmanager notification) must get 400 with a reason
naming the problem and send nothing; odd-but-valid bodies must get 200 and one well-formed
markdown message. After every row the worker must still be the same process and the error log
must hold no [alert]/[crit]/[emerg] and no sanitizer report.

Rules followed (docs/operations.md, docs/messages.md): wrong types, invalid JSON, invalid UTF-8
and duplicate keys are 400; missing fields and JSON null are "absent" and fine; unknown fields
are ignored; `version` is not checked (any string passes, a non-string is a type error); every
value is escaped, so nothing in a label can add a line, a heading, a link, or HTML to the
message.

"""

import json
import re
from collections import namedtuple

import pytest

from harness import SECRET, TOKEN, MockDingTalk, Nginx, alert, notification, webhook

MAX_REQUEST = 19500  # kMaxRequestBytes: DingTalk's 20000 with a margin

# ------------------------------------------------------------------------------------------
# one nginx and one mock for the whole module


class Hostile:
    def __init__(self):
        self.mock = MockDingTalk(secret=SECRET)
        # 10 MB bodies need a bigger limit; ~50 messages in a minute need no rate limit
        # a robot per row (?robot=N names it): rows whose alerts are alike are each posted,
        # where one robot would post one notification once
        self.ngx = Nginx(webhook(self.mock, "client_max_body_size 32m;\n"
                                            "            dingtalk_max_body_size 32m;\n"
                                            "            dingtalk_rate_limit off;\n"
                                            f"            dingtalk_token {TOKEN}$arg_robot;"
                                            ).replace(f"dingtalk_token {TOKEN};", "", 1))
        self.rows = 0
        self.ngx.start()
        self.workers = self.ngx.workers()
        assert len(self.workers) == 1, self.workers

    def assert_healthy(self, running=True):
        if running:
            assert self.ngx.workers() == self.workers, "the worker died and was respawned"
        bad = [line for line in self.ngx.error_log().splitlines()
               if any(tag in line for tag in ("[alert]", "[crit]", "[emerg]",
                                              "AddressSanitizer", "runtime error:",
                                              "LeakSanitizer"))]
        assert not bad, "unexpected lines in nginx's error log:\n" + "\n".join(bad)

    def close(self):
        try:
            self.ngx.stop()
        finally:
            self.mock.close()


@pytest.fixture(scope="module")
def hostile():
    h = Hostile()
    yield h
    h.close()
    h.assert_healthy(running=False)


# ------------------------------------------------------------------------------------------
# bodies


def enc(obj):
    """Compact UTF-8 JSON, as Alertmanager (Go) writes it."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def note(*alerts, **top):
    """notification() around alerts of any shape (fields may be missing or of the wrong type)."""
    n = notification()
    n["alerts"] = list(alerts)
    firing = any(not isinstance(a, dict) or a.get("status") != "resolved" for a in alerts)
    n["status"] = "firing" if firing else "resolved"
    n.update(top)
    return n


def drop(d, *keys):
    for k in keys:
        d.pop(k, None)
    return d


def with_alert(**fields):
    """A notification whose one alert has these fields replaced."""
    a = alert()
    a.update(fields)
    return note(a)


def with_labels(**labels):
    return note(alert(extra_labels=labels))


def splice(obj, raw, marker="@@RAW@@"):
    """JSON text of obj with the string "@@RAW@@" (quotes included) replaced by raw bytes."""
    text = enc(obj)
    assert text.count(f'"{marker}"'.encode()) == 1
    return text.replace(f'"{marker}"'.encode(), raw)


def label_raw(raw):
    """One label whose value is the raw bytes between the quotes."""
    return splice(with_labels(x="@@RAW@@"), b'"' + raw + b'"')


FULL = enc(note(alert(message="数据库连接数过高", extra_labels={"instance": "10.0.0.1:9100"})))
FULL_ASCII = json.dumps(note(alert(message="数据库连接数过高"))).encode()  # \uXXXX escapes


def cut_after(text, fragment, extra=0):
    """text up to and including the first `fragment`, plus `extra` bytes."""
    i = text.index(fragment) + len(fragment) + extra
    return text[:i]


def many_labels(total_bytes):
    value = "v" * 90
    n = total_bytes // (len(value) + 20)
    return {f"label_{i:07d}": value for i in range(n)}


HOSTILE = ('<script>alert(1)</script> <img src=x onerror=alert(2)> **bold** __u__ _i_ `code` '
           '~~s~~ [link](javascript:alert(3)) ![img](http://evil.example/x.png) '
           '\n# heading\n## h2\r\n> quote\n- item\n1. one\n|a|b|\n---\n<b>&amp;</b> &#x3C; \\')


def hostile_everywhere():
    a = {
        "status": "firing",
        "labels": {"alertname": HOSTILE, "severity": HOSTILE, "pod": HOSTILE,
                   "namespace": HOSTILE, HOSTILE: HOSTILE, "instance": HOSTILE},
        "annotations": {"message": HOSTILE, HOSTILE: HOSTILE},
        "startsAt": "2026-11-23T16:04:05Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "javascript:alert(4)//http://x",
        "fingerprint": HOSTILE,
    }
    r = dict(a, status="resolved", endsAt="2026-11-23T17:04:05Z",
             generatorURL='http://x.example/g?a=<script>&b="q")](javascript:alert(5))')
    return {"version": HOSTILE, "groupKey": HOSTILE, "truncatedAlerts": 2, "status": "firing",
            "receiver": HOSTILE, "groupLabels": {"alertname": HOSTILE, HOSTILE: HOSTILE},
            "commonLabels": {HOSTILE: HOSTILE}, "commonAnnotations": {HOSTILE: HOSTILE},
            "externalURL": 'http://am.example/)](javascript:alert(6)) "<x>"', "alerts": [a, r]}


EMOJI = "🔥🚨 数据库主库 データベース 데이터베이스 👩‍👩‍👧‍👦 🇨🇳"


def emoji_everywhere():
    a = alert(name="磁盘将满🔥", severity="严重🚨", pod="支付-api-0💳", namespace="生产🏭",
              message=EMOJI, extra_labels={"机房🏢": "上海-张江🌃", "🔑": "🔒"})
    a["annotations"]["摘要📝"] = EMOJI
    return note(a, groupLabels={"alertname": "磁盘将满🔥", "集群": "华东🌏"},
                commonLabels={"alertname": "磁盘将满🔥"}, receiver="钉钉📣",
                externalURL="http://告警.example/管理")


def five_thousand(truncated=0):
    alerts = [alert(pod=f"pod-{i}", status="resolved" if i % 2 else "firing",
                    ends="2026-11-23T17:00:00Z" if i % 2 else "0001-01-01T00:00:00Z")
              for i in range(5000)]
    return note(*alerts, truncatedAlerts=truncated)


def bad_last_of_5000():
    n = note(*[alert(pod=f"pod-{i}") for i in range(5000)])
    n["alerts"][4999]["labels"]["severity"] = 3
    return n


def nested(opening, closing, depth, inner=b"1"):
    return opening * depth + inner + closing * depth


# ------------------------------------------------------------------------------------------
# checks of the message DingTalk received (200 rows); each takes (rec, reply)

FIELDS = ("告警级别|告警类型|故障pod|故障节点|故障实例|故障deployment|故障statefulset|故障daemonset|"
          "故障job|故障namespace|告警详情|告警状态|触发时间|结束时间|其他标签")
LINK = r"\((?i:https?)://[^\s()<>\"]*\)"
LINE_OK = re.compile(r"### \\\[(FIRING:\d+|RESOLVED:\d+|FIRING:\d+, RESOLVED:\d+)\\\] .*"
                     r"|#### (告警中|已恢复) \(\d+\)"
                     r"|---"
                     rf"|\*\*({FIELDS})\*\*: .*"
                     r"|\*\*另有 \d+ 条告警未显示\*\*.*"
                     rf"|(\[查看图表\]{LINK})?( · )?(\[静默\]{LINK})?")
MODULE_HEADING = re.compile(r"### \\\[.*|#### (告警中|已恢复) \(\d+\)")


def unescaped_specials(s):
    """Markdown specials not preceded by the module's backslash."""
    found, i = [], 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] in "*_[]`~":
            found.append(s[i])
        i += 1
    return found


def check_message(rec, reply):
    """What holds for every message, whatever the body."""
    assert len(rec.body) <= MAX_REQUEST, len(rec.body)
    rec.body.decode("utf-8")  # strict: no invalid UTF-8, no encoded surrogates
    assert rec.json is not None, rec.body[:300]
    assert rec.json["msgtype"] == "markdown"
    title, text = rec.json["markdown"].get("title"), rec.json["markdown"].get("text")
    assert isinstance(title, str) and title.startswith("["), title
    assert isinstance(text, str) and text
    assert not re.search(r"[\x00-\x1f\x7f]", title), title
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", text), "control characters in the text"
    assert "<" not in text and ">" not in text, "raw HTML in the text"
    outside_links = re.sub(r"(?<!\\)\]\([^)]*\)", "]()", text)
    assert not re.search(r"&(?!amp;|lt;|gt;)", outside_links), "a bare & (entity injection)"
    for line in text.split("\n"):
        if not line:
            continue
        assert LINE_OK.fullmatch(line), f"a line the module did not make: {line[:200]!r}"
        if line.startswith("#"):
            assert MODULE_HEADING.fullmatch(line), line[:200]
        if line.startswith("**") and not line.startswith("**另有"):
            value = line.split("**: ", 1)[1]
            assert not unescaped_specials(value), f"unescaped markdown in {line[:200]!r}"
        if line.startswith("### "):
            assert not unescaped_specials(line[4:]), line[:200]
    for target in re.findall(r"(?<!\\)\]\(([^)]*)\)", text):  # links: an unescaped ](
        assert re.match(r"(?i)https?://", target), f"link to {target!r}"
    assert reply["ok"] is True and reply["errcode"] == 0
    assert reply["shown"] == text.count("**告警状态**"), "reply's shown = alerts in the text"
    assert reply["shown"] >= 1


def shows(*fragments):
    def check(rec, reply):
        for f in fragments:
            assert f in rec.text, (f, rec.text[:2000])
    return check


def lacks(*fragments):
    def check(rec, reply):
        for f in fragments:
            assert f not in rec.text, (f, rec.text[:2000])
    return check


def title_is(expected):
    def check(rec, reply):
        assert rec.title == expected, rec.title
    return check


def title_has(*fragments):
    def check(rec, reply):
        for f in fragments:
            assert f in rec.title, (f, rec.title)
    return check


def all_of(*checks):
    def check(rec, reply):
        for c in checks:
            c(rec, reply)
    return check


def alerts_in_reply(total, shown_below=None):
    def check(rec, reply):
        assert reply["alerts"] == total, reply
        if shown_below is not None:
            assert reply["shown"] < shown_below, reply
    return check


def cut_with_ellipsis(field):
    def check(rec, reply):
        line = next(line for line in rec.text.split("\n") if line.startswith(f"**{field}**"))
        assert line.endswith("…"), line[-50:]
        assert len(line.encode()) < 4200, len(line.encode())
    return check


def omitted_count(truncated=0):
    def check(rec, reply):
        hidden = reply["alerts"] - reply["shown"] + truncated
        assert f"**另有 {hidden} 条告警未显示**" in rec.text, rec.text[-500:]
        assert "[在 Alertmanager 中查看全部](http://alertmanager.example:9093/#/alerts)" in rec.text
    return check


def no_line_breaks_unicode(rec, reply):
    """docs/messages.md: line breaks and control characters become spaces (C1 controls and
    U+2028/9 too)."""
    for ch in ("\u0085", "\u2028", "\u2029", "\u0080", "\u009f"):
        assert ch not in rec.text and ch not in rec.title, repr(ch)
    for line in rec.text.splitlines():  # Python splits on every Unicode line break
        if line.startswith("#"):
            assert MODULE_HEADING.fullmatch(line), line


# ------------------------------------------------------------------------------------------
# the table: (id, body, status, expect); expect is a reason substring for 400 rows and a check
# (or None) for 200 rows. `body` may be a callable, built when its row runs.

Row = namedtuple("Row", "id body status expect")
ROWS = [
    # --- truncated JSON ------------------------------------------------------------------
    Row("trunc_open_brace", b"{", 400, "invalid JSON"),
    Row("trunc_after_key", cut_after(FULL, b'"version"'), 400, "invalid JSON"),
    Row("trunc_after_colon", cut_after(FULL, b'"alerts":'), 400, "invalid JSON"),
    Row("trunc_mid_string", cut_after(FULL, b'"KubePod'), 400, "invalid JSON"),
    Row("trunc_mid_utf8_char", cut_after(FULL, "数据".encode(), 1), 400, "invalid JSON"),
    Row("trunc_mid_u_escape", cut_after(FULL_ASCII, b"\\u6570\\u63", 0), 400, "invalid JSON"),
    Row("trunc_mid_number", b'{"alerts":[{}],"truncatedAlerts":12', 400, "invalid JSON"),
    Row("trunc_mid_literal", b'{"alerts":[{"labels":null}],"x":tr', 400, "invalid JSON"),
    Row("trunc_last_byte", FULL[:-1], 400, "invalid JSON"),
    Row("trunc_half", FULL[:len(FULL) // 2], 400, "invalid JSON"),
    # --- deep nesting ----------------------------------------------------------------------
    Row("deep_array_10000", nested(b"[", b"]", 10000), 400, "depth"),
    Row("deep_object_10000", nested(b'{"a":', b"}", 10000), 400, "depth"),
    Row("deep_array_in_label", splice(with_labels(x="@@RAW@@"), nested(b"[", b"]", 10000)),
        400, "depth"),
    Row("deep_object_in_alert", splice(with_alert(extra="@@RAW@@"),
                                       nested(b'{"a":', b"}", 10000)), 400, "depth"),
    Row("nesting_1000_in_unknown_field_ok",
        splice(note(alert(), extra="@@RAW@@"), nested(b'{"a":[', b"]}", 500)), 200,
        alerts_in_reply(1)),
    # --- size --------------------------------------------------------------------------------
    Row("labels_10mb", lambda: enc(note(alert(extra_labels=many_labels(10 << 20)))), 200,
        cut_with_ellipsis("其他标签")),
    Row("group_labels_2mb_title", lambda: enc(note(alert(), groupLabels=many_labels(2 << 20))),
        200, lambda rec, reply: (len(rec.title.encode()) <= 132 and rec.title.endswith("…")) or
        pytest.fail(rec.title)),
    Row("label_value_1mb", lambda: enc(note(alert(pod="x" * (1 << 20)))), 200,
        cut_with_ellipsis("故障pod")),
    Row("annotation_1mb_cjk", lambda: enc(note(alert(message="告警" * (1 << 19)))), 200,
        cut_with_ellipsis("告警详情")),
    Row("label_name_1mb", lambda: enc(with_labels(**{"n" * (1 << 20): "v"})), 200,
        shows("n" * 200 + "…=v")),  # a name is cut when read (256 bytes), and says so
    Row("alerts_5000", lambda: enc(five_thousand()), 200,
        all_of(alerts_in_reply(5000, shown_below=5000), omitted_count(),
               shows("#### 告警中 (2500)"))),
    Row("alerts_5000_and_truncated", lambda: enc(five_thousand(truncated=7)), 200,
        all_of(alerts_in_reply(5000, shown_below=5000), omitted_count(truncated=7),
               shows("7 条被 Alertmanager max_alerts 截断"))),
    Row("alerts_5000_last_bad", lambda: enc(bad_last_of_5000()), 400,
        "alerts[4999].labels.severity must be a string"),
    # --- NUL ---------------------------------------------------------------------------------
    Row("nul_raw_in_value", label_raw(b"a\x00b"), 400, "invalid JSON"),
    Row("nul_raw_in_key", enc(note(alert())).replace(b'"severity"', b'"sev\x00erity"'), 400,
        "invalid JSON"),
    Row("nul_raw_between_tokens", enc(note(alert())).replace(b'{"', b'{\x00"', 1), 400,
        "invalid JSON"),
    Row("nul_raw_after_json", enc(note(alert())) + b"\x00", 400, "invalid JSON"),
    Row("nul_escaped_in_key", enc(with_labels(**{"a\u0000b": "v"})), 400, "NUL byte in object key"),
    pytest.param(Row("nul_escaped_in_value", enc(with_labels(x="a\u0000b")), 200,
                     shows("x=a b")), id="nul_escaped_in_value"),
    # --- invalid UTF-8 -------------------------------------------------------------------------
    Row("utf8_lone_continuation", label_raw(b"a\x80b"), 400, "invalid JSON"),
    Row("utf8_overlong_slash", label_raw(b"\xc0\xaf"), 400, "invalid JSON"),
    Row("utf8_overlong_nul", label_raw(b"\xc0\x80"), 400, "invalid JSON"),
    Row("utf8_surrogate_encoded", label_raw(b"\xed\xa0\x80\xed\xb0\x80"), 400, "invalid JSON"),
    Row("utf8_truncated_in_value", label_raw(b"\xe6\x95"), 400, "invalid JSON"),
    Row("utf8_truncated_at_end", enc(note(alert())) + b"\xe6\x95", 400, "invalid JSON"),
    Row("utf8_invalid_in_key", enc(note(alert())).replace(b'"severity"', b'"sev\xfferity"'),
        400, "invalid JSON"),
    Row("utf8_above_u10ffff", label_raw(b"\xf4\x90\x80\x80"), 400, "invalid JSON"),
    pytest.param(Row("bad_escape_cut_multibyte", label_raw("\\u00🔥".encode()), 400,
                     "invalid escape"), id="bad_escape_cut_multibyte"),
    pytest.param(Row("bad_escape_cut_2byte", label_raw("\\u12é".encode()), 400,
                     "invalid escape"), id="bad_escape_cut_2byte"),
    Row("bad_token_then_multibyte", '{"alerts":[{}],"a":1€}'.encode(), 400, "invalid JSON"),
    Row("escaped_lone_surrogate", label_raw(b"\\ud800"), 400, "invalid JSON"),
    Row("escaped_surrogate_pair_ok", label_raw(b"\\ud83d\\udd25"), 200, shows("x=🔥")),
    Row("noncharacters_ok", enc(with_labels(x="\ufffe\uffff\ufdd0")), 200,
        shows("x=\ufffe\uffff\ufdd0")),
    # --- wrong types where strings (or maps) belong --------------------------------------------
    Row("label_value_number", enc(with_labels(x=3)), 400, "alerts[0].labels.x must be a string"),
    Row("label_value_true", enc(with_labels(x=True)), 400, "alerts[0].labels.x must be a string"),
    Row("label_value_null", enc(with_labels(x=None)), 400, "alerts[0].labels.x must be a string"),
    Row("label_value_array", enc(with_labels(x=["a"])), 400, "alerts[0].labels.x must be a string"),
    Row("label_value_object", enc(with_labels(x={"a": "b"})), 400,
        "alerts[0].labels.x must be a string"),
    Row("labels_array", enc(with_alert(labels=[["a", "b"]])), 400,
        "alerts[0].labels must be an object"),
    Row("labels_string", enc(with_alert(labels="a=b")), 400, "alerts[0].labels must be an object"),
    Row("annotation_value_number", enc(with_alert(annotations={"message": 1.5})), 400,
        "alerts[0].annotations.message must be a string"),
    Row("annotations_false", enc(with_alert(annotations=False)), 400,
        "alerts[0].annotations must be an object"),
    Row("status_number", enc(note(alert(), status=1)), 400, "status must be a string"),
    Row("alert_status_true", enc(with_alert(status=True)), 400,
        "alerts[0].status must be a string"),
    Row("alert_status_unknown", enc(with_alert(status="FIRING")), 400,
        'alerts[0].status must be "firing" or "resolved"'),
    Row("starts_at_number", enc(with_alert(startsAt=1764000000)), 400,
        "alerts[0].startsAt must be a string"),
    Row("ends_at_object", enc(with_alert(endsAt={})), 400, "alerts[0].endsAt must be a string"),
    Row("generator_url_array", enc(with_alert(generatorURL=["http://x"])), 400,
        "alerts[0].generatorURL must be a string"),
    Row("fingerprint_number", enc(with_alert(fingerprint=123)), 400,
        "alerts[0].fingerprint must be a string"),
    Row("external_url_number", enc(note(alert(), externalURL=9093)), 400,
        "externalURL must be a string"),
    Row("receiver_false", enc(note(alert(), receiver=False)), 400, "receiver must be a string"),
    Row("group_key_object", enc(note(alert(), groupKey={})), 400, "groupKey must be a string"),
    Row("group_labels_array", enc(note(alert(), groupLabels=["alertname"])), 400,
        "groupLabels must be an object"),
    Row("group_labels_value_number", enc(note(alert(), groupLabels={"alertname": 7})), 400,
        "groupLabels.alertname must be a string"),
    Row("common_labels_value_bool", enc(note(alert(), commonLabels={"a": False})), 400,
        "commonLabels.a must be a string"),
    Row("common_annotations_string", enc(note(alert(), commonAnnotations="x")), 400,
        "commonAnnotations must be an object"),
    Row("alerts_object", enc(note(alert(), alerts={"0": alert()})), 400, "alerts must be an array"),
    Row("alerts_string", enc(note(alert(), alerts="[]")), 400, "alerts must be an array"),
    Row("alert_is_string", enc(note(alert(), alerts=[alert(), "alert"])), 400,
        "alerts[1] must be an object"),
    Row("alert_is_null", enc(note(alert(), alerts=[None])), 400, "alerts[0] must be an object"),
    Row("type_error_with_1mb_label_name", lambda: enc(with_labels(**{"n" * (1 << 20): 1})), 400,
        "alerts[0].labels.nnnn"),
    Row("type_error_label_name_with_crlf", enc(with_labels(**{"a\r\nb\tc": 1})), 400,
        "alerts[0].labels.a"),
    Row("nulls_are_absent", enc(note(with_alert(labels=None, annotations=None, startsAt=None,
                                                endsAt=None, generatorURL=None, status=None,
                                                fingerprint=None)["alerts"][0],
                                     version=None, status=None, groupLabels=None, receiver=None,
                                     commonLabels=None, externalURL=None, truncatedAlerts=None,
                                     groupKey=None, commonAnnotations=None)), 200,
        all_of(title_is("[FIRING:1] Alertmanager"), shows("**触发时间**: -"),
               lacks("查看图表", "告警级别", "**: -\n"))),
    # --- duplicate keys ------------------------------------------------------------------------
    Row("duplicate_top_alerts", b'{"alerts":[{}],"alerts":[{}]}', 400, "duplicate object key"),
    Row("duplicate_top_status", enc(note(alert())).replace(b'{"version"',
                                                           b'{"status":"resolved","version"'),
        400, "duplicate object key"),
    Row("duplicate_in_labels",
        enc(note(alert())).replace(b'"severity":"critical"',
                                   b'"severity":"info","severity":"critical"'),
        400, "duplicate object key"),
    Row("duplicate_in_annotations",
        b'{"alerts":[{"annotations":{"message":"a","message":"b"}}]}', 400,
        "duplicate object key"),
    Row("duplicate_in_group_labels", b'{"groupLabels":{"a":"1","a":"1"},"alerts":[{}]}', 400,
        "duplicate object key"),
    # --- missing fields --------------------------------------------------------------------
    Row("alerts_only", b'{"alerts":[{}]}', 200,
        all_of(title_is("[FIRING:1] Alertmanager"), shows("**告警状态**: firing"))),
    Row("no_status_anywhere", enc(drop(note(drop(alert(), "status")), "status")), 200,
        title_is("[FIRING:1] KubePodCrashLooping")),
    Row("no_status_in_alert_group_resolved",
        enc(drop(note(drop(alert(ends="2026-11-23T17:00:00Z"), "status"), status="resolved"))),
        200, all_of(title_is("[RESOLVED:1] KubePodCrashLooping"),
                    shows("**结束时间**: 2026-11-24 01:00:00 +08:00"))),
    Row("no_labels", enc(note(drop(alert(), "labels"))), 200,
        all_of(shows("**告警详情**: Pod kube-ops/api-0", "**告警状态**: firing"),
               lacks("告警级别", "告警类型", "故障", "其他标签"))),
    Row("no_starts_at", enc(note(drop(alert(), "startsAt"))), 200, shows("**触发时间**: -")),
    Row("no_alerts", enc(drop(note(alert()), "alerts")), 400, 'no "alerts" array'),
    Row("alerts_empty", enc(note(alert(), alerts=[])), 400, "alerts is empty"),
    Row("empty_object", b"{}", 400, 'no "alerts" array'),
    # --- unknown fields at every level ----------------------------------------------------------
    Row("unknown_fields_everywhere",
        enc(note(dict(alert(extra_labels={"x_extra": "shown"}),
                      annotations={"message": "m", "x_note": "hidden"},
                      x_alert={"deep": [1, 2.5, None, True]}, valueString="[ var='A' ]"),
                 x_top=[{"a": {}}], groupLabels={"alertname": "G", "x_group": "H"})), 200,
        all_of(shows("x\\_extra=shown", "**告警详情**: m"), lacks("hidden"),
               title_is("[FIRING:1] G H"))),
    # --- version: not checked, but a string ---------------------------------------------------
    Row("version_3", enc(note(alert(), version="3")), 200, alerts_in_reply(1)),
    Row("version_5", enc(note(alert(), version="5")), 200, alerts_in_reply(1)),
    Row("version_empty", enc(note(alert(), version="")), 200, alerts_in_reply(1)),
    Row("version_missing", enc(drop(note(alert()), "version")), 200, alerts_in_reply(1)),
    Row("version_number_4", enc(note(alert(), version=4)), 400, "version must be a string"),
    Row("version_array", enc(note(alert(), version=["4"])), 400, "version must be a string"),
    # --- empty maps and strings ---------------------------------------------------------------
    Row("empty_maps", enc(note(dict(alert(), labels={}, annotations={}), groupLabels={},
                               commonLabels={}, commonAnnotations={})), 200,
        all_of(title_is("[FIRING:1] Alertmanager"), shows("**告警状态**: firing"),
               lacks("告警类型", "告警详情"))),
    Row("empty_strings", enc({"version": "", "groupKey": "", "status": "", "receiver": "",
                              "groupLabels": {"alertname": ""}, "commonLabels": {"": ""},
                              "commonAnnotations": {}, "externalURL": "", "truncatedAlerts": 0,
                              "alerts": [{"status": "", "labels": {"": "", "severity": ""},
                                          "annotations": {"message": ""}, "startsAt": "",
                                          "endsAt": "", "generatorURL": "",
                                          "fingerprint": ""}]}), 200,
        all_of(title_is("[FIRING:1] Alertmanager"), shows("**其他标签**: ="),
               lacks("查看图表", "告警级别", "告警详情"))),
    # --- markdown, HTML, control characters -------------------------------------------------
    Row("markdown_html_everywhere", enc(hostile_everywhere()), 200,
        all_of(shows("&lt;script&gt;alert(1)&lt;/script&gt;", "&amp;amp;",
                     "[查看图表](http://x.example/g?a=%3Cscript%3E&b=%22q%22%29]%28javascript:"),
               title_has("<script>alert(1)</script>"),
               lambda rec, reply: rec.title.count("[") >= 1)),
    Row("markdown_in_group_labels_title",
        enc(note(alert(), groupLabels={"alertname": "# T\n## [x](javascript:y) <b>**"})), 200,
        all_of(title_is("[FIRING:1] # T ## [x](javascript:y) <b>**"),
               shows("### \\[FIRING:1\\] # T ## \\[x\\](javascript:y) &lt;b&gt;\\*\\*"))),
    Row("crlf_tabs_in_label_names_and_values",
        enc(with_labels(**{"in\tst\r\nance": "a\r\n# evil\tb", "x\n**告警级别**": "y\n\n---"})),
        200, shows("in st ance=a # evil b", "x \\*\\*告警级别\\*\\*=y ---")),
    Row("control_chars_everywhere",
        enc(note(alert(pod="p\x01\x07\x08\x0b\x0c\x1b[31m\x7fq", message="\r\r\n\n\t\t"),
                 groupLabels={"alertname": "a\x1b\nb"})), 200,
        all_of(shows("**故障pod**: p \\[31m q"), title_is("[FIRING:1] a b"))),
    pytest.param(Row("unicode_line_separators",
                     enc(note(alert(pod="a\u2028# x", namespace="b\u2029## y",
                                    message="c\u0085### z \u009b31m"),
                              groupLabels={"alertname": "t\u2028# T"})), 200,
                     no_line_breaks_unicode), id="unicode_line_separators"),
    # a right-to-left override shows "api-0txt.exe" as "api-0exe.txt"; zero width characters
    # make two values look alike: every invisible format character becomes a space
    Row("bidi_and_zero_width",
        enc(note(alert(pod="api\u202e0txt.exe", namespace="kube\u200bops\u2066x\u2069",
                       message="\ufeffok\u200d\u200e\u061c"),
                 groupLabels={"alertname": "pay\u202dpal"})), 200,
        all_of(shows("**故障pod**: api 0txt.exe", "**故障namespace**: kube ops x",
                     "**告警详情**: ok"), title_is("[FIRING:1] pay pal"))),
    Row("emoji_cjk_everywhere", enc(emoji_everywhere()), 200,
        all_of(title_is("[FIRING:1] 磁盘将满🔥 华东🌏"),
               shows("**告警级别**: 严重🚨", "**故障pod**: 支付-api-0💳", "**故障namespace**: 生产🏭",
                     # a zero width joiner is a space like every invisible character: a
                     # family shows as its members
                     f"**告警详情**: {EMOJI.replace(chr(0x200D), ' ')}", "机房🏢=上海-张江🌃", "🔑=🔒"))),
    Row("cjk_title_cut_on_char_boundary", enc(note(alert(), groupLabels={"alertname": "告" * 200})),
        200, lambda rec, reply: (rec.title.endswith("告…") and len(rec.title.encode()) <= 134)
        or pytest.fail(rec.title)),
    # --- not a notification at all --------------------------------------------------------------
    Row("empty_body", b"", 400, "empty body"),
    Row("whitespace_only", b" \r\n\t \n", 400, "invalid JSON"),
    Row("json_string", b'"{\\"alerts\\":[{}]}"', 400, "invalid JSON"),
    Row("json_number", b"4", 400, "invalid JSON"),
    Row("json_null", b"null", 400, "invalid JSON"),
    Row("json_true", b"true", 400, "invalid JSON"),
    Row("json_array", enc([note(alert())]), 400, "must be a JSON object"),
    Row("json_empty_array", b"[]", 400, "must be a JSON object"),
    Row("bom_before_json", b"\xef\xbb\xbf" + enc(note(alert())), 400, "invalid JSON"),
    Row("trailing_garbage", enc(note(alert())) + b"garbage", 400, "invalid JSON"),
    Row("trailing_second_object", enc(note(alert())) * 2, 400, "invalid JSON"),
    Row("trailing_comma", enc(note(alert()))[:-1] + b",}", 400, "invalid JSON"),
    Row("single_quotes", b"{'alerts':[{}]}", 400, "invalid JSON"),
    Row("comment_in_json", b'{"alerts":[{}] /* x */}', 400, "invalid JSON"),
    Row("whitespace_around_ok", b" \r\n\t" + json.dumps(note(alert()), indent=4).encode()
        + b"\r\n \t", 200, alerts_in_reply(1)),
    # --- times ---------------------------------------------------------------------------------
    Row("starts_feb_30", enc(with_alert(startsAt="2026-02-30T00:00:00Z")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("starts_feb_29_non_leap", enc(with_alert(startsAt="2026-02-29T00:00:00Z")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("starts_hour_25", enc(with_alert(startsAt="2026-11-23T25:00:00Z")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("starts_no_zone", enc(with_alert(startsAt="2026-11-23T16:04:05")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("starts_offset_without_colon", enc(with_alert(startsAt="2026-11-23T16:04:05+0800")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("starts_date_only", enc(with_alert(startsAt="2026-11-23")), 400,
        "alerts[0].startsAt is not an RFC 3339 time"),
    Row("ends_garbage", enc(with_alert(status="resolved", endsAt="soon")), 400,
        "alerts[0].endsAt is not an RFC 3339 time"),
    Row("starts_feb_29_leap_ok", enc(with_alert(startsAt="2024-02-29T00:00:00Z")), 200,
        shows("**触发时间**: 2024-02-29 08:00:00 +08:00")),
    Row("starts_year_0001_is_unknown", enc(with_alert(startsAt="0001-01-01T00:00:00Z")), 200,
        all_of(shows("**触发时间**: -"), lacks("0001"))),
    Row("ends_year_0001_resolved",
        enc(with_alert(status="resolved", endsAt="0001-01-01T00:00:00Z")), 200, all_of(shows("**结束时间**: -"), lacks("0001"))),
    Row("starts_year_9999", enc(with_alert(startsAt="9999-12-31T15:59:59Z")), 200,
        shows("**触发时间**: 9999-12-31 23:59:59 +08:00")),
    Row("starts_year_9999_spills_into_10000", enc(with_alert(startsAt="9999-12-31T23:59:59Z")),
        200, shows("**触发时间**: 10000-01-01 07:59:59 +08:00")),
    Row("starts_leap_second", enc(with_alert(startsAt="2026-12-31T23:59:60Z")), 200,
        shows("**触发时间**: 2027-01-01 07:59:59 +08:00")),
    Row("starts_nanoseconds_and_offset",
        enc(with_alert(startsAt="2026-11-23T16:04:05.123456789+05:30")), 200,
        shows("**触发时间**: 2026-11-23 18:34:05 +08:00")),
    # --- truncatedAlerts ------------------------------------------------------------------------
    Row("truncated_int64_max", enc(note(alert(), truncatedAlerts=9223372036854775807)), 200,
        shows("**另有 1000000000 条告警未显示**（被 Alertmanager max_alerts 截断）")),
    Row("truncated_beyond_int64", enc(note(alert(), truncatedAlerts=10 ** 20)), 400,
        "invalid JSON"),
    Row("truncated_negative", enc(note(alert(), truncatedAlerts=-1)), 400,
        "truncatedAlerts must be a non-negative integer"),
    Row("truncated_float", enc(note(alert(), truncatedAlerts=2.5)), 400,
        "truncatedAlerts must be a non-negative integer"),
    Row("truncated_float_whole", enc(note(alert(), truncatedAlerts=3.0)), 400,
        "truncatedAlerts must be a non-negative integer"),
    Row("truncated_string", enc(note(alert(), truncatedAlerts="7")), 400,
        "truncatedAlerts must be a non-negative integer"),
    Row("truncated_zero", enc(note(alert(), truncatedAlerts=0)), 200, lacks("另有")),
    # --- links ----------------------------------------------------------------------------------
    Row("generator_url_not_http", enc(with_alert(generatorURL="file:///etc/passwd")), 200,
        lacks("查看图表", "passwd")),
    Row("generator_url_huge", enc(with_alert(generatorURL="http://x/" + "a" * 5000)), 200,
        lacks("查看图表")),
    Row("generator_url_uppercase_scheme", enc(with_alert(generatorURL="HTTPS://X.example/a b")),
        200, shows("[查看图表](HTTPS://X.example/a%20b)")),
]



def row_id(r):
    return r.id  # a Row, or a pytest.param (xfail rows) with the same id


# ------------------------------------------------------------------------------------------
# the test


def body_of(row):
    body = row.body() if callable(row.body) else row.body
    return body if isinstance(body, bytes) else enc(body)


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_hostile_body(hostile, row):
    ngx, mock = hostile.ngx, hostile.mock
    before = len(mock.received)
    hostile.rows += 1
    r = ngx.post(f"/?robot={hostile.rows}", body_of(row))

    assert r.status == row.status, r
    assert r.headers["content-type"] == "application/json"
    reply = r.json
    assert isinstance(reply.get("ok"), bool) and isinstance(reply.get("reason"), str), reply
    assert reply["ok"] is (row.status == 200), reply
    assert "\n" not in reply["reason"] and "\r" not in reply["reason"]
    assert len(reply["reason"].encode()) <= 1100, "reasons are capped"
    new = mock.received[before:]
    if row.status == 400:
        assert "not an Alertmanager notification" in reply["reason"], reply
        assert row.expect in reply["reason"], (row.expect, reply["reason"])
        assert new == [], "a bad body reached DingTalk"
    else:
        assert len(new) == 1, f"{len(new)} messages for one notification"
        assert new[0].query["access_token"] == f"{TOKEN}{hostile.rows}"
        check_message(new[0], reply)
        if row.expect is not None:
            row.expect(new[0], reply)
    hostile.assert_healthy()


def test_table_is_big_enough():
    assert len(ROWS) >= 40
    ids = [row_id(r) for r in ROWS]
    assert len(ids) == len(set(ids)), "row ids are unique"


# ------------------------------------------------------------------------------------------
# secrets from variables


def test_secret_with_foreign_characters_is_refused_and_never_used(nginx_factory, mock):
    ngx = nginx_factory(f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location = / {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_secret $http_x_secret;
            dingtalk_api_url {mock.url};
            dingtalk_rate_limit off;
        }}
    }}
""")
    bad_secrets = ("SECzz", "SEC123&x=1", "abc", "SEC", "sec0123abc", "SEC0123 abc",
                   "SEC0123%26sign=x", SECRET + "g", "SEC\t0123")
    for bad in bad_secrets:
        r = ngx.post("/", notification(), headers={"X-Secret": bad})
        assert r.status == 500, (bad, r)
        assert r.json["ok"] is False
        assert "not a valid signing secret" in r.json["reason"], r.json
        assert bad not in r.body.decode()
    assert mock.received == [], "a refused secret never reaches DingTalk"
    log = ngx.error_log()
    assert "is not \"SEC\" followed by 64 hex digits; refused" in log
    for bad in bad_secrets:
        if len(bad) > 4:
            assert bad not in log, f"the refused secret {bad!r} is in the log"

    # the same location still works: a valid secret signs, no secret means unsigned
    r = ngx.post("/", notification(), headers={"X-Secret": SECRET})
    assert r.status == 200, r
    assert mock.received[-1].sig_ok is True
    r = ngx.post("/", notification())
    assert r.status == 200, r
    assert mock.received[-1].sig_ok is None
