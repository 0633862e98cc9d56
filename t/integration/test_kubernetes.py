"""deploy/kubernetes/: the manifests agree with each other, with the container image
(Dockerfile, deploy/docker/nginx.conf, docker-entrypoint.sh) and with the Flask hook's names.

No cluster here, so the manifests are checked statically: every name, namespace,
label/selector, port, Secret key, ConfigMap key/subPath, environment variable, URL and
apiVersion must match the object or file that uses it. The ConfigMap's nginx.conf also goes
through a real `nginx -t` with the built module.

The Deployment's container is then run roughly the way a kubelet would run it, with
unshare/chroot/setpriv: a read-only root, its emptyDirs and its subPath mount, its capability
set and no_new_privs, in a network namespace of its own. It must start, answer its probes
and metrics, take a webhook, and quit on SIGQUIT within its grace period.

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
SERVICE_DNS = f"{APP}.{NAMESPACE}.svc.cluster.local"

EXPECTED_FILES = {"namespace.yaml", "secret.yaml", "configmap.yaml", "deployment.yaml",
                  "service.yaml", "alertmanager-receiver.yaml", "alertmanagerconfig.yaml",
                  "alertmanager-sidecar.yaml", "kustomization.yaml", "README.md"}
API_VERSIONS = {"Namespace": "v1", "Secret": "v1", "ConfigMap": "v1", "Deployment": "apps/v1",
                "Service": "v1", "AlertmanagerConfig": "monitoring.coreos.com/v1alpha1",
                "Alertmanager": "monitoring.coreos.com/v1",
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


def the_listen_port(conf):
    ports = listen_ports(conf)
    assert len(ports) == 1, f"one listen port in nginx.conf: {ports}"
    return ports[0]


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
                       ("Service", APP), ("AlertmanagerConfig", APP)):
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


def check_ports(m):
    conf = nginx_conf(m)
    port = the_listen_port(conf)
    assert port == PORT, f"nginx listens on {port}"
    c = container(m)
    ports = c.get("ports") or []
    assert len(ports) == 1, ports
    assert ports[0]["containerPort"] == port and ports[0]["name"] == "http", ports
    svc_ports = service(m)["spec"]["ports"]
    assert len(svc_ports) == 1, svc_ports
    sp = svc_ports[0]
    assert sp["name"] == "hook" and sp["port"] == port, sp
    assert sp["targetPort"] in (ports[0]["name"], ports[0]["containerPort"]), \
        f"Service targetPort {sp['targetPort']!r} is not the container port {ports[0]}"
    locations = exact_locations(conf)
    for probe in ("readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert named_port(c, get["port"]) == port, f"{probe} port {get['port']!r}"
        assert "dingtalk" in locations.get(get["path"], ()), \
            f"{probe} path {get['path']} is not the dingtalk location (its health check)"
    ann = deployment(m)["spec"]["template"]["metadata"].get("annotations") or {}
    assert ann.get("prometheus.io/scrape") == "true", ann
    assert int(ann["prometheus.io/port"]) == port, ann
    assert "dingtalk_metrics" in locations.get(ann["prometheus.io/path"], ()), \
        f"{ann['prometheus.io/path']} is not the dingtalk_metrics location"
    # Every URL in these files that reaches the hook (Service DNS name, the sidecar's
    # localhost, a port-forward) uses the one port.
    for name, f in m["files"].items():
        for url in urls_in(f["text"]):
            u = urllib.parse.urlsplit(url)
            if u.hostname in (SERVICE_DNS, "localhost", "127.0.0.1"):
                assert u.port == port, f"{name}: {url} does not use port {port}"


def check_secret(m):
    s = only(m, "Secret")
    assert s["type"] == "Opaque"
    keys = secret_keys(m)
    assert keys == {"token", "secret"}, keys
    for key, value in (s.get("stringData") or {}).items():
        assert "REPLACE" in value, f"the {key} placeholder is not clearly marked: {value!r}"
    text = m["files"]["secret.yaml"]["text"]
    assert "PLACEHOLDER" in text
    comment = "\n".join(l.lstrip("# ") for l in text.splitlines() if l.lstrip().startswith("#"))
    cmd = re.search(r"kubectl create secret generic (\S+)(.*?)(?:\n\n|\Z)", comment, re.S)
    assert cmd and cmd.group(1) == SECRET_NAME, "no kubectl create secret command in a comment"
    assert f"-n {NAMESPACE}" in cmd.group(2)
    for key in keys:
        assert f"--from-literal={key}=" in cmd.group(2), f"the command does not set {key}"
    c = container(m)
    sidecar = the_container(sidecar_spec(m)["containers"])
    refs = list(secret_key_refs(c)) + list(secret_key_refs(sidecar))
    assert refs, "no secretKeyRef"
    for ref in refs:
        assert ref["name"] == SECRET_NAME, ref
        assert ref["key"] in keys, f"secretKeyRef to key {ref['key']!r}, which the Secret lacks"
    env = {e["name"]: e for e in c["env"]}
    token_ref = env["ROBOT_TOKEN"]["valueFrom"]["secretKeyRef"]
    secret_ref = env["ROBOT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert token_ref["key"] == "token" and not token_ref.get("optional"), token_ref
    assert secret_ref["key"] == "secret" and secret_ref.get("optional") is True, secret_ref


def check_environment(m):
    c = container(m)
    names = [e["name"] for e in c["env"]]
    assert sorted(names) == ["ROBOT_SECRET", "ROBOT_TOKEN"], names
    for name in names:
        assert re.search(r"\$\{" + name + r"[:}]", m["entrypoint"]), \
            f"docker-entrypoint.sh does not read {name}"
    conf = nginx_conf(m)
    assert re.search(r"^env\s+ROBOT_TOKEN\s*;", uncommented(conf), re.M), \
        "nginx.conf lacks 'env ROBOT_TOKEN;': workers would not see the token"


def check_config_volume(m):
    c, spec = container(m), pod_spec(m)
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = c["volumeMounts"]
    assert {v["name"] for v in mounts} == set(volumes), "a mount without a volume, or unused"
    sub = [v for v in mounts if "subPath" in v]
    assert len(sub) == 1, sub
    mount = sub[0]
    vol = volumes[mount["name"]]
    assert "configMap" in vol, vol
    cm = only(m, "ConfigMap")
    assert vol["configMap"]["name"] == cm["metadata"]["name"], \
        f"the volume uses ConfigMap {vol['configMap']['name']}, not {cm['metadata']['name']}"
    items = vol["configMap"].get("items") or [{"key": k, "path": k} for k in cm["data"]]
    paths = {i["path"]: i["key"] for i in items}
    assert mount["subPath"] in paths, f"subPath {mount['subPath']} is not an item path {paths}"
    assert paths[mount["subPath"]] in cm["data"], "the item's key is not in the ConfigMap"
    assert paths[mount["subPath"]] == "nginx.conf"
    # mounted where the image keeps the file it replaces
    assert mount["mountPath"] == dockerfile_copy_dest(m, "deploy/docker/nginx.conf")
    assert mount.get("readOnly") is True


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
    made = re.findall(r"mkdir -p (\S+)", m["entrypoint"])
    assert includes and includes == made, f"include {includes} vs entrypoint mkdir {made}"
    written += [p + "/secret.conf" for p in made]
    error_log = main_directive(conf, "error_log").split()[0]
    assert error_log.startswith("/dev/"), f"error_log {error_log} would write to the root"
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


def check_security_context(m):
    conf = nginx_conf(m)
    user = main_directive(conf, "user")
    assert user and user.split()[0] == "www-data", "workers run as www-data"
    sc = container(m)["securityContext"]
    assert sc.get("allowPrivilegeEscalation") is False
    assert not sc.get("privileged")
    assert sc.get("runAsUser", 0) == 0 and not sc.get("runAsNonRoot"), \
        "the master runs as root (secret file, user switch)"
    caps = sc["capabilities"]
    assert caps["drop"] == ["ALL"], caps
    # the master chowns its temp dirs to the workers' user and switches to it; a port
    # below 1024 would need NET_BIND_SERVICE too
    needed = {"CHOWN", "SETGID", "SETUID"}
    if the_listen_port(conf) < 1024:
        needed.add("NET_BIND_SERVICE")
    assert set(caps.get("add") or []) == needed, caps


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
    assert u.port == svc["spec"]["ports"][0]["port"], f"{where}: {url} is not the Service port"
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
    for v in pod_spec(m)["volumes"]:
        assert volumes.get(v["name"]) == v, f"sidecar volume {v['name']} differs or is missing"
    text = m["files"]["alertmanager-sidecar.yaml"]["text"]
    port = container(m)["ports"][0]["containerPort"]
    assert f"url: http://localhost:{port}/" in text, "the sidecar's webhook URL in a comment"


def check_kustomization(m):
    k = only(m, "Kustomization")
    assert sorted(k["resources"]) == sorted(["namespace.yaml", "secret.yaml", "configmap.yaml",
                                             "deployment.yaml", "service.yaml"]), k["resources"]
    for r in k["resources"]:
        assert r in m["files"], f"kustomization lists missing {r}"


def check_readme(m):
    text = m["files"]["README.md"]["text"]
    for needle in (f"kubectl create secret generic {SECRET_NAME}", "-n kube-ops",
                   "kubectl apply -k deploy/kubernetes/", "kubectl apply -f",
                   "alertmanager-receiver.yaml", "alertmanagerconfig.yaml",
                   f"http://{SERVICE_DNS}:{PORT}/", "kubectl logs", "one line per delivery",
                   "kubectl port-forward", "curl", "alertmanager-sidecar.yaml",
                   f"http://localhost:{PORT}/"):
        assert needle in text, f"deploy/kubernetes/README.md lacks {needle!r}"


CHECKS = [check_files_names_and_namespaces, check_api_versions, check_labels_and_selectors,
          check_ports, check_secret, check_environment, check_config_volume,
          check_writable_paths, check_configmap_is_the_image_config, check_resources,
          check_security_context, check_graceful_termination, check_alertmanager,
          check_sidecar, check_kustomization, check_readme]


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


def env_ref(m, name):
    return next(e for e in container(m)["env"] if e["name"] == name)["valueFrom"]["secretKeyRef"]


def mount(m, path):
    return next(v for v in container(m)["volumeMounts"] if v["mountPath"] == path)


def edit_text(m, name, old, new):
    f = m["files"][name]
    assert old in f["text"]
    f["text"] = f["text"].replace(old, new)


MUTATIONS = {
    "service targetPort names no container port": (
        check_ports, lambda m: service(m)["spec"]["ports"][0].update(targetPort="web")),
    "container port renamed, probes still use http": (
        check_ports, lambda m: container(m)["ports"][0].update(name="hook")),
    "nginx listens on another port": (
        check_ports, lambda m: set_conf(m, nginx_conf(m).replace("listen 5000;", "listen 5001;"))),
    "probe on a path that is not the hook": (
        check_ports, lambda m: container(m)["livenessProbe"]["httpGet"].update(path="/healthz")),
    "metrics annotation on another port": (
        check_ports, lambda m: deployment(m)["spec"]["template"]["metadata"]["annotations"]
        .update({"prometheus.io/port": "9113"})),
    "a URL in the README on another port": (
        check_ports, lambda m: edit_text(m, "README.md", "http://127.0.0.1:5000/",
                                         "http://127.0.0.1:5001/")),
    "secretKeyRef to a key the Secret lacks": (
        check_secret, lambda m: env_ref(m, "ROBOT_TOKEN").update(key="tokn")),
    "secretKeyRef to another Secret": (
        check_secret, lambda m: env_ref(m, "ROBOT_SECRET").update(name="dingtalk")),
    "signing secret no longer optional": (
        check_secret, lambda m: env_ref(m, "ROBOT_SECRET").pop("optional")),
    "placeholder that looks real": (
        check_secret, lambda m: doc(m, "Secret")["stringData"].update(token="abc123")),
    "env var the entrypoint does not read": (
        check_environment, lambda m: container(m)["env"][0].update(name="DINGTALK_TOKEN")),
    "nginx.conf without env ROBOT_TOKEN": (
        check_environment, lambda m: set_conf(m, nginx_conf(m).replace("env ROBOT_TOKEN;", ""))),
    "volume names another ConfigMap": (
        check_config_volume, lambda m: pod_spec(m)["volumes"][0]["configMap"]
        .update(name="dingtalk-nginx")),
    "subPath is not the ConfigMap item": (
        check_config_volume, lambda m: mount(m, "/etc/nginx/nginx.conf").update(subPath="nginx")),
    "config mounted beside the image's nginx.conf": (
        check_config_volume, lambda m: mount(m, "/etc/nginx/nginx.conf")
        .update(mountPath="/etc/nginx/conf.d/nginx.conf")),
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
    "a capability nginx does not need": (
        check_security_context, lambda m: container(m)["securityContext"]["capabilities"]["add"]
        .append("NET_ADMIN")),
    "grace period shorter than one delivery": (
        check_graceful_termination, lambda m: pod_spec(m).update(terminationGracePeriodSeconds=10)),
    "webhook URL on another port": (
        check_alertmanager, lambda m: alertmanager_receivers(m)[1][0]["webhook_configs"][0]
        .update(url=f"http://{SERVICE_DNS}:5001/")),
    "webhook URL in another namespace": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(url=f"http://{APP}.monitoring.svc.cluster.local:{PORT}/")),
    "resolved notifications not sent": (
        check_alertmanager, lambda m: doc(m, "AlertmanagerConfig")["spec"]["receivers"][0]
        ["webhookConfigs"][0].update(sendResolved=False)),
    "sidecar probe drifted from the Deployment": (
        check_sidecar, lambda m: the_container(sidecar_spec(m)["containers"])["readinessProbe"]
        ["httpGet"].update(port=5001)),
    "kustomization without the Service": (
        check_kustomization, lambda m: doc(m, "Kustomization")["resources"].remove("service.yaml")),
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


def test_kustomize_renders_the_five_objects(manifests):
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


def run_nginx_t(d, conf, env, secret_conf=None):
    """nginx -t on conf moved into the temp prefix d: module by absolute path, /tmp and the
    include dir inside the prefix."""
    include_dir = os.path.join(d, "dingtalk.d")
    os.mkdir(include_dir)
    os.chmod(include_dir, 0o755)
    # one pass, so a rewritten path (under /tmp itself) is never rewritten again; the module
    # last, as it may live under /tmp too
    conf, n = re.subn(r"/etc/nginx/dingtalk\.d(?=/)|/tmp(?=/)",
                      lambda mt: include_dir if mt.group(0).startswith("/etc") else d, conf)
    assert n >= 7, "pid, five temp paths and the include dir"
    load = "load_module modules/ngx_http_dingtalk_module.so;"
    assert load in conf
    conf = conf.replace(load, f"load_module {MODULE};")
    for path in re.findall(r"(?<![\w.])/[\w.-]+/[\w./*-]+", uncommented(conf)):
        assert path.startswith(d + "/") or path in (MODULE, "/dev/stderr"), \
            f"{path} would escape the temp prefix"
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    if secret_conf is not None:
        with open(os.path.join(include_dir, "secret.conf"), "w") as f:
            f.write(secret_conf)
    p = subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", os.path.join(d, "nginx.conf"),
                        "-e", os.path.join(d, "error.log")],
                       capture_output=True, text=True, env=env, timeout=60)
    return p


@pytest.fixture
def nginx_t():
    """run_nginx_t, with every prefix dir removed afterwards, pass or fail."""
    dirs = []

    def run(*args, **kw):
        dirs.append(world_readable_tmpdir("dingtalk-k8s-"))
        return run_nginx_t(dirs[-1], *args, **kw), dirs[-1]

    yield run
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_configmap_nginx_conf_passes_nginx_t(manifests, nginx_t):
    p, d = nginx_t(nginx_conf(manifests), nginx_env(ROBOT_TOKEN="abc123"))
    assert p.returncode == 0 and "test is successful" in p.stderr, p.stderr


def test_nginx_t_without_robot_token_fails(manifests, nginx_t):
    p, d = nginx_t(nginx_conf(manifests), nginx_env())
    assert p.returncode != 0 and "ROBOT_TOKEN" in p.stderr, p.stderr


@pytest.mark.parametrize("secret_conf,ok", [
    ("dingtalk_secret SEC0123abcd;\n", True),
    ("dingtalk_secret not-a-secret;\n", False),
    ("dingtalk_secret SEC0123abcd\n", False),
])
def test_nginx_t_with_a_secret_file_in_the_include_dir(manifests, nginx_t, secret_conf, ok):
    p, d = nginx_t(nginx_conf(manifests), nginx_env(ROBOT_TOKEN="abc123"), secret_conf)
    if ok:
        assert p.returncode == 0, p.stderr
    else:
        # the include is live: nginx names the file in the include dir
        assert p.returncode != 0 and os.path.join(d, "dingtalk.d", "secret.conf") in p.stderr, \
            p.stderr


def test_secret_placeholders_never_go_live(manifests, nginx_t):
    """secret.yaml applied unedited: the pod refuses to start instead of seeming to work."""
    values = only(manifests, "Secret")["stringData"]
    conf = nginx_conf(manifests)
    p, d = nginx_t(conf, nginx_env(ROBOT_TOKEN=values["token"]))
    assert p.returncode != 0 and "not a DingTalk robot token" in p.stderr, p.stderr
    # the signing secret, written the way docker-entrypoint.sh writes it
    assert "printf 'dingtalk_secret %s;\\n' \"$ROBOT_SECRET\"" in manifests["entrypoint"]
    p, d = nginx_t(conf, nginx_env(ROBOT_TOKEN="abc123"),
                   "dingtalk_secret %s;\n" % values["secret"])
    assert p.returncode != 0 and "not a DingTalk signing secret" in p.stderr, p.stderr


# ------------------------------------------------------------------------------------------
# the Deployment's container, run roughly as a kubelet would


CAP_BITS = {"CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3, "FSETID": 4,
            "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8, "NET_BIND_SERVICE": 10,
            "NET_RAW": 13, "SYS_CHROOT": 18, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}

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
for p in $EMPTYDIRS; do mkdir -p "$R$p"; done          # mount points, as the runtime makes
mount -o remount,ro "$R/etc/nginx"; mount -o remount,ro "$R/usr/lib/nginx/modules"
mount -o remount,ro "$R/$(dirname "$ENTRYPOINT")"
# the pod's volumes
for p in $EMPTYDIRS; do mount -t tmpfs -o mode=777 tmpfs "$R$p"; done
mount --bind "$W/configmap-nginx.conf" "$R$SUBPATH_MOUNT"
mount -o remount,bind,ro "$R$SUBPATH_MOUNT"
ip link set lo up

chroot "$R" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "$@" setpriv $NO_NEW_PRIVS --bounding-set -all$CAPS --inh-caps -all \
    "$ENTRYPOINT" > "$W/out" 2>&1 &
pod=$!
trap 'kill -KILL $pod $(ps -o pid= --ppid $pod) 2>/dev/null || true' EXIT

up=0; deadline=$(( $(date +%s) + 10 ))               # ready within 10 s, or not at all
while [ "$(date +%s)" -lt $deadline ]; do
    if curl -s -m 1 -o /dev/null "http://127.0.0.1:$PORT$READY_PATH"; then up=1; break; fi
    kill -0 $pod 2>/dev/null || break
    sleep 0.1
done
echo "up=$up"
[ $up = 1 ] || exit 0
probe() { curl -s -m 5 -H 'Connection: close' -o "$W/body" -w '%{http_code}' "$@" || echo 000; }
echo "ready=$(probe http://127.0.0.1:$PORT$READY_PATH) $(head -c 200 "$W/body")"
echo "live=$(probe http://127.0.0.1:$PORT$LIVE_PATH)"
metrics=$(probe http://127.0.0.1:$METRICS_PORT$METRICS_PATH)
echo "metrics=$metrics $(grep -c '^dingtalk_' "$W/body")"
echo "webhook=$(probe -X POST -d '{"alerts":[]}' http://127.0.0.1:$PORT/) $(head -c 200 "$W/body")"
echo "master_pid=$pod pidfile=$(cat "$R$PID_FILE")"
echo "master_user=$(ps -o user= -p $pod)"
echo "workers=$(ps -o user= --ppid $pod | sort -u | tr '\n' ' ')"
echo "cap_eff=$(awk '/^CapEff/ {print $2}' /proc/$pod/status)"
echo "no_new_privs=$(awk '/^NoNewPrivs/ {print $2}' /proc/$pod/status)"
echo "secret_file=$(stat -c '%a %U' "$R$SECRET_FILE") $(cat "$R$SECRET_FILE")"
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


def test_deployment_container_runs_like_a_pod(manifests):
    """The image's files (module, entrypoint, nginx.conf) on a read-only copy of this root,
    the Deployment's emptyDirs as tmpfs, the ConfigMap bind-mounted at the subPath mount, the
    Secret's keys in the env the Deployment names, its capabilities as the bounding set and
    no_new_privs; the real entrypoint starts nginx. No cluster, no image: roughly what a
    kubelet and runc do, enough to catch a missing capability or a write to the root."""
    why = can_simulate_a_pod()
    if why:
        pytest.skip(why)
    m = manifests
    c, spec = container(m), pod_spec(m)
    sc = c["securityContext"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    conf = nginx_conf(m)
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

    # the Secret's keys, with valid values, reach the container as its env says
    secret_values = {"token": TOKEN, "secret": SECRET}
    assert set(secret_values) == secret_keys(m)
    pod_env = []
    for e in c["env"]:
        ref = e["valueFrom"]["secretKeyRef"]
        pod_env.append(f"{e['name']}={secret_values[ref['key']]}")
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):  # make integration-asan
        pod_env.append("LD_PRELOAD=" + os.environ["DINGTALK_NGINX_PRELOAD"])
        pod_env += [f"{k}={os.environ[k]}" for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")
                    if k in os.environ]
    caps = set(sc["capabilities"].get("add") or [])
    assert sc["capabilities"]["drop"] == ["ALL"]
    emptydirs = [mt["mountPath"] for mt in c["volumeMounts"] if "emptyDir" in volumes[mt["name"]]]
    subpath = next(mt["mountPath"] for mt in c["volumeMounts"] if "subPath" in mt)
    assert sc.get("readOnlyRootFilesystem") is True, "the simulation needs a read-only root"
    ann = deployment(m)["spec"]["template"]["metadata"]["annotations"]
    include_dir = re.search(r"^\s*include\s+(\S+)/\*\.conf", uncommented(conf), re.M).group(1)
    env = dict(os.environ,
               ENTRYPOINT=dockerfile_entrypoint(m),
               EMPTYDIRS=" ".join(emptydirs), SUBPATH_MOUNT=subpath,
               NO_NEW_PRIVS="--no-new-privs" if sc.get("allowPrivilegeEscalation") is False else "",
               CAPS="".join(f",+{cap.lower()}" for cap in sorted(caps)),
               PORT=str(c["ports"][0]["containerPort"]),
               READY_PATH=c["readinessProbe"]["httpGet"]["path"],
               LIVE_PATH=c["livenessProbe"]["httpGet"]["path"],
               METRICS_PORT=ann["prometheus.io/port"], METRICS_PATH=ann["prometheus.io/path"],
               GRACE=str(spec["terminationGracePeriodSeconds"]),
               PID_FILE=main_directive(conf, "pid"), SECRET_FILE=include_dir + "/secret.conf")
    try:
        # its own process group: whatever happens, everything it started is killed at the end
        proc = subprocess.Popen(["unshare", "--mount", "--net", "--propagation", "private",
                                 "sh", os.path.join(w, "pod.sh"), root, w, *pod_env],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=spec["terminationGracePeriodSeconds"] + 30)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        p = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        out = open(os.path.join(w, "out")).read() if os.path.exists(os.path.join(w, "out")) else ""
        report = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        context = f"script: {p.stdout}\n{p.stderr}\ncontainer output:\n{out}"
        assert p.returncode == 0, context
        assert report.get("up") == "1", context
        assert report["ready"].startswith("200 ") and '"ok":true' in report["ready"], context
        assert report["live"] == "200", context
        status, lines = report["metrics"].split()
        assert status == "200" and int(lines) > 0, context
        assert report["webhook"].startswith("400 ") and "alerts" in report["webhook"], context
        pid, pidfile = re.fullmatch(r"(\d+) pidfile=(\d+)", report["master_pid"]).groups()
        assert pid == pidfile, "the entrypoint exec'd nginx: the container's process is the master"
        assert report["master_user"].strip() == "root", context
        assert report["workers"].split() == [main_directive(conf, "user")], context
        expected_caps = sum(1 << CAP_BITS[cap] for cap in caps)
        assert int(report["cap_eff"], 16) == expected_caps, context
        assert report["no_new_privs"] == "1", context
        assert report["secret_file"] == f"600 root dingtalk_secret {SECRET};", context
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
