"""dingtalk_message_type actioncard (issue #25): a message that shows one firing alert arrives
as DingTalk's actionCard, its silence links as buttons that open the action location's
confirmation page; a message of several alerts is markdown with an action line per alert. The
stand-in (harness.body_error) refuses any body that is not DingTalk's documented shape."""

import re
import urllib.parse

from harness import TOKEN, Nginx, alert, line_of, notification, webhook
from test_actions import (AM_TOKEN, BASE, SECRET, alertmanager, conf_file, decode, form_token,
                          post_form, silences, with_action)
from test_config import location

SLIDE = "dingtalk://dingtalkclient/page/link?url="


def card(mock, keys, extra="", **kw):
    return with_action(mock, keys, **kw).replace(
        "dingtalk_action_url", f"dingtalk_message_type actioncard; {extra}\n"
        "            dingtalk_action_url", 1)


def target(url):
    """The URL a button opens in DingTalk's side panel."""
    assert url.startswith(SLIDE) and url.endswith("&pc_slide=true"), url
    return urllib.parse.unquote(url[len(SLIDE):-len("&pc_slide=true")])


def test_one_alert_is_a_card_whose_buttons_open_the_confirmation_page(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(card(mock, keys))
    firing = alert(pod="api-7")
    firing["annotations"]["runbook_url"] = "https://runbooks.example/crashloop?a=1&b=2"
    r = ngx.post("/", notification(firing, alert(pod="api-8", status="resolved",
                                                 ends="2026-11-23T17:00:00Z")))
    assert r.status == 200, r
    rec = mock.received[0]
    assert rec.invalid is None and rec.answer["body"]["errcode"] == 0, rec.invalid
    assert rec.msgtype == "actionCard" and set(rec.json) == {"msgtype", "actionCard"}
    assert rec.message["btnOrientation"] == "0", "four buttons: stacked"
    assert [t for t, _ in rec.buttons] == ["静默2小时", "静默1天", "静默直到恢复", "处理手册"]
    assert "**静默**:" not in rec.text and "action?l=" not in rec.text, rec.text
    assert "已恢复 (1)" in rec.text and rec.title.startswith("[FIRING:1, RESOLVED:1]"), rec.text
    assert target(rec.buttons[3][1]) == "https://runbooks.example/crashloop?a=1&b=2"
    links = [target(url) for _, url in rec.buttons[:3]]
    assert all(link.startswith(BASE + "?l=") for link in links), links
    tokens = [link[len(BASE + "?l="):] for link in links]
    assert [(decode(t)["seconds"], decode(t)["until"]) for t in tokens] == \
        [(7200, False), (86400, False), (7 * 86400, True)]
    for token, words in zip(tokens, ("静默2小时", "静默1天", "静默直到恢复（最长7天）")):
        page = ngx.get(urllib.parse.urlsplit(BASE).path + "?l=" + token)
        assert page.status == 200, page
        body = page.body.decode()
        assert "<h1>静默这条告警？</h1>" in body and f"{words}</button>" in body, body
        assert f'name="l" value="{token}"' in body and "<td>api-7</td>" in body


def test_a_buttons_page_silences_the_alert(nginx_factory, mock, alertmanager):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(card(mock, keys, am_url=alertmanager.url, am_token=AM_TOKEN))
    assert ngx.post("/", notification(alert(pod="api-7"))).status == 200
    rec = mock.received[0]
    assert rec.msgtype == "actionCard" and rec.buttons[1][0] == "静默1天"
    token = target(rec.buttons[1][1])[len(BASE + "?l="):]
    r = post_form(ngx, {"l": token, "t": form_token(ngx, token), "name": "王五"})
    assert r.status == 200 and "<h1 class=\"ok\">已静默</h1>" in r.body.decode(), r
    made = silences(alertmanager)
    assert len(made) == 1 and made[0]["createdBy"] == "DingTalk: 王五", made
    assert "从钉钉静默，1天" in made[0]["comment"]
    assert token not in ngx.error_log()


def test_several_alerts_are_markdown_with_an_action_line_each(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(card(mock, keys))
    r = ngx.post("/", notification(alert(pod="api-1"), alert(pod="api-2")))
    assert r.status == 200, r
    rec = mock.received[0]
    assert rec.invalid is None and rec.msgtype == "markdown" and rec.buttons == []
    assert rec.text.count("**静默**: [2小时](" + BASE + "?l=") == 2, rec.text


def test_mentions_keep_a_message_markdown(nginx_factory, mock):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(card(mock, keys, "dingtalk_at_mobiles 13800000000;"))
    assert ngx.post("/", notification(alert())).status == 200
    rec = mock.received[0]
    assert rec.invalid is None and rec.msgtype == "markdown", rec.json
    assert rec.json["at"]["atMobiles"] == ["13800000000"] and "@13800000000" in rec.text
    assert "**静默**: [2小时](" in rec.text


def test_without_action_links_a_card_needs_another_link(nginx_factory, mock):
    ngx = nginx_factory(webhook(mock, "dingtalk_message_type actioncard;"))
    assert ngx.post("/", notification(alert())).status == 200
    plain = mock.received[0]
    assert plain.invalid is None and plain.msgtype == "markdown", plain.json
    with_runbook = alert()
    with_runbook["annotations"]["runbook_url"] = "https://runbooks.example/crashloop"
    assert ngx.post("/", notification(with_runbook)).status == 200
    rec = mock.received[1]
    assert rec.invalid is None and rec.msgtype == "actionCard", rec.json
    assert rec.message["btnOrientation"] == "1"
    assert [t for t, _ in rec.buttons] == ["处理手册"]


def test_a_bad_value_fails_nginx_t_with_file_and_line():
    ngx = Nginx(location(f"""            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_message_type card;"""))
    ok, out = ngx.test_config()
    assert not ok, out
    assert 'invalid value "card" in "dingtalk_message_type" directive' in out, out
    assert f"{ngx.conf_path}:{line_of(ngx, 'dingtalk_message_type')}" in out, out


def test_mentions_with_actioncard_warn_at_nginx_t():
    ngx = Nginx(location(f"""            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_message_type actioncard;
            dingtalk_at_all on;"""))
    ok, out = ngx.test_config()
    assert ok, out
    assert re.search(r"\[warn\].*a message that mentions someone goes as markdown", out), out


def test_the_stand_in_refuses_what_dingtalk_does_not_document():
    from harness import body_error
    good = {"msgtype": "actionCard", "actionCard": {
        "title": "t", "text": "x", "btnOrientation": "1",
        "btns": [{"title": "静默2小时", "actionURL": "https://h/a?l=x"}]}}
    assert body_error(good) is None
    single = {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x",
                                                      "singleTitle": "s", "singleURL": "u"}}
    assert body_error(single) is None
    bad = [
        {**good, "at": {"isAtAll": True}},
        {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x"}},
        {"msgtype": "actionCard", "actionCard": {**good["actionCard"], "btnOrientation": 1}},
        {"msgtype": "actionCard", "actionCard": {**good["actionCard"], "btns": []}},
        {"msgtype": "actionCard", "actionCard": {**good["actionCard"], "extra": "x"}},
        {"msgtype": "actionCard", "actionCard": {**good["actionCard"],
                                                 "btns": [{"title": "a", "url": "b"}]}},
        {"msgtype": "actionCard", "actionCard": {**good["actionCard"], "title": 5}},
        {"msgtype": "markdown", "markdown": {"title": "t"}},
    ]
    for doc in bad:
        assert body_error(doc) is not None, doc
