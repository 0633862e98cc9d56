"""deploy/kubernetes/: the manifests agree with each other, with the container image
(Dockerfile, deploy/docker/nginx.conf, docker-entrypoint.sh) and with the Flask hook's names.

No cluster here, so the manifests are checked statically: every name, namespace,
label/selector, port, Secret key, ConfigMap key and mount, environment variable, URL and
apiVersion must match the object or file that uses it. The ConfigMap's nginx.conf also goes
through a real `nginx -t` with the built module.

The Deployment's container is then run roughly the way a kubelet would run it, with
unshare/chroot/setpriv: a read-only root, its emptyDirs, its ConfigMap directory and its Secret's
files, as its user with no capabilities and no_new_privs, in a network namespace of its own.
It must start, answer its probes and metrics, refuse a webhook without the bearer token and
take one with it, and quit on SIGQUIT within its grace period. The pod specs are also held to
the "restricted" Pod Security Standard, its rules written down here.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import os
import re
import shutil
import signal
import subprocess
import tempfile
import urllib.parse

import pytest
import yaml

from harness import MODULE, NGINX_BIN, REPO, SECRET, TOKEN, world_readable_tmpdir

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


# ------------------------------------------------------------------------------------------
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


# ------------------------------------------------------------------------------------------
# the checks


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


def check_ports(m):
    conf = nginx_conf(m)
    assert sorted(set(listen_ports(conf))) == [PORT, METRICS_PORT], listen_ports(conf)
    c = container(m)
    ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
    assert ports == {"http": PORT, "metrics": METRICS_PORT}, ports
    svc = {p["name"]: p for p in service(m)["spec"]["ports"]}
    assert sorted(svc) == ["hook", "metrics"], svc
    assert svc["hook"]["port"] == PORT and named_port(c, svc["hook"]["targetPort"]) == PORT
    assert svc["metrics"]["port"] == METRICS_PORT and \
        named_port(c, svc["metrics"]["targetPort"]) == METRICS_PORT
    health = server_of(conf, "/healthz")
    assert listen_ports("server {" + health + "}") == [METRICS_PORT], "health on the metrics port"
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert named_port(c, get["port"]) == METRICS_PORT, f"{probe} port {get['port']!r}"
        assert get["path"] == "/healthz", f"{probe} asks {get['path']}, not /healthz"
    assert re.search(r"location\s*=\s*/healthz\s*\{[^}]*return\s+200", health), \
        "/healthz answers 200 without credentials"
    ann = deployment(m)["spec"]["template"]["metadata"].get("annotations") or {}
    assert ann.get("prometheus.io/scrape") == "true", ann
    assert int(ann["prometheus.io/port"]) == METRICS_PORT, ann
    assert "dingtalk_metrics" in exact_locations(health).get(ann["prometheus.io/path"], ()), \
        f"{ann['prometheus.io/path']} is not the dingtalk_metrics location on {METRICS_PORT}"
    # Every URL in these files that reaches the hook (Service DNS name, the sidecar's
    # localhost, a port-forward) uses the webhook's port, or the metrics port for its paths.
    for name, f in m["files"].items():
        for url in urls_in(f["text"]):
            u = urllib.parse.urlsplit(url)
            if u.hostname in (SERVICE_DNS, "localhost", "127.0.0.1"):
                wanted = METRICS_PORT if u.path in ("/metrics", "/healthz") else PORT
                assert u.port == wanted, f"{name}: {url} does not use port {wanted}"


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


def check_environment(m):
    c = container(m)
    names = sorted(e["name"] for e in c["env"])
    assert names == ["NGINX_CONF", "ROBOT_SECRET_FILE", "ROBOT_TOKEN_FILE",
                     "WEBHOOK_TOKEN_FILE"], names
    for e in c["env"]:
        assert set(e) == {"name", "value"}, f"{e['name']}: a plain value, a file's path"
        assert re.search(r"\b" + e["name"] + r"\b", m["entrypoint"]), \
            f"docker-entrypoint.sh does not read {e['name']}"
    optional = re.search(r"credential robot-secret ROBOT_SECRET_FILE ROBOT_SECRET optional",
                         m["entrypoint"])
    assert optional, "the signing secret is optional: a Secret may lack the key"
    assert "env ROBOT_TOKEN" not in uncommented(nginx_conf(m)), "no token in nginx's environment"


def nginx_conf_path(m):
    return next(e["value"] for e in container(m)["env"] if e["name"] == "NGINX_CONF")


def check_config_volume(m):
    """The ConfigMap is a directory (no subPath: podman 4.3 cannot mount one onto a file, and a
    subPath never sees an update); NGINX_CONF names its nginx.conf, which the entrypoint runs."""
    c, spec = container(m), pod_spec(m)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = c["volumeMounts"]
    assert {v["name"] for v in mounts} == set(volumes), "a mount without a volume, or unused"
    assert not [v for v in mounts if "subPath" in v or "subPathExpr" in v], \
        "a subPath mount: podman kube play cannot play it, and it never follows an update"
    conf_dir, conf_file = nginx_conf_path(m).rsplit("/", 1)
    found = [v for v in mounts if v["mountPath"] == conf_dir]
    assert len(found) == 1, f"NGINX_CONF={nginx_conf_path(m)} is not in a mounted directory"
    mount = found[0]
    vol = volumes[mount["name"]]
    assert "configMap" in vol, vol
    cm = only(m, "ConfigMap")
    assert vol["configMap"]["name"] == cm["metadata"]["name"], \
        f"the volume uses ConfigMap {vol['configMap']['name']}, not {cm['metadata']['name']}"
    items = vol["configMap"].get("items") or [{"key": k, "path": k} for k in cm["data"]]
    paths = {i["path"]: i["key"] for i in items}
    assert conf_file in paths, f"NGINX_CONF's {conf_file} is not an item path {paths}"
    assert paths[conf_file] in cm["data"], "the item's key is not in the ConfigMap"
    assert paths[conf_file] == "nginx.conf"
    assert mount.get("readOnly") is True
    # not over the image's own nginx.conf (a directory there would hide the rest of /etc/nginx)
    image_conf = dockerfile_copy_dest(m, "deploy/docker/nginx.conf")
    assert conf_dir != os.path.dirname(image_conf), conf_dir
    assert re.search(r'-c "\$nginx_conf"', m["entrypoint"]) and \
        "NGINX_CONF" in m["entrypoint"], "the entrypoint does not run NGINX_CONF"


def writable_mounts(m):
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    return [mt["mountPath"] for mt in container(m)["volumeMounts"]
            if "emptyDir" in volumes[mt["name"]] and not mt.get("readOnly")]


def check_writable_paths(m):
    """With a read-only root, every path nginx or the entrypoint writes is in an emptyDir."""
    c = container(m)
    assert c["securityContext"].get("readOnlyRootFilesystem") is True
    conf = nginx_conf(m)
    written = [main_directive(conf, "pid")]
    written += re.findall(r"^\s*\w+_temp_path\s+(\S+?)\s*;", uncommented(conf), re.M)
    assert len(written) == 6, f"pid and the five *_temp_path: {written}"
    includes = re.findall(r"^\s*include\s+(\S+)/\*\.conf\s*;", uncommented(conf), re.M)
    made = re.findall(r"^conf=(\S+)$", m["entrypoint"], re.M)
    assert includes and includes == made, f"include {includes} vs entrypoint's conf= {made}"
    written += [p + "/credentials.conf" for p in made]
    error_log = main_directive(conf, "error_log").split()[0]
    assert error_log == "stderr", f"error_log {error_log}: the container's stderr, not a file"
    assert "nginx -e stderr" in m["entrypoint"], "nginx's log before its config, too"
    for path in written:
        assert any(path.startswith(w.rstrip("/") + "/") for w in writable_mounts(m)), \
            f"{path} is written at run time but is on the read-only root"


def check_configmap_is_the_image_config(m):
    assert nginx_conf(m) == m["docker_nginx_conf"], \
        "configmap.yaml's nginx.conf differs from deploy/docker/nginx.conf"


def check_resources(m):
    for c in (container(m), the_container(sidecar_spec(m)["containers"])):
        assert c["resources"] == {"requests": SEED_RESOURCES, "limits": SEED_RESOURCES}, \
            c["resources"]


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


def check_graceful_termination(m):
    assert "STOPSIGNAL SIGQUIT" in dockerfile_lines(m), "nginx quits gracefully on SIGQUIT"
    spec, c = pod_spec(m), container(m)
    grace = spec["terminationGracePeriodSeconds"]
    pre_stop = (c.get("lifecycle") or {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_seconds = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    needed = pre_stop_seconds + HOLD_SECONDS + dingtalk_timeout(nginx_conf(m))
    assert grace >= needed, f"terminationGracePeriodSeconds {grace} < {needed} for one delivery"


def check_webhook_url(url, m, where):
    u = urllib.parse.urlsplit(url)
    svc = service(m)
    dns = f"{svc['metadata']['name']}.{svc['metadata']['namespace']}.svc.cluster.local"
    assert u.scheme == "http" and u.hostname == dns == SERVICE_DNS, f"{where}: {url}"
    hook = {p["name"]: p["port"] for p in svc["spec"]["ports"]}["hook"]
    assert u.port == hook, f"{where}: {url} is not the Service's hook port"
    assert "dingtalk" in exact_locations(nginx_conf(m)).get(u.path or "/", ()), \
        f"{where}: {url} does not reach the dingtalk location"


def check_alertmanager(m):
    route, receivers = alertmanager_receivers(m)
    names = [r["name"] for r in receivers]
    assert route["receiver"] in names
    hooks = [w for r in receivers for w in r.get("webhook_configs", [])]
    assert hooks
    for w in hooks:
        check_webhook_url(w["url"], m, "alertmanager-receiver.yaml")
        assert w["send_resolved"] is True
    amc = only(m, "AlertmanagerConfig")
    assert amc["metadata"]["namespace"] == service(m)["metadata"]["namespace"]
    spec = amc["spec"]
    assert spec["route"]["receiver"] in [r["name"] for r in spec["receivers"]]
    hooks = [w for r in spec["receivers"] for w in r.get("webhookConfigs", [])]
    assert hooks
    for w in hooks:
        check_webhook_url(w["url"], m, "alertmanagerconfig.yaml")
        assert w["sendResolved"] is True


def check_sidecar(m):
    spec = sidecar_spec(m)
    side = the_container(spec["containers"])
    assert side == container(m), "the sidecar container differs from the Deployment's"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(volumes) == {v["name"] for v in pod_spec(m)["volumes"]}
    for v in pod_spec(m)["volumes"]:
        if "configMap" in v:  # the sidecar's own nginx.conf: the webhook on 127.0.0.1 only
            items = volumes[v["name"]]["configMap"]["items"]
            assert items == [{"key": "nginx-sidecar.conf", "path": "nginx.conf"}], items
        else:
            assert volumes.get(v["name"]) == v, f"sidecar volume {v['name']} differs"
    side_conf = m["files"]["nginx-sidecar.conf"]["text"]
    body = lambda text: uncommented(text).replace(f"listen 127.0.0.1:{PORT}", f"listen {PORT}")
    assert body(side_conf) == uncommented(m["docker_nginx_conf"]), \
        "nginx-sidecar.conf is the image's nginx.conf but for the webhook's address"
    assert re.findall(r"^\s*listen\s+([^\s;]+)", uncommented(side_conf), re.M) == \
        [f"127.0.0.1:{PORT}", f"127.0.0.1:{PORT}", str(METRICS_PORT)]
    text = m["files"]["alertmanager-sidecar.yaml"]["text"]
    assert f"url: http://localhost:{PORT}/" in text, "the sidecar's webhook URL in a comment"


def check_kustomization(m):
    k = only(m, "Kustomization")
    assert sorted(k["resources"]) == sorted(["namespace.yaml", "secret.yaml", "configmap.yaml",
                                             "deployment.yaml", "service.yaml",
                                             "networkpolicy.yaml",
                                             "poddisruptionbudget.yaml"]), k["resources"]
    for r in k["resources"]:
        assert r in m["files"], f"kustomization lists missing {r}"


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


def check_disruption_budget(m):
    """The one replica may be evicted (a drain must not wait for ever); the budget selects the
    Deployment's pods."""
    pdb = only(m, "PodDisruptionBudget")["spec"]
    labels = deployment(m)["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items(), "it selects no pod"
    replicas = deployment(m)["spec"]["replicas"]
    if "minAvailable" in pdb:
        assert int(pdb["minAvailable"]) < replicas, "minAvailable = replicas: no drain ever ends"
    else:
        assert int(pdb["maxUnavailable"]) >= 1, "maxUnavailable 0: no drain ever ends"


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


MODULE_METRICS = {"dingtalk_notifications_total", "dingtalk_errcode_total",
                  "dingtalk_messages_failed_total", "dingtalk_tasks_in_flight", "up"}


def prometheus_rules(m):
    return [r for g in only(m, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]


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


def check_podman_can_play(m):
    """What Debian 12's podman 4.3 needs to play the pods (deploy/kubernetes/README.md, "What
    podman 4.3 cannot play"): every Secret volume says `optional` (it panics without), no
    subPath (it cannot mount one onto a file), no hostPort. The fields it ignores
    (defaultMode, fsGroup, emptyDir's medium) are held by the other checks."""
    pods = [("Deployment", pod_spec(m)), ("sidecar", sidecar_spec(m))]
    for where, spec in pods:
        for v in spec["volumes"]:
            if "secret" in v:
                assert isinstance(v["secret"].get("optional"), bool), \
                    f"{where}: Secret volume {v['name']} without optional: podman 4.3 panics"
        for c in spec["containers"]:
            for mt in c.get("volumeMounts") or []:
                assert "subPath" not in mt, f"{where}: subPath {mt}: podman 4.3 cannot play it"
            assert not any(p.get("hostPort") for p in c.get("ports") or []), where


CHECKS = [check_files_names_and_namespaces, check_api_versions, check_labels_and_selectors,
          check_ports, check_secret, check_environment, check_config_volume,
          check_writable_paths, check_configmap_is_the_image_config, check_resources,
          check_security_context, check_network_policy, check_host_names, check_auth,
          check_graceful_termination, check_alertmanager, check_sidecar, check_kustomization,
          check_readme, check_disruption_budget, check_service_monitor, check_prometheus_rule,
          check_podman_can_play]


@pytest.fixture(scope="module")
def manifests():
    return load()


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


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


MUTATIONS = {
    "service targetPort names no container port": (
        check_ports, lambda m: service(m)["spec"]["ports"][0].update(targetPort="web")),
    "container port renamed, probes still use metrics": (
        check_ports, lambda m: container(m)["ports"][1].update(name="stats")),
    "nginx listens on another port": (
        check_ports, lambda m: edit_conf(m, "listen 9095;", "listen 9096;")),
    "probe on the webhook, which needs credentials": (
        check_ports, lambda m: container(m)["livenessProbe"]["httpGet"].update(path="/",
                                                                               port="http")),
    "metrics annotation on the webhook's port": (
        check_ports, lambda m: deployment(m)["spec"]["template"]["metadata"]["annotations"]
        .update({"prometheus.io/port": "5000"})),
    "a URL in the README on another port": (
        check_ports, lambda m: edit_text(m, "README.md", "http://127.0.0.1:9095/metrics",
                                         "http://127.0.0.1:5000/metrics")),
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
    "env var the entrypoint does not read": (
        check_environment, lambda m: env_var(m, "ROBOT_TOKEN_FILE").update(name="TOKEN_FILE")),
    "the token in nginx's environment": (
        check_environment, lambda m: set_conf(m, "env ROBOT_TOKEN;\n" + nginx_conf(m))),
    "volume names another ConfigMap": (
        check_config_volume, lambda m: volume(m, "configMap")["configMap"]
        .update(name="dingtalk-nginx")),
    "NGINX_CONF not the ConfigMap item": (
        check_config_volume, lambda m: env_var(m, "NGINX_CONF").update(
            value="/etc/nginx/dingtalk-hook/nginx")),
    "a subPath mount podman cannot play": (
        check_config_volume, lambda m: mount(m, "/etc/nginx/dingtalk-hook").update(
            mountPath="/etc/nginx/nginx.conf", subPath="nginx.conf")),
    "config mounted beside NGINX_CONF": (
        check_config_volume, lambda m: mount(m, "/etc/nginx/dingtalk-hook")
        .update(mountPath="/etc/nginx/conf.d")),
    "no writable /tmp for the pid file": (
        check_writable_paths, lambda m: container(m)["volumeMounts"].remove(mount(m, "/tmp"))),
    "ConfigMap differs from the image's nginx.conf by one space": (
        check_configmap_is_the_image_config, lambda m: set_conf(m, nginx_conf(m) + " ")),
    "Service selects another label": (
        check_labels_and_selectors, lambda m: service(m)["spec"].update(selector={"app": "hook"})),
    "the seed's obsolete apiVersion": (
        check_api_versions, lambda m: deployment(m).update(apiVersion="extensions/v1beta1")),
    "Secret in another namespace": (
        check_files_names_and_namespaces, lambda m: doc(m, "Secret")["metadata"]
        .update(namespace="monitoring")),
    "more memory than the seed": (
        check_resources, lambda m: container(m)["resources"]["limits"].update(memory="128Mi")),
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
    "ingress from anywhere": (
        check_network_policy, lambda m: doc(m, "NetworkPolicy")["spec"]["ingress"][0]["from"]
        .append({"ipBlock": {"cidr": "0.0.0.0/0"}})),
    "egress to plain http": (
        check_network_policy, lambda m: doc(m, "NetworkPolicy")["spec"]["egress"][0]["ports"]
        .append({"port": 80, "protocol": "TCP"})),
    "the webhook answers any host name": (
        check_host_names, lambda m: edit_conf(m, "listen 5000 default_server;", "listen 5001;")),
    "Alertmanager without the token": (
        check_auth, lambda m: alertmanager_receivers(m)[1][0]["webhook_configs"][0]
        .pop("http_config")),
    "Alertmanager reading another key": (
        check_auth, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0]["httpConfig"]["authorization"]["credentials"].update(key="token")),
    "grace period shorter than one delivery": (
        check_graceful_termination, lambda m: pod_spec(m).update(terminationGracePeriodSeconds=10)),
    "webhook URL on the metrics port": (
        check_alertmanager, lambda m: alertmanager_receivers(m)[1][0]["webhook_configs"][0]
        .update(url=f"http://{SERVICE_DNS}:{METRICS_PORT}/")),
    "webhook URL in another namespace": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(url=f"http://{APP}.monitoring.svc.cluster.local:{PORT}/")),
    "resolved notifications not sent": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(sendResolved=False)),
    "sidecar probe drifted from the Deployment": (
        check_sidecar, lambda m: the_container(sidecar_spec(m)["containers"])["readinessProbe"]
        ["httpGet"].update(port=5001)),
    "sidecar webhook on every address": (
        check_sidecar, lambda m: edit_text(m, "nginx-sidecar.conf", "listen 127.0.0.1:5000;",
                                           "listen 5000;")),
    "kustomization without the NetworkPolicy": (
        check_kustomization, lambda m: doc(m, "Kustomization")["resources"]
        .remove("networkpolicy.yaml")),
    "a budget that blocks every drain": (
        check_disruption_budget, lambda m: doc(m, "PodDisruptionBudget")["spec"].update(
            maxUnavailable=0)),
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
    "a Secret volume without optional (podman 4.3 panics)": (
        check_podman_can_play, lambda m: volume(m, "secret")["secret"].pop("optional")),
    "the sidecar's config by subPath again": (
        check_podman_can_play, lambda m: the_container(sidecar_spec(m)["containers"])
        ["volumeMounts"][0].update(subPath="nginx.conf")),
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
    assert {check for check, _ in MUTATIONS.values()} == set(CHECKS)


def test_a_duplicate_key_is_an_error():
    original = read("deploy/kubernetes/service.yaml")
    assert parse(original)
    doubled = original.replace("  type: ClusterIP\n", "  type: ClusterIP\n  type: NodePort\n")
    assert doubled != original
    with pytest.raises(yaml.YAMLError, match="duplicate key 'type'"):
        parse(doubled)


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


# ------------------------------------------------------------------------------------------
# nginx -t on the ConfigMap's nginx.conf, with the built module


def nginx_env(**extra):
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), **extra}
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):  # make integration-asan
        env["LD_PRELOAD"] = os.environ["DINGTALK_NGINX_PRELOAD"]
        env.update({k: os.environ[k] for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS") if k in os.environ})
    return env


def entrypoint_conf(m, include_dir, env):
    """Runs the real docker-entrypoint.sh (its include dir moved to include_dir) with env, up to
    the point where it would start nginx: (exit status, stderr)."""
    script = m["entrypoint"].replace("conf=/tmp/dingtalk.d", f"conf={include_dir}")
    assert script != m["entrypoint"]
    p = subprocess.run(["sh", "-c", script, "entrypoint", "true"], capture_output=True,
                       text=True, env={"PATH": os.environ["PATH"], **env}, timeout=30)
    return p.returncode, p.stderr


def run_nginx_t(d, conf, env=None):
    """nginx -t on conf moved into the temp prefix d: module by absolute path, /tmp (and the
    include dir in it) inside the prefix. The include dir holds what the entrypoint wrote."""
    conf, n = re.subn(r"/tmp(?=/)", d, conf)
    assert n >= 7, "pid, five temp paths and the include dir"
    load = "load_module modules/ngx_http_dingtalk_module.so;"
    assert load in conf
    conf = conf.replace(load, f"load_module {MODULE};")
    files = re.sub(r"^\s*(location|return)\b.*$", "", uncommented(conf), flags=re.M)  # URIs
    for path in re.findall(r"(?<![\w.])/[\w.-]+/[\w./*-]+", files):
        assert path.startswith(d + "/") or path in (MODULE, "/dev/stderr"), \
            f"{path} would escape the temp prefix"
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    return subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", os.path.join(d, "nginx.conf"),
                           "-e", os.path.join(d, "error.log")],
                          capture_output=True, text=True, env=env or nginx_env(), timeout=60)


@pytest.fixture
def pod_files():
    """A temp prefix with the Secret's keys as files (values given per test), the entrypoint's
    include dir, and nginx -t over both."""
    dirs = []

    def make(m, values):
        d = world_readable_tmpdir("dingtalk-k8s-")
        dirs.append(d)
        secrets = os.path.join(d, "secrets")
        os.mkdir(secrets)
        config = os.path.join(d, "config")
        os.mkdir(config)
        env = {"NGINX_CONF": os.path.join(config, "nginx.conf")}
        with open(env["NGINX_CONF"], "w") as f:
            f.write(nginx_conf(m))
        for e in container(m)["env"]:
            if e["name"] == "NGINX_CONF":
                continue
            key = e["value"].rsplit("/", 1)[1]
            env[e["name"]] = os.path.join(secrets, key)
            if values.get(key) is not None:
                with open(env[e["name"]], "w") as f:
                    f.write(values[key])
        rc, err = entrypoint_conf(m, os.path.join(d, "dingtalk.d"), env)
        return d, rc, err

    yield make
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


GOOD = {"token": TOKEN, "secret": SECRET + "\n", "webhook-token": "b" * 48 + "\n"}


def test_configmap_nginx_conf_passes_nginx_t(manifests, pod_files):
    d, rc, err = pod_files(manifests, GOOD)
    assert rc == 0, err
    written = open(os.path.join(d, "dingtalk.d", "credentials.conf")).read()
    assert TOKEN not in written and SECRET not in written, "paths only, never the values"
    p = run_nginx_t(d, nginx_conf(manifests))
    assert p.returncode == 0 and "test is successful" in p.stderr, p.stderr


@pytest.mark.parametrize("missing", ["token", "webhook-token"])
def test_the_entrypoint_refuses_to_start_without(manifests, pod_files, missing):
    d, rc, err = pod_files(manifests, dict(GOOD, **{missing: None}))
    var = next(e["name"] for e in container(manifests)["env"] if e["value"].endswith(missing))
    assert rc != 0 and f"{var}: cannot read" in err, err
    rc, err = entrypoint_conf(manifests, os.path.join(d, "again"),
                              {"NGINX_CONF": os.path.join(d, "config", "nginx.conf")})
    assert rc != 0 and "set ROBOT_TOKEN_FILE" in err, err


def test_without_the_optional_secret_nothing_is_signed(manifests, pod_files):
    d, rc, err = pod_files(manifests, dict(GOOD, secret=None))
    assert rc == 0, err
    assert "dingtalk_secret_file" not in open(os.path.join(d, "dingtalk.d",
                                                           "credentials.conf")).read()
    assert run_nginx_t(d, nginx_conf(manifests)).returncode == 0


@pytest.mark.parametrize("key,value,why", [
    ("token", "abc-def", "does not hold a DingTalk robot token"),
    ("secret", "SECnot-hex", "does not hold a DingTalk signing secret"),
    ("webhook-token", "short", "a bearer token needs 16 characters"),
])
def test_a_bad_credential_stops_nginx_naming_its_file(manifests, pod_files, key, value, why):
    d, rc, err = pod_files(manifests, dict(GOOD, **{key: value}))
    assert rc == 0, err
    p = run_nginx_t(d, nginx_conf(manifests))
    assert p.returncode != 0 and why in p.stderr, p.stderr
    assert os.path.join(d, "secrets", key) in p.stderr and value not in p.stderr, p.stderr


def test_secret_placeholders_never_go_live(manifests, pod_files):
    """secret.yaml applied unedited: the pod refuses to start instead of seeming to work."""
    values = only(manifests, "Secret")["stringData"]
    d, rc, err = pod_files(manifests, values)
    assert rc == 0, err
    p = run_nginx_t(d, nginx_conf(manifests))
    assert p.returncode != 0 and "does not hold a DingTalk robot token" in p.stderr, p.stderr
    d, rc, err = pod_files(manifests, dict(values, token=TOKEN))
    p = run_nginx_t(d, nginx_conf(manifests))
    assert p.returncode != 0 and "does not hold a DingTalk signing secret" in p.stderr, p.stderr
    d, rc, err = pod_files(manifests, dict(values, token=TOKEN, secret=SECRET))
    p = run_nginx_t(d, nginx_conf(manifests))
    assert p.returncode != 0 and "a bearer token is printable ASCII without spaces" in p.stderr


# ------------------------------------------------------------------------------------------
# the Deployment's container, run roughly as a kubelet would


POD_SCRIPT = r"""
set -eu
R=$1; W=$2; shift 2          # then the container's environment, one NAME=value each
mount --rbind / "$R"
mount -o remount,bind,ro "$R"                         # readOnlyRootFilesystem
# the image's own files, where the Dockerfile and "make install" put them
mount -t tmpfs -o mode=755 tmpfs "$R/etc/nginx"
cp "$W/image-nginx.conf" "$R/etc/nginx/nginx.conf"
mount -t tmpfs -o mode=755 tmpfs "$R/usr/lib/nginx/modules"
cp "$W/module.so" "$R/usr/lib/nginx/modules/ngx_http_dingtalk_module.so"
mount -t tmpfs -o mode=755 tmpfs "$R/$(dirname "$ENTRYPOINT")"
cp "$W/entrypoint.sh" "$R$ENTRYPOINT"; chmod 755 "$R$ENTRYPOINT"
mount -t tmpfs -o mode=755 tmpfs "$R/run"             # the image's /run: empty
mkdir -p "$R$SECRET_MOUNT" "$R$CONFIG_DIR"
for p in $EMPTYDIRS; do mkdir -p "$R$p"; done          # mount points, as the runtime makes
mount -o remount,ro "$R/etc/nginx"; mount -o remount,ro "$R/usr/lib/nginx/modules"
mount -o remount,ro "$R/$(dirname "$ENTRYPOINT")"
# the pod's volumes: emptyDirs, the Secret (owner root, group fsGroup, mode + group read, as a
# kubelet makes it), the ConfigMap as a directory
for p in $EMPTYDIRS; do mount -t tmpfs -o mode=1777 tmpfs "$R$p"; done
mount -t tmpfs -o mode=755 tmpfs "$R$SECRET_MOUNT"
for f in "$W"/secret/*; do
    cp "$f" "$R$SECRET_MOUNT/"; chown "0:$FS_GROUP" "$R$SECRET_MOUNT/${f##*/}"
    chmod "$SECRET_MODE" "$R$SECRET_MOUNT/${f##*/}"
done
mount -o remount,ro "$R$SECRET_MOUNT"
mount -t tmpfs -o mode=755 tmpfs "$R$CONFIG_DIR"
cp "$W/configmap-nginx.conf" "$R$CONFIG_DIR/$CONFIG_FILE"
mount -o remount,ro "$R$CONFIG_DIR"
ip link set lo up

chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$@" setpriv --reuid "$RUN_AS" --regid "$RUN_AS" --groups "$FS_GROUP" $NO_NEW_PRIVS \
    --bounding-set -all --inh-caps -all --ambient-caps -all \
    "$ENTRYPOINT" > "$W/out" 2>&1 &
pod=$!
trap 'kill -KILL $pod $(ps -o pid= --ppid $pod) 2>/dev/null || true' EXIT

up=0; deadline=$(( $(date +%s) + 10 ))               # ready within 10 s, or not at all
while [ "$(date +%s)" -lt $deadline ]; do
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$PROBE_PORT$READY_PATH"; then up=1; break; fi
    kill -0 $pod 2>/dev/null || break
    sleep 0.1
done
echo "up=$up"
[ $up = 1 ] || exit 0
probe() { curl -s -m 5 -H 'Connection: close' -o "$W/body" -w '%{http_code}' "$@" || echo 000; }
hook="http://localhost:$PORT/"
body='{"alerts":[]}'
echo "ready=$(probe http://127.0.0.1:$PROBE_PORT$READY_PATH) $(head -c 200 "$W/body")"
echo "live=$(probe http://127.0.0.1:$PROBE_PORT$LIVE_PATH)"
metrics=$(probe http://127.0.0.1:$METRICS_PORT$METRICS_PATH)
echo "metrics=$metrics $(grep -c '^dingtalk_' "$W/body")"
echo "anonymous=$(probe -X POST -H 'Content-Type: application/json' -d "$body" $hook)"
echo "webhook=$(probe -X POST -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BEARER" -d "$body" $hook) $(head -c 200 "$W/body")"
echo "rebound=$(probe -X POST -H 'Host: evil.example' -H 'Content-Type: application/json' \
    -H "Authorization: Bearer $BEARER" -d "$body" http://127.0.0.1:$PORT/)"
echo "master_pid=$pod pidfile=$(cat "$R$PID_FILE")"
echo "master_uid=$(ps -o uid= -p $pod | tr -d ' ')"
echo "worker_uids=$(ps -o uid= --ppid $pod | tr -d ' ' | sort -u | tr '\n' ' ')"
echo "cap_eff=$(awk '/^CapEff/ {print $2}' /proc/$pod/status)"
echo "no_new_privs=$(awk '/^NoNewPrivs/ {print $2}' /proc/$pod/status)"
echo "credentials=$(stat -c '%a %u' "$R$CREDENTIALS") $(tr '\n' ' ' < "$R$CREDENTIALS")"
echo "environ_clean=$(tr '\0' '\n' < /proc/$pod/environ | grep -c -e "$ROBOT_TOKEN_VALUE" \
    -e "$BEARER" || true)"
echo "root_writable=$(touch "$R/etc/nginx/x" 2>/dev/null && echo yes || echo no)"

start=$(date +%s)
kill -QUIT $pod
i=0                                                   # at most the grace period, then KILL
while [ $i -lt $((GRACE * 10)) ]; do
    state=$(awk '{print $3}' /proc/$pod/stat 2>/dev/null || echo gone)
    [ "$state" = Z ] || [ "$state" = gone ] && break
    sleep 0.1; i=$((i + 1))
done
kill -KILL $pod 2>/dev/null || true
rc=0; wait $pod || rc=$?
echo "quit_rc=$rc quit_seconds=$(( $(date +%s) - start ))"
"""


def can_simulate_a_pod():
    if os.geteuid() != 0:
        return "needs root (mount namespaces, chroot)"
    for tool in ("unshare", "chroot", "setpriv", "ip", "curl", "ps"):
        if not shutil.which(tool):
            return f"{tool} is not installed"
    if not os.path.isdir("/usr/lib/nginx/modules") or not os.path.isdir("/usr/share/nginx"):
        return "Debian's nginx layout is missing"
    p = subprocess.run(["unshare", "--mount", "--net", "true"], capture_output=True)
    if p.returncode != 0:
        return "unshare --mount --net is not permitted here"
    return None


def pod_env(m, w):
    """The Secret's keys as the files its volume makes, and the env that names them."""
    secret = os.path.join(w, "secret")
    os.mkdir(secret)
    values = {"token": TOKEN, "secret": SECRET, "webhook-token": "w" * 48}
    assert set(values) == secret_keys(m)
    for key, value in values.items():
        with open(os.path.join(secret, key), "w") as f:
            f.write(value + "\n")  # kubectl create secret --from-file keeps a newline
    env = [f"{e['name']}={e['value']}" for e in container(m)["env"]]
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):  # make integration-asan
        env.append("LD_PRELOAD=" + os.environ["DINGTALK_NGINX_PRELOAD"])
        env += [f"{k}={os.environ[k]}" for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")
                if k in os.environ]
    return values, env


def run_pod(m, w, root, values, env):
    c, spec = container(m), pod_spec(m)
    sc, psc = c["securityContext"], spec["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    emptydirs = [mt["mountPath"] for mt in c["volumeMounts"] if "emptyDir" in volumes[mt["name"]]]
    config_dir, config_file = nginx_conf_path(m).rsplit("/", 1)
    secret_path, secret_volume = secret_mount(m)
    ann = deployment(m)["spec"]["template"]["metadata"]["annotations"]
    conf = nginx_conf(m)
    include_dir = re.search(r"^\s*include\s+(\S+)/\*\.conf", uncommented(conf), re.M).group(1)
    assert not sc["capabilities"].get("add"), "the simulation grants no capability"
    script_env = dict(
        os.environ, ENTRYPOINT=dockerfile_entrypoint(m), EMPTYDIRS=" ".join(emptydirs),
        CONFIG_DIR=config_dir, CONFIG_FILE=config_file, SECRET_MOUNT=secret_path,
        SECRET_MODE=oct(secret_volume["secret"]["defaultMode"] | 0o040)[2:],
        RUN_AS=str(psc["runAsUser"]), FS_GROUP=str(psc["fsGroup"]),
        NO_NEW_PRIVS="--no-new-privs" if sc.get("allowPrivilegeEscalation") is False else "",
        PORT=str(named_port(c, "http")),
        PROBE_PORT=str(named_port(c, c["readinessProbe"]["httpGet"]["port"])),
        READY_PATH=c["readinessProbe"]["httpGet"]["path"],
        LIVE_PATH=c["livenessProbe"]["httpGet"]["path"],
        METRICS_PORT=ann["prometheus.io/port"], METRICS_PATH=ann["prometheus.io/path"],
        GRACE=str(spec["terminationGracePeriodSeconds"]), PID_FILE=main_directive(conf, "pid"),
        CREDENTIALS=include_dir + "/credentials.conf", BEARER=values["webhook-token"],
        ROBOT_TOKEN_VALUE=values["token"])
    # its own process group: whatever happens, everything it started is killed at the end
    proc = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private",
                             "sh", os.path.join(w, "pod.sh"), root, w, *env],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=script_env, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=spec["terminationGracePeriodSeconds"] + 30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_deployment_container_runs_like_a_pod(manifests):
    """The image's files (module, entrypoint, nginx.conf) on a read-only copy of this root,
    the Deployment's emptyDirs as tmpfs, the ConfigMap as a directory where NGINX_CONF is, the
    Secret's keys as files owned by root and readable through fsGroup, the pod's user with no
    capabilities and no_new_privs; the real entrypoint starts nginx. No cluster, no image:
    roughly what a kubelet and runc do, enough to catch a file the user cannot read, a
    capability it lacks or a write to the root."""
    why = can_simulate_a_pod()
    if why:
        pytest.skip(why)
    m = manifests
    spec, conf = pod_spec(m), nginx_conf(m)
    w = world_readable_tmpdir("dingtalk-pod-")
    root = tempfile.mkdtemp(prefix="dingtalk-pod-root-", dir="/tmp")
    shutil.copy(os.path.join(REPO, "deploy/docker/nginx.conf"), os.path.join(w, "image-nginx.conf"))
    shutil.copy(MODULE, os.path.join(w, "module.so"))
    shutil.copy(os.path.join(REPO, "deploy/docker/docker-entrypoint.sh"),
                os.path.join(w, "entrypoint.sh"))
    with open(os.path.join(w, "configmap-nginx.conf"), "w") as f:
        f.write(conf)
    with open(os.path.join(w, "pod.sh"), "w") as f:
        f.write(POD_SCRIPT)
    try:
        values, env = pod_env(m, w)
        p = run_pod(m, w, root, values, env)
        out = open(os.path.join(w, "out")).read() if os.path.exists(os.path.join(w, "out")) else ""
        report = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        context = f"script: {p.stdout}\n{p.stderr}\ncontainer output:\n{out}"
        assert p.returncode == 0, context
        assert report.get("up") == "1", context
        assert report["ready"].startswith("200 ") and '"ok":true' in report["ready"], context
        assert report["live"] == "200", context
        status, lines = report["metrics"].split()
        assert status == "200" and int(lines) > 0, context
        assert report["anonymous"] == "401", context
        assert report["webhook"].startswith("400 ") and "alerts" in report["webhook"], context
        assert report["rebound"] == "421", context
        pid, pidfile = re.fullmatch(r"(\d+) pidfile=(\d+)", report["master_pid"]).groups()
        assert pid == pidfile, "the entrypoint exec'd nginx: the container's process is the master"
        uid = str(spec["securityContext"]["runAsUser"])
        assert report["master_uid"] == uid and report["worker_uids"].split() == [uid], context
        assert int(report["cap_eff"], 16) == 0, context
        assert report["no_new_privs"] == "1", context
        mode_owner, written = report["credentials"].split(" ", 2)[:2], report["credentials"]
        assert mode_owner == ["600", uid], context
        assert TOKEN not in written and SECRET not in written, "paths only, never the values"
        assert report["environ_clean"] == "0", "no credential in nginx's environment"
        assert report["root_writable"] == "no", context
        rc, took = re.fullmatch(r"(\d+) quit_seconds=(\d+)", report["quit_rc"]).groups()
        assert rc == "0" and int(took) < spec["terminationGracePeriodSeconds"], context
        for level in ("[alert]", "[crit]", "[emerg]"):
            assert level not in out, context
        assert "gracefully shutting down" in out, context
    finally:
        shutil.rmtree(w, ignore_errors=True)
        try:
            os.rmdir(root)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------
# the alerts on the module's own metrics: promtool on the PrometheusRule, on recorded series


def test_prometheus_rules_pass_promtool(manifests, tmp_path):
    """promtool check rules on the PrometheusRule's groups, then promtool test rules with
    prometheusrule_test.yaml: each alert fires on the series it is about, at the time it
    should, with its labels and annotations rendered, and stays quiet on a healthy hook."""
    if not shutil.which("promtool"):
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing (Debian's prometheus package)")
        pytest.skip("SKIPPED LOUDLY: promtool is not installed (apt-get install prometheus)")
    rules = tmp_path / "dingtalk-hook.rules.yaml"
    rules.write_text(yaml.safe_dump(only(manifests, "PrometheusRule")["spec"], sort_keys=False))
    p = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "SUCCESS: 5 rules found" in p.stdout, p.stdout + p.stderr
    shutil.copy(os.path.join(os.path.dirname(__file__), "prometheusrule_test.yaml"), tmp_path)
    p = subprocess.run(["promtool", "test", "rules", "prometheusrule_test.yaml"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0 and "SUCCESS" in p.stdout, p.stdout + p.stderr
    tests = yaml.safe_load(open(tmp_path / "prometheusrule_test.yaml"))["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t.get("exp_alerts")}
    assert fired == {r["alert"] for r in prometheus_rules(manifests)}, "an alert never fires"


# ------------------------------------------------------------------------------------------
# multi-target/: several robots, a token file each, a generated ConfigMap


MULTI = os.path.join(K8S, "multi-target")


@pytest.fixture(scope="module")
def multi():
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


def test_multi_target_nginx_conf_passes_nginx_t(multi):
    """The entrypoint with WEBHOOK_TOKEN_FILE only (no ROBOT_TOKEN: the configuration names
    its robots), then nginx -t with the built module and the ConfigMap's template."""
    cm = multi_only(multi, "ConfigMap")
    dep = multi_only(multi, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    conf_dir = env["NGINX_CONF"].rsplit("/", 1)[0]
    secret_dir = env["WEBHOOK_TOKEN_FILE"].rsplit("/", 1)[0]
    d = world_readable_tmpdir("dingtalk-multi-")
    try:
        for sub in ("config", "secrets"):
            os.mkdir(os.path.join(d, sub))
        # run_nginx_t moves /tmp/... into d
        conf = cm["data"]["nginx.conf"].replace(conf_dir, "/tmp/config") \
            .replace(secret_dir, "/tmp/secrets")
        for key, value in cm["data"].items():
            with open(os.path.join(d, "config", key), "w") as f:
                f.write(value)
        values = {"ops": "a" * 64, "db": "b" * 64, "webhook-token": "w" * 48}
        for key, value in values.items():
            with open(os.path.join(d, "secrets", key), "w") as f:
                f.write(value + "\n")
        m = {"entrypoint": read("deploy/docker/docker-entrypoint.sh")}
        run_env = {"NGINX_CONF": os.path.join(d, "config", "nginx.conf"),
                   "WEBHOOK_TOKEN_FILE": os.path.join(d, "secrets", "webhook-token")}
        rc, err = entrypoint_conf(m, os.path.join(d, "dingtalk.d"), run_env)
        assert rc == 0, err
        written = open(os.path.join(d, "dingtalk.d", "credentials.conf")).read()
        assert written == f"dingtalk_auth_bearer_file {run_env['WEBHOOK_TOKEN_FILE']};\n", written
        p = run_nginx_t(d, conf)
        assert p.returncode == 0 and "test is successful" in p.stderr, p.stderr
        # without the bearer token it still refuses; with a robot's file missing nginx does
        rc, err = entrypoint_conf(m, os.path.join(d, "again"), {"NGINX_CONF": run_env["NGINX_CONF"]})
        assert rc != 0 and "set WEBHOOK_TOKEN_FILE" in err, err
        os.unlink(os.path.join(d, "secrets", "db"))
        p = run_nginx_t(d, conf)
        assert p.returncode != 0 and os.path.join(d, "secrets", "db") in p.stderr, p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
