"""What `kustomize build` makes of the kustomizations in deploy/kubernetes/, for machines
without kubectl (Debian 12's kubernetes-client is not installed by the tests): resources,
`namespace`, and `configMapGenerator` (files, options.labels), the generated ConfigMap named
<name>-<hash> and every reference to it in a pod spec rewritten, as kustomize does. Anything
else in a kustomization is an error here, so that this stays honest.
t/integration/test_kubectl_kustomize.py checks it against `kubectl kustomize` where kubectl is
installed."""

import hashlib
import os

import yaml

KNOWN = {"apiVersion", "kind", "resources", "namespace", "configMapGenerator"}


def render(directory):
    with open(os.path.join(directory, "kustomization.yaml"), encoding="utf-8") as f:
        k = yaml.safe_load(f)
    unknown = set(k) - KNOWN
    assert not unknown, f"kustomize_lite does not know {unknown}"
    docs = []
    for r in k.get("resources", []):
        with open(os.path.join(directory, r), encoding="utf-8") as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    names = {}
    for g in k.get("configMapGenerator", []):
        assert set(g) <= {"name", "files", "options"}, g
        data = {}
        for entry in g["files"]:
            key, _, path = entry.partition("=")
            with open(os.path.join(directory, path or key), encoding="utf-8") as f:
                data[key] = f.read()
        digest = hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()[:10]
        name = f"{g['name']}-{digest}"
        names[g["name"]] = name
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}
        labels = (g.get("options") or {}).get("labels")
        if labels:
            cm["metadata"]["labels"] = dict(labels)
        docs.append(cm)
    for d in docs:
        if k.get("namespace") and d["kind"] != "Namespace":
            d["metadata"]["namespace"] = k["namespace"]
        if d["kind"] == "Deployment":
            for v in d["spec"]["template"]["spec"].get("volumes", []):
                if "configMap" in v and v["configMap"]["name"] in names:
                    v["configMap"]["name"] = names[v["configMap"]["name"]]
    return docs
