"""deploy/kubernetes/: Alertmanager's side. The receiver snippet and the AlertmanagerConfig
send to the Service's webhook port and the dingtalk location, resolved notifications too;
the sidecar variant runs the Deployment's container with nginx-sidecar.conf, which is the
image's nginx.conf but for the webhook's address.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import re
import urllib.parse

import pytest

from k8s import (
    APP, METRICS_PORT, PORT, SERVICE_DNS, alertmanager_receivers, container, doc, edit_text,
    exact_locations, nginx_conf, only, pod_spec, service, sidecar_spec, the_container,
    uncommented)


def check_webhook_url(url, m, where):
    u = urllib.parse.urlsplit(url)
    svc = service(m)
    dns = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    assert u.scheme == "http" and u.hostname == dns == SERVICE_DNS, f"{where}: {url}"
    hook = {p["name"]: p["port"] for p in svc["spec"]["ports"]}["hook"]
    assert u.port == hook, f"{where}: {url} is not the Service's hook port"
    assert "dingtalk" in exact_locations(nginx_conf(m)).get(u.path or "/", ()), \
        f"{where}: {url} does not reach the dingtalk location"


def check_alertmanager(m):
    route, receivers = alertmanager_receivers(m)
    names = [r["name"] for r in receivers]
    assert route["receiver"] in names
    hooks = [w for r in receivers for w in r.get("webhook_configs", [])]
    assert hooks
    for w in hooks:
        check_webhook_url(w["url"], m, "alertmanager-receiver.yaml")
        assert w["send_resolved"] is True
    amc = only(m, "AlertmanagerConfig")
    assert amc["metadata"]["namespace"] == service(m)["metadata"]["namespace"]
    spec = amc["spec"]
    assert spec["route"]["receiver"] in [r["name"] for r in spec["receivers"]]
    hooks = [w for r in spec["receivers"] for w in r.get("webhookConfigs", [])]
    assert hooks
    for w in hooks:
        check_webhook_url(w["url"], m, "alertmanagerconfig.yaml")
        assert w["sendResolved"] is True


def check_sidecar(m):
    spec = sidecar_spec(m)
    side = the_container(spec["containers"])
    assert side == container(m), "the sidecar container differs from the Deployment's"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(volumes) == {v["name"] for v in pod_spec(m)["volumes"]}
    for v in pod_spec(m)["volumes"]:
        if "configMap" in v:  # the sidecar's own nginx.conf: the webhook on 127.0.0.1 only
            items = volumes[v["name"]]["configMap"]["items"]
            assert items == [{"key": "nginx-sidecar.conf", "path": "nginx.conf"}], items
        else:
            assert volumes.get(v["name"]) == v, f"sidecar volume {v['name']} differs"
    side_conf = m["files"]["nginx-sidecar.conf"]["text"]
    body = lambda text: uncommented(text).replace(f"listen 127.0.0.1:{PORT}", f"listen {PORT}")
    assert body(side_conf) == uncommented(m["docker_nginx_conf"]), \
        "nginx-sidecar.conf is the image's nginx.conf but for the webhook's address"
    assert re.findall(r"^\s*listen\s+([^\s;]+)", uncommented(side_conf), re.M) == \
        [f"127.0.0.1:{PORT}", f"127.0.0.1:{PORT}", str(METRICS_PORT)]
    text = m["files"]["alertmanager-sidecar.yaml"]["text"]
    assert f"url: http://localhost:{PORT}/" in text, "the sidecar's webhook URL in a comment"


CHECKS = [check_alertmanager, check_sidecar]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "webhook URL on the metrics port": (
        check_alertmanager, lambda m: alertmanager_receivers(m)[1][0]["webhook_configs"][0]
        .update(url=f"http://{SERVICE_DNS}:{METRICS_PORT}/")),
    "webhook URL in another namespace": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(url=f"http://{APP}.monitoring.svc.cluster.local:{PORT}/")),
    "resolved notifications not sent": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(sendResolved=False)),
    "sidecar probe drifted from the Deployment": (
        check_sidecar, lambda m: the_container(sidecar_spec(m)["containers"])["readinessProbe"]
        ["httpGet"].update(port=5001)),
    "sidecar webhook on every address": (
        check_sidecar, lambda m: edit_text(m, "nginx-sidecar.conf", "listen 127.0.0.1:5000;",
                                           "listen 5000;")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
