"""deploy/kubernetes/, read and taken apart for the checks in t/static/ (and for the tests in
t/integration/ that run what the manifests describe: nginx -t on their configuration, the
Deployment's container run like a pod, promtool on the PrometheusRule, kubectl kustomize).

The names the manifests must use: the Flask hook's users' (the seed) and the container
image's. load() reads every file of deploy/kubernetes/ (a key given twice is an error, as it is
for kubectl) with the image's Dockerfile, deploy/docker/nginx.conf and docker-entrypoint.sh;
the accessors below find an object, a container, a port, a server block in nginx.conf.
load_multi() is multi-target/ as kustomize renders it (kustomize_lite.py). The fixtures
`manifests` and `multi` that serve them are in t/static/conftest.py, and in the integration
files that use them."""

import os
import re

import yaml


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
K8S = os.path.join(REPO, "deploy", "kubernetes")

# What the Flask hook's users already have (the seed), and what the container image uses.
NAMESPACE = "kube-ops"
APP = "dingtalk-hook"
SECRET_NAME = "dingtalk-secret"
CONFIGMAP = "dingtalk-hook-nginx"
PORT = 5000
METRICS_PORT = 9095
SERVICE_DNS = f"{APP}.{NAMESPACE}.svc.cluster.local"
SECRET_KEYS = {"token", "secret", "webhook-token"}
WWW_DATA = 33  # the image's USER (Debian's www-data)
ALERTMANAGER_SECRETS = "/etc/alertmanager/secrets"  # where prometheus-operator mounts spec.secrets

EXPECTED_FILES = {"namespace.yaml", "secret.yaml", "configmap.yaml", "deployment.yaml",
                  "service.yaml", "networkpolicy.yaml", "alertmanager-receiver.yaml",
                  "alertmanagerconfig.yaml", "alertmanager-sidecar.yaml", "nginx-sidecar.conf",
                  "kustomization.yaml", "README.md", "poddisruptionbudget.yaml",
                  "servicemonitor.yaml", "prometheusrule.yaml"}
API_VERSIONS = {"Namespace": "v1", "Secret": "v1", "ConfigMap": "v1", "Deployment": "apps/v1",
                "Service": "v1", "NetworkPolicy": "networking.k8s.io/v1",
                "AlertmanagerConfig": "monitoring.coreos.com/v1alpha1",
                "Alertmanager": "monitoring.coreos.com/v1",
                "PodDisruptionBudget": "policy/v1", "ServiceMonitor": "monitoring.coreos.com/v1",
                "PrometheusRule": "monitoring.coreos.com/v1",
                "Kustomization": "kustomize.config.k8s.io/v1beta1"}
SEED_RESOURCES = {"cpu": "50m", "memory": "100Mi"}
HOLD_SECONDS = 10  # dingtalk_rate_limit's default hold: a delivery may wait that long first


def read(rel):
    with open(os.path.join(REPO, rel), encoding="utf-8") as f:
        return f.read()


class StrictLoader(yaml.SafeLoader):
    """safe_load, but a key given twice is an error (PyYAML keeps the last one silently;
    kubectl rejects the file)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse(text):
    return [d for d in yaml.load_all(text, Loader=StrictLoader) if d is not None]


def load():
    """Every file of deploy/kubernetes/ (YAML parsed like safe_load_all), plus the image's."""
    files = {}
    for name in sorted(os.listdir(K8S)):
        if os.path.isdir(os.path.join(K8S, name)):  # multi-target/: an example of its own
            continue
        with open(os.path.join(K8S, name), encoding="utf-8") as f:
            text = f.read()
        docs = []
        if name.endswith((".yaml", ".yml")):
            docs = parse(text)
            assert docs == [d for d in yaml.safe_load_all(text) if d is not None]
        files[name] = {"text": text, "docs": docs}
    return {"files": files, "docker_nginx_conf": read("deploy/docker/nginx.conf"),
            "entrypoint": read("deploy/docker/docker-entrypoint.sh"),
            "dockerfile": read("Dockerfile")}


# accessors


def objects(m):
    for name, f in m["files"].items():
        for d in f["docs"]:
            if isinstance(d, dict) and "kind" in d:
                yield name, d


def only(m, kind):
    found = [d for _, d in objects(m) if d["kind"] == kind]
    assert len(found) == 1, f"expected exactly one {kind}, found {len(found)}"
    return found[0]


def deployment(m):
    return only(m, "Deployment")


def pod_spec(m):
    return deployment(m)["spec"]["template"]["spec"]


def the_container(containers):
    found = [c for c in containers if c.get("name") == APP]
    assert len(found) == 1, f"expected one container named {APP}: {containers}"
    return found[0]


def container(m):
    containers = pod_spec(m)["containers"]
    assert len(containers) == 1, "the Deployment runs the hook alone"
    return the_container(containers)


def sidecar_spec(m):
    return only(m, "Alertmanager")["spec"]


def service(m):
    return only(m, "Service")


def secret_keys(m):
    s = only(m, "Secret")
    return set(s.get("stringData") or {}) | set(s.get("data") or {})


def nginx_conf(m):
    """The nginx.conf the pod runs: the ConfigMap's."""
    data = only(m, "ConfigMap").get("data") or {}
    assert "nginx.conf" in data, f"the ConfigMap has no nginx.conf key: {sorted(data)}"
    return data["nginx.conf"]


def uncommented(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def listen_ports(conf):
    ports = []
    for arg in re.findall(r"^\s*listen\s+([^;]+);", uncommented(conf), re.M):
        addr = arg.split()[0]
        ports.append(int(addr.rsplit(":", 1)[-1]))
    return ports


def servers(conf):
    """The server blocks of nginx.conf, as text (no nested braces beyond locations)."""
    text, found = uncommented(conf), []
    for m in re.finditer(r"\bserver\s*\{", text):
        depth, i = 1, m.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        found.append(text[m.end():i - 1])
    return found


def server_of(conf, location):
    """The one server block with `location = <location>`."""
    found = [b for b in servers(conf) if re.search(r"location\s*=\s*" + re.escape(location) +
                                                   r"\s*\{", b)]
    assert len(found) == 1, f"expected one server with location = {location}: {len(found)}"
    return found[0]


def exact_locations(conf):
    """location = /path { ... } -> directive names in its body."""
    found = {}
    for path, body in re.findall(r"location\s*=\s*(\S+)\s*\{([^}]*)\}", uncommented(conf)):
        found[path] = {d.split()[0] for d in body.split(";") if d.strip()}
    return found


def main_directive(conf, name):
    m = re.search(rf"^{name}\s+([^;]*);", uncommented(conf), re.M)
    return m.group(1).strip() if m else None


def seconds(value):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert m, f"not an nginx time: {value!r}"
    n, unit = int(m.group(1)), m.group(2) or "s"
    return {"ms": n / 1000, "s": n, "m": n * 60}[unit]


def dingtalk_timeout(conf):
    values = re.findall(r"^\s*dingtalk_timeout\s+(\S+)\s*;", uncommented(conf), re.M)
    return max((seconds(v) for v in values), default=10)  # the module's default: 10s


def dockerfile_lines(m):
    text = m["dockerfile"].replace("\\\n", " ")
    return [l.strip() for l in text.splitlines() if l.strip() and not l.lstrip().startswith("#")]


def dockerfile_copy_dest(m, src):
    for line in dockerfile_lines(m):
        parts = line.split()
        if parts[0] == "COPY" and "--from" not in line and parts[1] == src:
            return parts[2]
    raise AssertionError(f"the Dockerfile does not COPY {src}")


def dockerfile_entrypoint(m):
    for line in dockerfile_lines(m):
        if line.startswith("ENTRYPOINT"):
            return yaml.safe_load(line.split(None, 1)[1])[0]
    raise AssertionError("no ENTRYPOINT in the Dockerfile")


def named_port(c, port):
    """A probe/Service port (name or number) -> the container's port number."""
    for p in c.get("ports") or []:
        if port in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    raise AssertionError(f"port {port!r} is not a port of container {c['name']}: {c.get('ports')}")


def secret_key_refs(node):
    if isinstance(node, dict):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for v in node.values():
            yield from secret_key_refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from secret_key_refs(v)


def secret_mount(m):
    """(mount path, volume) of the Secret in the Deployment's container."""
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    found = [(mt["mountPath"], volumes[mt["name"]]) for mt in container(m)["volumeMounts"]
             if "secret" in volumes[mt["name"]]]
    assert len(found) == 1, f"one Secret volume mounted: {found}"
    return found[0]


def alertmanager_receivers(m):
    """Plain alertmanager.yml snippet: (route, receivers)."""
    docs = m["files"]["alertmanager-receiver.yaml"]["docs"]
    assert len(docs) == 1 and "kind" not in docs[0], "a plain Alertmanager config snippet"
    return docs[0]["route"], docs[0]["receivers"]


def urls_in(text):
    return re.findall(r"https?://[^\s'\"`)<>\]]+", text)


def nginx_conf_path(m):
    return next(e["value"] for e in container(m)["env"] if e["name"] == "NGINX_CONF")


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                   "persistentVolumeClaim", "projected", "secret"}


def restricted_violations(pod, containers):
    """The "restricted" Pod Security Standard (Kubernetes 1.25+), as far as it can be checked
    without a cluster: what a namespace labelled pod-security.kubernetes.io/enforce=restricted
    would refuse in this pod spec."""
    out = []
    psc = pod.get("securityContext") or {}
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            out.append(f"{key}: true")
    for v in pod.get("volumes") or []:
        kinds = set(v) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            out.append(f"volume {v['name']}: {kinds - ALLOWED_VOLUMES}")
    if psc.get("runAsUser") == 0:
        out.append("pod runAsUser 0")
    for c in containers:
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged"):
            out.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            out.append(f"{name}: adds {set(caps['add']) - {'NET_BIND_SERVICE'}}")
        if not (sc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            out.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", psc.get("runAsUser")) == 0:
            out.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            out.append(f"{name}: seccompProfile {seccomp}")
        if any(p.get("hostPort") for p in c.get("ports") or []):
            out.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            out.append(f"{name}: procMount")
        se = (sc.get("seLinuxOptions") or {}).get("type")
        if se not in (None, "", "container_t", "container_init_t", "container_kvm_t"):
            out.append(f"{name}: seLinuxOptions type {se}")
    return out


def prometheus_rules(m):
    return [r for g in only(m, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]


# ------------------------------------------------------------------------------------------
# multi-target/: several robots, a token file each, a generated ConfigMap


MULTI = os.path.join(K8S, "multi-target")


def load_multi():
    from kustomize_lite import render
    docs = render(MULTI)
    with open(os.path.join(MULTI, "secret.yaml"), encoding="utf-8") as f:
        secret = yaml.safe_load(f)
    with open(os.path.join(MULTI, "kustomization.yaml"), encoding="utf-8") as f:
        kustomization = yaml.safe_load(f)
    return {"docs": docs, "secret": secret, "kustomization": kustomization}


def multi_only(multi, kind):
    found = [d for d in multi["docs"] if d["kind"] == kind]
    assert len(found) == 1, kind
    return found[0]


# ------------------------------------------------------------------------------------------
# for a deliberate mismatch in a copy of the manifests (test_a_mismatch_is_caught)


def doc(m, kind):
    return only(m, kind)


def set_conf(m, conf):
    only(m, "ConfigMap")["data"]["nginx.conf"] = conf


def env_var(m, name):
    return next(e for e in container(m)["env"] if e["name"] == name)


def mount(m, path):
    return next(v for v in container(m)["volumeMounts"] if v["mountPath"] == path)


def volume(m, kind):
    return next(v for v in pod_spec(m)["volumes"] if kind in v)


def edit_text(m, name, old, new):
    f = m["files"][name]
    assert old in f["text"]
    f["text"] = f["text"].replace(old, new)


def edit_conf(m, old, new):
    conf = nginx_conf(m)
    assert old in conf, old
    set_conf(m, conf.replace(old, new))


def webhook_auth(m):
    return alertmanager_receivers(m)[1][0]["webhook_configs"][0]["http_config"]["authorization"]
