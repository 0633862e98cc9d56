"""deploy/kubernetes/: the Deployment's container agrees with the image (Dockerfile,
deploy/docker/nginx.conf, docker-entrypoint.sh) and with the Service: ports and probes,
environment, the ConfigMap mounted as a directory, the paths written at run time, resources,
a grace period long enough for one delivery, a disruption budget a drain can get past, and
nothing podman 4.3 cannot play.

Each check_* function runs once against the real files (test_manifests[<name>]) and once against a
copy with a deliberate mismatch (test_a_mismatch_is_caught), to show that it can fail.
"""

import copy
import os
import re
import urllib.parse

import pytest

from k8s import (
    HOLD_SECONDS, METRICS_PORT, PORT, SEED_RESOURCES, SERVICE_DNS, container, deployment,
    dingtalk_timeout, doc, dockerfile_copy_dest, dockerfile_lines, edit_conf, edit_text,
    env_var, exact_locations, listen_ports, main_directive, mount, named_port, nginx_conf,
    nginx_conf_path, only, pod_spec, server_of, service, set_conf, sidecar_spec, the_container,
    uncommented, urls_in, volume)


def writable_mounts(m):
    volumes = {v["name"]: v for v in pod_spec(m)["volumes"]}
    return [mt["mountPath"] for mt in container(m)["volumeMounts"]
            if "emptyDir" in volumes[mt["name"]] and not mt.get("readOnly")]


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


def check_graceful_termination(m):
    assert "STOPSIGNAL SIGQUIT" in dockerfile_lines(m), "nginx quits gracefully on SIGQUIT"
    spec, c = pod_spec(m), container(m)
    grace = spec["terminationGracePeriodSeconds"]
    pre_stop = (c.get("lifecycle") or {}).get("preStop", {}).get("exec", {}).get("command", [])
    pre_stop_seconds = int(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0
    needed = pre_stop_seconds + HOLD_SECONDS + dingtalk_timeout(nginx_conf(m))
    assert grace >= needed, f"terminationGracePeriodSeconds {grace} < {needed} for one delivery"


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


CHECKS = [check_ports, check_environment, check_config_volume, check_writable_paths,
          check_configmap_is_the_image_config, check_resources, check_graceful_termination,
          check_disruption_budget, check_podman_can_play]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[len("check_"):] for c in CHECKS])
def test_manifests(manifests, check):
    check(copy.deepcopy(manifests))


# ------------------------------------------------------------------------------------------
# each check catches a mismatch: a deliberate one in a copy of the manifests


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
    "more memory than the seed": (
        check_resources, lambda m: container(m)["resources"]["limits"].update(memory="128Mi")),
    "grace period shorter than one delivery": (
        check_graceful_termination, lambda m: pod_spec(m).update(terminationGracePeriodSeconds=10)),
    "a budget that blocks every drain": (
        check_disruption_budget, lambda m: doc(m, "PodDisruptionBudget")["spec"].update(
            maxUnavailable=0)),
    "a Secret volume without optional (podman 4.3 panics)": (
        check_podman_can_play, lambda m: volume(m, "secret")["secret"].pop("optional")),
    "the sidecar's config by subPath again": (
        check_podman_can_play, lambda m: the_container(sidecar_spec(m)["containers"])
        ["volumeMounts"][0].update(subPath="nginx.conf")),
}


@pytest.mark.parametrize("what", sorted(MUTATIONS))
def test_a_mismatch_is_caught(manifests, what):
    check, mutate = MUTATIONS[what]
    m = copy.deepcopy(manifests)
    check(m)  # passes as written...
    mutate(m)
    with pytest.raises(AssertionError):
        check(m)  # ...and fails with the mismatch
