"""deploy/kubernetes/: the files are all there, their objects named and namespaced as the
Flask hook's users have them, with today's apiVersions; labels and selectors select the
Deployment's pods; the README says how to install, check and reach the hook. The YAML is
parsed strictly: a key given twice is an error, as it is for kubectl.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import glob
import importlib
import os

import pytest
import yaml

from k8s import (
    API_VERSIONS, APP, CONFIGMAP, EXPECTED_FILES, NAMESPACE, PORT, SECRET_NAME, SERVICE_DNS,
    deployment, doc, edit_text, objects, only, parse, read, service)


def check_files_names_and_namespaces(m):
    assert EXPECTED_FILES <= set(m["files"]), EXPECTED_FILES - set(m["files"])
    for name, d in objects(m):
        if d["kind"] != "Kustomization":  # kustomize's own file, not a cluster object
            assert d.get("metadata", {}).get("name"), f"{name}: an object without a name"
    assert only(m, "Namespace")["metadata"]["name"] == NAMESPACE
    for kind, name in (("Secret", SECRET_NAME), ("ConfigMap", CONFIGMAP), ("Deployment", APP),
                       ("Service", APP), ("NetworkPolicy", APP), ("AlertmanagerConfig", APP),
                       ("PodDisruptionBudget", APP), ("ServiceMonitor", APP),
                       ("PrometheusRule", APP)):
        meta = only(m, kind)["metadata"]
        assert meta["name"] == name, f"{kind} is named {meta['name']}, not {name}"
        assert meta.get("namespace") == NAMESPACE, f"{kind} {name} is not in {NAMESPACE}"
    assert deployment(m)["metadata"].get("labels", {}).get("app") == APP


def check_api_versions(m):
    for name, d in objects(m):
        assert d["kind"] in API_VERSIONS, f"{name}: unexpected kind {d['kind']}"
        assert d["apiVersion"] == API_VERSIONS[d["kind"]], \
            f"{name}: {d['kind']} has apiVersion {d['apiVersion']}"
    for name, f in m["files"].items():
        assert "extensions/v1beta1" not in f["text"], f"{name} mentions extensions/v1beta1"
        for d in f["docs"]:
            assert "extensions/v1beta1" not in yaml.safe_dump(d), name


def check_labels_and_selectors(m):
    spec = deployment(m)["spec"]
    match = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert match == {"app": APP}, match
    assert match.items() <= labels.items(), "the selector does not select the pod template"
    selector = service(m)["spec"]["selector"]
    assert selector == match, f"Service selector {selector} != Deployment selector {match}"
    assert selector.items() <= labels.items(), "the Service selects no pod of the Deployment"
    policy = only(m, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items(), "the NetworkPolicy selects no pod of the Deployment"


def check_readme(m):
    text = m["files"]["README.md"]["text"]
    for needle in (f"kubectl create secret generic {SECRET_NAME}", "-n kube-ops", "--from-file",
                   "openssl rand", "kubectl apply -k deploy/kubernetes/", "kubectl apply -f",
                   "alertmanager-receiver.yaml", "alertmanagerconfig.yaml", "networkpolicy.yaml",
                   f"http://{SERVICE_DNS}:{PORT}/", "kubectl logs", "one line per delivery",
                   "kubectl port-forward", "curl", "alertmanager-sidecar.yaml",
                   f"http://localhost:{PORT}/", "restricted"):
        assert needle in text, f"deploy/kubernetes/README.md lacks {needle!r}"
    assert "--from-literal" not in text, "a secret on a command line lands in shell history"


CHECKS = [check_files_names_and_namespaces, check_api_versions, check_labels_and_selectors,
          check_readme]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "Service selects another label": (
        check_labels_and_selectors, lambda m: service(m)["spec"].update(selector={"app": "hook"})),
    "the seed's obsolete apiVersion": (
        check_api_versions, lambda m: deployment(m).update(apiVersion="extensions/v1beta1")),
    "Secret in another namespace": (
        check_files_names_and_namespaces, lambda m: doc(m, "Secret")["metadata"]
        .update(namespace="monitoring")),
    "README without the health check": (
        check_readme, lambda m: edit_text(m, "README.md", "kubectl port-forward", "kubectl pf")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch


def test_every_check_has_a_mismatch_it_catches():
    """Over every file of t/static/ with CHECKS: each check has a MUTATIONS entry it catches."""
    checks, caught = set(), set()
    for path in sorted(glob.glob(os.path.join(os.path.dirname(__file__), "test_*.py"))):
        module = importlib.import_module(os.path.basename(path)[:-len(".py")])
        checks |= set(getattr(module, "CHECKS", ()))
        caught |= {check for check, _ in getattr(module, "MUTATIONS", {}).values()}
    assert checks, "no CHECKS in t/static/"
    assert caught == checks


def test_a_duplicate_key_is_an_error():
    original = read("deploy/kubernetes/service.yaml")
    assert parse(original)
    doubled = original.replace("  type: ClusterIP\n", "  type: ClusterIP\n  type: NodePort\n")
    assert doubled != original
    with pytest.raises(yaml.YAMLError, match="duplicate key 'type'"):
        parse(doubled)
