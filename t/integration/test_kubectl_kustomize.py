"""kubectl's own kustomize on deploy/kubernetes/ and multi-target/ (skipped where kubectl is not
installed): it yields exactly the objects the static checks read, and what kustomize_lite.py
renders for them, but the generated ConfigMap's hash."""

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "static"))
from harness import world_readable_tmpdir  # noqa: E402
from k8s import K8S, MULTI, load, load_multi, multi_only, only, parse  # noqa: E402


@pytest.fixture(scope="module")
def manifests():
    return load()


@pytest.fixture(scope="module")
def multi():
    return load_multi()


def test_kustomize_renders_its_objects(manifests):
    """kubectl's own kustomize: the kustomization builds, and yields exactly these objects."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    p = subprocess.run(["kubectl", "kustomize", K8S], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rendered = parse(p.stdout)
    expected = [d for r in only(manifests, "Kustomization")["resources"]
                for d in manifests["files"][r]["docs"]]
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(rendered, key=key) == sorted(expected, key=key)


def test_multi_target_kustomize_renders_the_same(multi):
    """kubectl's kustomize (where installed) makes what kustomize_lite makes, but the hash."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed: the structure is checked by kustomize_lite only")
    p = subprocess.run(["kubectl", "kustomize", MULTI], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rendered = parse(p.stdout)
    cm = next(d for d in rendered if d["kind"] == "ConfigMap")
    ours = multi_only(multi, "ConfigMap")["metadata"]["name"]
    gen = multi["kustomization"]["configMapGenerator"][0]["name"]
    assert re.fullmatch(re.escape(gen) + r"-[a-z0-9]{10}", cm["metadata"]["name"]), cm["metadata"]
    expected = yaml.safe_load(yaml.safe_dump(multi["docs"]).replace(ours, cm["metadata"]["name"]))
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(rendered, key=key) == sorted(expected, key=key)
    # a template change is a new name, so a new pod template: the pods roll
    d = world_readable_tmpdir("dingtalk-kustomize-")
    try:
        copy_dir = os.path.join(d, "multi")
        shutil.copytree(MULTI, copy_dir)
        with open(os.path.join(copy_dir, "message.mustache"), "a") as f:
            f.write("\n(edited)\n")
        p = subprocess.run(["kubectl", "kustomize", copy_dir], capture_output=True, text=True,
                           timeout=60)
        edited = next(x for x in parse(p.stdout) if x["kind"] == "ConfigMap")
        assert edited["metadata"]["name"] != cm["metadata"]["name"]
    finally:
        shutil.rmtree(d, ignore_errors=True)
