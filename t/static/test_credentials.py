"""deploy/kubernetes/: the credentials. The Secret has the keys the entrypoint reads, as
placeholders nobody mistakes for real values, mounted as files readable by the pod's user
only, never as environment variables; Alertmanager carries the bearer token the hook
requires, from the same Secret key.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import re

import pytest

from k8s import (
    ALERTMANAGER_SECRETS, NAMESPACE, SECRET_KEYS, SECRET_NAME, alertmanager_receivers,
    container, doc, env_var, only, secret_key_refs, secret_keys, secret_mount, sidecar_spec,
    the_container, volume)


def check_secret(m):
    s = only(m, "Secret")
    assert s["type"] == "Opaque"
    keys = secret_keys(m)
    assert keys == SECRET_KEYS, keys
    for key, value in (s.get("stringData") or {}).items():
        assert "REPLACE" in value, f"the {key} placeholder is not clearly marked: {value!r}"
    text = m["files"]["secret.yaml"]["text"]
    assert "PLACEHOLDER" in text
    comment = "\n".join(l.lstrip("# ") for l in text.splitlines() if l.lstrip().startswith("#"))
    cmd = re.search(r"kubectl create secret generic (\S+)(.*?)(?:\n\n|\Z)", comment, re.S)
    assert cmd and cmd.group(1) == SECRET_NAME, "no kubectl create secret command in a comment"
    assert f"-n {NAMESPACE}" in cmd.group(2)
    assert "--from-literal" not in comment, "a secret on a command line lands in shell history"
    for key in keys:
        assert f"--from-file={key}" in cmd.group(2), f"the command does not set {key}"
    for c in (container(m), the_container(sidecar_spec(m)["containers"])):
        assert not list(secret_key_refs(c)), "Secrets as files, never as environment variables"
    path, volume = secret_mount(m)
    assert volume["secret"]["secretName"] == SECRET_NAME, volume
    assert volume["secret"].get("defaultMode") == 0o400, volume
    assert "items" not in volume["secret"], "every key, the optional one too, when it is there"
    files = {e["name"]: e["value"] for e in container(m)["env"] if e["name"].endswith("_FILE")}
    assert {v.rsplit("/", 1)[1] for v in files.values()} == keys, files
    for name, value in files.items():
        assert value.rsplit("/", 1)[0] == path, f"{name}={value} is not in the Secret's mount"


def check_auth(m):
    """Alertmanager carries the bearer token the hook requires, from the same Secret key."""
    assert re.search(r"dingtalk_auth_bearer_file \$webhook;", m["entrypoint"]), \
        "the entrypoint does not require Alertmanager's bearer token"
    assert re.search(r'\[ -n "\$webhook" \] \|\| fail', m["entrypoint"]), \
        "the entrypoint starts without a bearer token"
    key = "webhook-token"
    assert key in secret_keys(m)
    route, receivers = alertmanager_receivers(m)
    want = f"{ALERTMANAGER_SECRETS}/{SECRET_NAME}/{key}"
    for w in (w for r in receivers for w in r.get("webhook_configs", [])):
        auth = (w.get("http_config") or {}).get("authorization") or {}
        assert auth.get("type") == "Bearer" and auth.get("credentials_file") == want, auth
    amc = only(m, "AlertmanagerConfig")["spec"]
    for w in (w for r in amc["receivers"] for w in r.get("webhookConfigs", [])):
        auth = (w.get("httpConfig") or {}).get("authorization") or {}
        assert auth.get("type") == "Bearer", auth
        assert auth.get("credentials") == {"name": SECRET_NAME, "key": key}, auth
    side = sidecar_spec(m)
    assert SECRET_NAME in side.get("secrets", []), "Alertmanager needs the token file too"
    assert f"credentials_file: {want}" in m["files"]["alertmanager-sidecar.yaml"]["text"]


CHECKS = [check_secret, check_auth]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


MUTATIONS = {
    "a Secret key as an environment variable": (
        check_secret, lambda m: container(m)["env"].append(
            {"name": "ROBOT_TOKEN", "valueFrom": {"secretKeyRef": {"name": SECRET_NAME,
                                                                   "key": "token"}}})),
    "a file name the Secret has no key for": (
        check_secret, lambda m: env_var(m, "ROBOT_TOKEN_FILE").update(
            value="/run/secrets/dingtalk/tokn")),
    "Secret files readable by anyone": (
        check_secret, lambda m: volume(m, "secret")["secret"].update(defaultMode=0o644)),
    "placeholder that looks real": (
        check_secret, lambda m: doc(m, "Secret")["stringData"].update(token="abc123")),
    "Alertmanager without the token": (
        check_auth, lambda m: alertmanager_receivers(m)[1][0]["webhook_configs"][0]
        .pop("http_config")),
    "Alertmanager reading another key": (
        check_auth, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0]["httpConfig"]["authorization"]["credentials"].update(key="token")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
