"""Silencing from the chat as the person on call does it (issue #25), in Debian's headless
Chromium at a phone's size: a firing alert goes through nginx to the DingTalk stand-in as an
actionCard, its first button's URL is opened as DingTalk opens it, the page's button is tapped,
and the silence is in Debian's real Alertmanager 0.25 with the alert's matchers and end.

Screenshots of each page are kept in build/artifacts/action-pages/ (the page, what it answered).
"""

import json
import os
import re
import shutil
import time
import urllib.parse

import pytest

from alertmanager_harness import http_get
from harness import REPO, alert, notification, webhook
from test_actions import (AM_TOKEN, SECRET, alertmanager, conf_file, fire,  # noqa: F401
                          silences, state_of, wait_for)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = os.path.join(REPO, "build", "artifacts", "action-pages")
PHONE = {"width": 390, "height": 844, "pixelRatio": 3.0}  # a common phone, in CSS pixels
# DingTalk's in-app browser names itself so (its pages are plain Chromium WebViews on Android)
USER_AGENT = ("Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) "
              "Chrome/120.0.0.0 Mobile Safari/537.36 AliApp(DingTalk/7.0.50) "
              "com.alibaba.android.rimet/0 Channel/227200 language/zh-CN")


@pytest.fixture
def phone():
    """Headless Chromium emulating a phone, through Debian's chromedriver."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium and chromium-driver not installed (scripts/install-deps.sh test)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", "--lang=zh-CN"):
        options.add_argument(arg)
    options.add_experimental_option("mobileEmulation",
                                    {"deviceMetrics": PHONE, "userAgent": USER_AGENT})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()


def screenshot(driver, name):
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name + ".png")
    assert driver.save_screenshot(path), path
    assert os.path.getsize(path) > 1000, "an empty screenshot"
    return path


def with_action(mock, keys, am_url, am_token, check_interval="15s"):
    """A webhook location whose links name this nginx's own action location (the public URL
    users set is the same location behind their proxy)."""
    return f"dingtalk_action_check_interval {check_interval};\n" + webhook(mock, f"""dingtalk_action_url http://127.0.0.1:%PORT%/dingtalk/action;
            dingtalk_action_key_file {keys};
            dingtalk_message_type actioncard;""").replace("location = /static {", f"""
        location = /dingtalk/action {{
            dingtalk_action;
            dingtalk_action_key_file {keys};
            dingtalk_alertmanager_url {am_url};
            dingtalk_alertmanager_bearer_file {conf_file('am', am_token)};
            dingtalk_thread_pool dingtalk;
        }}
        location = /static {{""")


def links_in(message):
    """The action links of a message as DingTalk shows them: markdown links, buttons of an
    actionCard, or either wrapped in DingTalk's dingtalk://dingtalkclient/page/link?url=..."""
    found = []
    for url in re.findall(r"(?:\]\(|\"actionURL\": ?\")([^)\"\s]+)", message):
        if url.startswith("dingtalk://"):
            url = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["url"][0]
        if "/dingtalk/action?" in url:
            found.append(url)
    return found


def test_two_taps_from_the_message_to_a_silence_in_alertmanager(nginx_factory, mock,
                                                                alertmanager, phone):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, alertmanager.url, AM_TOKEN))
    r = ngx.post("/", notification(alert(pod="api-7")))
    assert r.status == 200, r
    sent = json.loads(mock.received[-1].body)
    assert sent["msgtype"] == "actionCard", sent  # one firing alert: its links are buttons
    links = links_in(json.dumps(sent["actionCard"]["btns"]))
    assert len(links) == 3, sent  # 2 hours, 1 day, until resolved
    assert all(l.startswith(f"http://127.0.0.1:{ngx.port}/dingtalk/action?l=") for l in links)

    # tap 1: the link in the message opens the page; nothing is silenced by opening it
    before = time.time()
    phone.get(links[0])
    screenshot(phone, "confirm")
    assert silences(alertmanager) == [], "opening the page silenced"
    page = phone.page_source
    assert "KubePodCrashLooping" in page and "api-7" in page, page
    assert "+08:00" in page, "the end is in dingtalk_timezone (Asia/Shanghai by default)"
    width = phone.execute_script("return document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page scrolls sideways on a phone ({width} px)"
    button = phone.find_element("css selector", "form button[type=submit], form button")
    top = phone.execute_script("return arguments[0].getBoundingClientRect().bottom", button)
    assert top <= PHONE["height"], "the button is below the first screen"
    phone.find_element("css selector", "input[name=name]").send_keys("张三")

    # tap 2: the button
    button.click()
    for _ in range(100):
        if phone.execute_script("return document.readyState") == "complete" and \
                phone.current_url.split("?")[0].endswith("/dingtalk/action") and \
                "name=\"t\"" not in phone.page_source:
            break
        time.sleep(0.1)
    screenshot(phone, "silenced")
    made = silences(alertmanager)
    assert len(made) == 1, made
    s = made[0]
    assert s["id"] in phone.page_source, phone.page_source
    assert {m["name"]: m["value"] for m in s["matchers"]} == {
        "alertname": "KubePodCrashLooping", "severity": "critical", "namespace": "kube-ops",
        "pod": "api-7"}
    assert all(m["isEqual"] and not m["isRegex"] for m in s["matchers"])
    assert s["createdBy"] == "DingTalk: 张三"
    ends = time.mktime(time.strptime(s["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert before + 7200 - 5 <= ends <= time.time() + 7200 + 5, s["endsAt"]

    # the browser's back button and a reload of the page make no second silence
    phone.back()
    phone.refresh()
    screenshot(phone, "back")
    assert len(silences(alertmanager)) == 1
    status, text = http_get(alertmanager.url + "/api/v2/alerts?silenced=true")
    assert status == 200 and json.loads(text) == [], "no alert was posted to Alertmanager"


def tap_the_button(phone):
    """Taps the page's one button and waits for the page it answers."""
    phone.find_element("css selector", "form button").click()
    for _ in range(100):
        if phone.execute_script("return document.readyState") == "complete" and \
                'name="t"' not in phone.page_source:
            return
        time.sleep(0.1)


def test_until_resolved_from_the_chat_is_lifted_when_the_alert_resolves(nginx_factory, mock,
                                                                        alertmanager, phone):
    keys = conf_file("keys", f"k1 {SECRET}\n")
    ngx = nginx_factory(with_action(mock, keys, alertmanager.url, AM_TOKEN, "1s"))
    fingerprint = fire(alertmanager, "api-9")  # firing in Alertmanager, as Prometheus sent it
    r = ngx.post("/", notification(alert(pod="api-9", fingerprint=fingerprint)))
    assert r.status == 200, r
    buttons = json.loads(mock.received[-1].body)["actionCard"]["btns"]
    assert [b["title"] for b in buttons] == ["静默2小时", "静默1天", "静默直到恢复"], buttons
    phone.get(links_in(json.dumps(buttons))[2])
    screenshot(phone, "confirm-until-resolved")
    assert "直到恢复" in phone.page_source
    tap_the_button(phone)
    screenshot(phone, "silenced-until-resolved")
    made = silences(alertmanager)
    assert len(made) == 1 and made[0]["id"] in phone.page_source, made
    silence = made[0]["id"]
    time.sleep(2.5)  # checks while the alert fires: the silence stays
    assert state_of(alertmanager, silence) == "active"

    resolved = time.time()
    fire(alertmanager, "api-9", ends=resolved)  # Prometheus: resolved
    wait_for(lambda: state_of(alertmanager, silence) == "expired", 60, "the silence lifted")
    assert time.time() - resolved < 60
    phone.get(links_in(json.dumps(buttons))[2])  # the link again: a GET makes no new silence
    assert "直到恢复" in phone.page_source
    assert silences(alertmanager) == []
