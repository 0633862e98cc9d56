"""deploy/kubernetes/: what may reach the hook and what it may reach. The NetworkPolicy lets
in only other namespaces, on the webhook's and the metrics' ports, and out only DNS and
HTTPS; nginx.conf answers the webhook only under the names Alertmanager uses (DNS
rebinding: a default server answers 421).

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import re

import pytest

from k8s import (
    APP, METRICS_PORT, PORT, SERVICE_DNS, container, doc, edit_conf, named_port, nginx_conf,
    only, server_of, servers)


def check_network_policy(m):
    np = only(m, "NetworkPolicy")["spec"]
    assert sorted(np["policyTypes"]) == ["Egress", "Ingress"], np["policyTypes"]
    c = container(m)
    (rule,) = np["ingress"]
    assert all(set(peer) == {"namespaceSelector"} for peer in rule["from"]), \
        "only from a namespace (Alertmanager's and Prometheus's), never from anywhere"
    assert sorted(named_port(c, p["port"]) for p in rule["ports"]) == [PORT, METRICS_PORT]
    egress = sorted((p.get("protocol", "TCP"), p["port"]) for r in np["egress"]
                    for p in r["ports"])
    assert egress == [("TCP", 53), ("TCP", 443), ("UDP", 53)], egress
    for r in np["egress"]:
        if any(p["port"] == 53 for p in r["ports"]):
            assert r.get("to"), "DNS only to the cluster's DNS"


def check_host_names(m):
    """DNS rebinding: a page whose name now points at the hook is served by a default server
    that answers nothing; the webhook only under the names Alertmanager uses."""
    conf = nginx_conf(m)
    hook = server_of(conf, "/")
    names = re.search(r"server_name\s+([^;]+);", hook)
    assert names, "the webhook's server has no server_name"
    assert {SERVICE_DNS, "localhost", APP} <= set(names.group(1).split()), names.group(1)
    default = [b for b in servers(conf) if re.search(rf"listen\s+\S*{PORT}\s+default_server", b)]
    assert len(default) == 1, "a default server on the webhook's port"
    assert re.search(r"return\s+421", default[0]) and "dingtalk" not in default[0], default[0]


CHECKS = [check_network_policy, check_host_names]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "ingress from anywhere": (
        check_network_policy, lambda m: doc(m, "NetworkPolicy")["spec"]["ingress"][0]["from"]
        .append({"ipBlock": {"cidr": "0.0.0.0/0"}})),
    "egress to plain http": (
        check_network_policy, lambda m: doc(m, "NetworkPolicy")["spec"]["egress"][0]["ports"]
        .append({"port": 80, "protocol": "TCP"})),
    "the webhook answers any host name": (
        check_host_names, lambda m: edit_conf(m, "listen 5000 default_server;", "listen 5001;")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
