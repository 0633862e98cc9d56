"""deploy/kubernetes/ with kustomize: kustomization.yaml lists the resources `kubectl apply -k`
needs; multi-target/, rendered by kustomize_lite.py as kustomize would (a generated ConfigMap
named with its hash), agrees with itself and with the single-target pod. kubectl's own
kustomize, where installed, is compared in t/integration/test_kubectl_kustomize.py.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import re

import pytest

from k8s import (
    METRICS_PORT, NAMESPACE, container, doc, listen_ports, multi_only, named_port, only,
    pod_spec, restricted_violations, server_of, service, uncommented)


def check_kustomization(m):
    k = only(m, "Kustomization")
    assert sorted(k["resources"]) == sorted(["namespace.yaml", "secret.yaml", "configmap.yaml",
                                             "deployment.yaml", "service.yaml",
                                             "networkpolicy.yaml",
                                             "poddisruptionbudget.yaml"]), k["resources"]
    for r in k["resources"]:
        assert r in m["files"], f"kustomization lists missing {r}"


CHECKS = [check_kustomization]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "kustomization without the NetworkPolicy": (
        check_kustomization, lambda m: doc(m, "Kustomization")["resources"]
        .remove("networkpolicy.yaml")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch


# ------------------------------------------------------------------------------------------
# multi-target/: several robots, a token file each, a generated ConfigMap


def multi_robots(conf):
    """location = PATH { ... dingtalk_token_file FILE; dingtalk_robot_name NAME; }"""
    return {path: (re.search(r"dingtalk_token_file\s+(\S+);", body).group(1),
                   re.search(r"dingtalk_robot_name\s+(\S+);", body).group(1))
            for path, body in re.findall(r"location\s*=\s*(\S+)\s*\{([^}]*)\}", uncommented(conf))
            if re.search(r"^\s*dingtalk;", body, re.M)}


def test_multi_target_agrees_with_itself_and_the_single_target(multi, manifests):
    dep = multi_only(multi, "Deployment")
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert "ROBOT_TOKEN_FILE" not in env and "ROBOT_SECRET_FILE" not in env, env
    cm = multi_only(multi, "ConfigMap")
    gen = multi["kustomization"]["configMapGenerator"][0]
    assert cm["metadata"]["name"].startswith(gen["name"] + "-"), "the name carries a hash"
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {mt["mountPath"]: volumes[mt["name"]] for mt in c["volumeMounts"]}
    assert not [mt for mt in c["volumeMounts"] if "subPath" in mt]
    conf_dir, conf_file = env["NGINX_CONF"].rsplit("/", 1)
    assert mounts[conf_dir]["configMap"]["name"] == cm["metadata"]["name"]
    conf = cm["data"][conf_file]
    for path in re.findall(r"dingtalk_template\s+(\S+);", uncommented(conf)):
        assert path.rsplit("/", 1)[0] == conf_dir and path.rsplit("/", 1)[1] in cm["data"], path
    secret = multi["secret"]
    secret_dir = next(p for p, v in mounts.items() if "secret" in v)
    assert mounts[secret_dir]["secret"]["secretName"] == secret["metadata"]["name"]
    assert mounts[secret_dir]["secret"].get("optional") is False, "podman 4.3 panics without"
    keys = set(secret["stringData"])
    robots = multi_robots(conf)
    assert len(robots) >= 2, robots
    for path, (token_file, name) in robots.items():
        assert path == f"/dingtalk/{name}/send", (path, name)
        assert token_file == f"{secret_dir}/{name}" and name in keys, (token_file, keys)
    assert env["WEBHOOK_TOKEN_FILE"] == f"{secret_dir}/webhook-token" and "webhook-token" in keys
    assert keys == {name for _, name in robots.values()} | {"webhook-token"}, keys
    assert all("REPLACE" in v for v in secret["stringData"].values()), "placeholders only"
    # the probes ask /healthz on 9095, which this configuration has (no GET / here)
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/healthz" and named_port(c, get["port"]) == METRICS_PORT, get
    assert re.search(r"location\s*=\s*/healthz\s*\{[^}]*return\s+200", server_of(conf, "/healthz"))
    assert listen_ports("server {" + server_of(conf, "/healthz") + "}") == [METRICS_PORT]
    # otherwise the single-target pod: same security, probes, resources, shutdown
    single = container(manifests)
    for key in ("image", "ports", "readinessProbe", "livenessProbe", "lifecycle", "resources",
                "securityContext"):
        assert c[key] == single[key], key
    for key in ("securityContext", "terminationGracePeriodSeconds",
                "automountServiceAccountToken"):
        assert spec[key] == pod_spec(manifests)[key], key
    assert restricted_violations(spec, spec["containers"]) == []
    assert multi_only(multi, "Service")["spec"] == service(manifests)["spec"]
    assert dep["metadata"]["namespace"] == NAMESPACE == secret["metadata"]["namespace"]
