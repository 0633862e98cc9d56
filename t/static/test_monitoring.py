"""deploy/kubernetes/: the hook watched. The ServiceMonitor scrapes the Service's metrics port,
where dingtalk_metrics is; every alert of the PrometheusRule reads series the module makes
(its metrics and outcomes, the job the ServiceMonitor gives them) and says how bad it is.
promtool runs these rules in t/integration/test_promtool.py.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import re

import pytest

from k8s import (
    METRICS_PORT, container, doc, exact_locations, named_port, nginx_conf, only,
    prometheus_rules, read, server_of, service)


MODULE_METRICS = {"dingtalk_notifications_total", "dingtalk_errcode_total",
                  "dingtalk_messages_failed_total", "dingtalk_tasks_in_flight", "up"}


def check_service_monitor(m):
    """prometheus-operator scrapes the Service's metrics port, where dingtalk_metrics is."""
    sm, svc = only(m, "ServiceMonitor"), service(m)
    spec = sm["spec"]
    assert spec["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items(), \
        "the ServiceMonitor selects no Service"
    assert svc["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in ports, f"{endpoint['port']} is not a port name of the Service"
    target = named_port(container(m), ports[endpoint["port"]]["targetPort"])
    assert target == METRICS_PORT, f"the ServiceMonitor scrapes {target}"
    health = server_of(nginx_conf(m), "/healthz")
    assert "dingtalk_metrics" in exact_locations(health).get(endpoint.get("path", "/metrics"), ())


def check_prometheus_rule(m):
    """Every alert reads series the ServiceMonitor makes (job = the Service's name), metrics and
    outcomes the module has (docs/operations.md, "Metrics"), and says how bad it is."""
    job = service(m)["metadata"]["name"]
    doc = read("docs/operations.md")
    outcomes = set(re.findall(r"`(\w+)`", doc.split("`dingtalk_notifications_total{outcome}`")[1]
                              .split("\n")[0]))
    rules = prometheus_rules(m)
    assert {r["alert"] for r in rules} >= {"DingTalkHookDown", "DingTalkDeliveriesFailing",
                                           "DingTalkRefusing", "DingTalkThrottling",
                                           "DingTalkHookQueueFull"}
    for r in rules:
        expr = " ".join(r["expr"].split())
        names = set(re.findall(r"\b([a-z_]+)\{", expr))
        assert names and names <= MODULE_METRICS, f"{r['alert']}: {names - MODULE_METRICS}"
        for sel in re.findall(r"\{([^}]*)\}", expr):
            if "=" in sel:
                assert f'job="{job}"' in sel, f"{r['alert']}: {sel} without job={job}"
        for want in re.findall(r'outcome=~?"([^"]+)"', expr):
            assert set(want.split("|")) <= outcomes, f"{r['alert']}: {want} vs {outcomes}"
        assert r["labels"]["severity"] in ("critical", "warning"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r


CHECKS = [check_service_monitor, check_prometheus_rule]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "ServiceMonitor on the webhook's port": (
        check_service_monitor, lambda m: doc(m, "ServiceMonitor")["spec"]["endpoints"][0].update(
            port="hook")),
    "an alert on a metric the module does not have": (
        check_prometheus_rule, lambda m: prometheus_rules(m)[1].update(
            expr='sum(rate(dingtalk_failures_total{job="dingtalk-hook"}[5m])) > 0')),
    "an alert on an outcome the module does not count": (
        check_prometheus_rule, lambda m: prometheus_rules(m)[4].update(
            expr=prometheus_rules(m)[4]["expr"].replace("queue_full", "pool_full"))),
    "an alert on another job": (
        check_prometheus_rule, lambda m: prometheus_rules(m)[0].update(
            expr='up{job="dingtalk"} == 0')),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
