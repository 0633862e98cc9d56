"""t/static/: checks that start no process. They read the repository's files (deploy/kubernetes/,
deploy/docker/, the Dockerfile) and hold them to each other: `make static`, no build needed.
The fixtures here serve every file: the manifests as k8s.load() reads them, multi-target/ as
k8s.load_multi() renders it (kustomize_lite.py, in Python)."""

import pytest

from k8s import load, load_multi


@pytest.fixture(scope="module")
def manifests():
    return load()


@pytest.fixture(scope="module")
def multi():
    return load_multi()
