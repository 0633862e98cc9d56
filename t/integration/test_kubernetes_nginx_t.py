"""deploy/kubernetes/ run through nginx -t: the real docker-entrypoint.sh turns the Secret's
files into configuration, then `nginx -t` with the built module checks the ConfigMap's
nginx.conf (single-target and multi-target/). A missing or bad credential stops the pod, naming
its file and never its value; the Secret's placeholders never go live. The manifests
themselves are checked statically in t/static/."""

import os
import re
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "static"))
from harness import MODULE, NGINX_BIN, SECRET, TOKEN, world_readable_tmpdir  # noqa: E402
from k8s import (  # noqa: E402
    container, load, load_multi, multi_only, nginx_conf, only, read, uncommented)


@pytest.fixture(scope="module")
def manifests():
    return load()


@pytest.fixture(scope="module")
def multi():
    return load_multi()


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
# multi-target/: a token file per robot, the templates from the generated ConfigMap


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
