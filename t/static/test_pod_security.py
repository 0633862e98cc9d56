"""deploy/kubernetes/: the pods run unprivileged. The Deployment's pod spec and the
Alertmanager sidecar's are held to the "restricted" Pod Security Standard (its rules in
k8s.restricted_violations), the image runs as the same user, and nginx switches no user.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy

import pytest

from k8s import (
    WWW_DATA, container, dockerfile_lines, main_directive, nginx_conf, pod_spec,
    restricted_violations, set_conf, sidecar_spec)


def check_security_context(m):
    conf = nginx_conf(m)
    assert main_directive(conf, "user") is None, "no user switch: nginx's master is not root"
    spec = pod_spec(m)
    psc = spec["securityContext"]
    assert psc.get("runAsNonRoot") is True and psc.get("runAsUser") == WWW_DATA, psc
    assert psc.get("fsGroup") == WWW_DATA, "the Secret's files are readable through fsGroup"
    assert "USER www-data" in dockerfile_lines(m), "the image runs as the same user"
    sc = container(m)["securityContext"]
    assert sc.get("allowPrivilegeEscalation") is False and not sc.get("privileged"), sc
    assert sc["capabilities"] == {"drop": ["ALL"]}, "nginx needs no capability at all"
    assert restricted_violations(spec, spec["containers"]) == []
    # the sidecar, in a pod like kube-prometheus's Alertmanager (non-root, its own user)
    side = sidecar_spec(m)
    am_pod = {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 2000},
              "volumes": side["volumes"]}
    assert restricted_violations(am_pod, side["containers"]) == []


CHECKS = [check_security_context]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "privilege escalation allowed": (
        check_security_context, lambda m: container(m)["securityContext"]
        .update(allowPrivilegeEscalation=True)),
    "a capability added back": (
        check_security_context, lambda m: container(m)["securityContext"]["capabilities"]
        .update(add=["CHOWN"])),
    "the pod as root": (
        check_security_context, lambda m: pod_spec(m)["securityContext"].update(runAsUser=0)),
    "nginx switching users again": (
        check_security_context, lambda m: set_conf(m, "user www-data;\n" + nginx_conf(m))),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
