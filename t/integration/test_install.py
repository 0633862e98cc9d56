"""`make install` puts the module where Debian's nginx looks, and the stock nginx.conf loads it;
the Dockerfile only names make targets and files that exist."""

import os
import re
import shutil
import subprocess

from harness import NGINX_BIN, REPO, TOKEN, world_readable_tmpdir


def make(*args, **kw):
    return subprocess.run(["make", "-C", REPO, "--no-print-directory", *args],
                          capture_output=True, text=True, **kw)


def test_install_into_a_staging_root_and_nginx_t_with_the_stock_config():
    stage = world_readable_tmpdir("dingtalk-stage-")
    p = make("install", f"DESTDIR={stage}")
    assert p.returncode == 0, p.stdout + p.stderr

    so = os.path.join(stage, "usr/lib/nginx/modules/ngx_http_dingtalk_module.so")
    snippet = os.path.join(stage, "usr/share/nginx/modules-available/mod-http-dingtalk.conf")
    enabled = os.path.join(stage, "etc/nginx/modules-enabled/50-mod-http-dingtalk.conf")
    assert os.path.isfile(so) and os.access(os.path.join(stage, "usr/bin/dingtalk-render"), os.X_OK)
    assert open(snippet).read().strip() == "load_module modules/ngx_http_dingtalk_module.so;"
    assert os.readlink(enabled) == "/usr/share/nginx/modules-available/mod-http-dingtalk.conf"
    for t in ("default", "compact", "english", "go-bridge", "oncall"):
        assert os.path.isfile(os.path.join(stage, f"usr/share/ngx-dingtalk/templates/{t}.mustache"))

    # Debian's stock configuration, moved into the staging root: every absolute /etc/nginx path
    # points there, the enabled snippet resolves inside it, and nginx's prefix has the same
    # modules -> ../../lib/nginx/modules link nginx-common installs.
    etc = os.path.join(stage, "etc/nginx")
    for name in os.listdir("/etc/nginx"):
        src, dst = os.path.join("/etc/nginx", name), os.path.join(etc, name)
        if name == "modules-enabled" or os.path.exists(dst):
            continue
        if os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst, follow_symlinks=False)
    os.remove(enabled)
    os.symlink(snippet, enabled)
    conf = open(os.path.join(etc, "nginx.conf")).read()
    assert "include /etc/nginx/modules-enabled/*.conf;" in conf, "Debian's stock nginx.conf"
    conf = conf.replace("/etc/nginx/", etc + "/").replace("/run/nginx.pid", stage + "/nginx.pid")
    with open(os.path.join(etc, "nginx.conf"), "w") as f:
        f.write(conf)
    prefix = os.path.join(stage, "usr/share/nginx")
    os.symlink("../../lib/nginx/modules", os.path.join(prefix, "modules"))
    os.makedirs(os.path.join(etc, "sites-enabled"), exist_ok=True)
    with open(os.path.join(etc, "sites-enabled", "dingtalk"), "w") as f:
        f.write(f"""server {{
    listen 127.0.0.1:5999;
    location = / {{ dingtalk; dingtalk_token {TOKEN}; }}
}}
""")

    p = subprocess.run([NGINX_BIN, "-t", "-p", prefix + "/", "-c", os.path.join(etc, "nginx.conf"),
                        "-e", os.path.join(stage, "error.log")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    # and without our snippet, the same site is an unknown directive: the snippet did the load
    os.remove(enabled)
    p = subprocess.run([NGINX_BIN, "-t", "-p", prefix + "/", "-c", os.path.join(etc, "nginx.conf"),
                        "-e", os.path.join(stage, "error.log")], capture_output=True, text=True)
    assert p.returncode != 0 and 'unknown directive "dingtalk"' in p.stderr

    # the installed example, used in place: its relative template name finds the templates
    # installed next to it (relative names are from the configuration's folder)
    example = os.path.join(stage, "usr/share/ngx-dingtalk/nginx.conf.example")
    conf = open(example).read()
    line = "# dingtalk_template templates/oncall.mustache;"
    assert line in conf
    with open(example, "w") as f:
        f.write(conf.replace(line, line[2:]))
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    p = subprocess.run([NGINX_BIN, "-t", "-p", prefix + "/", "-c", example,
                        "-e", os.path.join(stage, "error.log")], capture_output=True, text=True,
                       env=dict(os.environ, ROBOT_TOKEN=TOKEN))
    assert p.returncode == 0, p.stderr

    p = make("uninstall", f"DESTDIR={stage}")
    assert p.returncode == 0 and not os.path.exists(so) and not os.path.exists(snippet)
    shutil.rmtree(stage, ignore_errors=True)


def dockerfile_lines():
    text = open(os.path.join(REPO, "Dockerfile")).read().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_names_only_targets_and_files_that_exist():
    lines = dockerfile_lines()
    targets, copied, deps = set(), [], set()
    for line in lines:
        for m in re.finditer(r"\bmake\s+((?:[\w.-]+\s*)+?)(?=&&|$|\bDESTDIR)", line):
            targets.update(t for t in m.group(1).split() if "=" not in t)
        if line.startswith("COPY") and "--from=" not in line:
            copied.extend(line.split()[1:-1])
        for m in re.finditer(r"^RUN .*?scripts/install-deps\.sh\s+(\w+)", line):
            deps.add(m.group(1))
    assert {"module", "tools", "install", "clean"} <= targets, targets
    for t in targets:
        p = make("-n", t)
        assert p.returncode == 0, f"Dockerfile runs 'make {t}', which does not exist: {p.stderr}"
    for path in copied:
        if path != ".":
            assert os.path.exists(os.path.join(REPO, path)), f"Dockerfile copies missing {path}"
    assert deps == {"build"}
    # the same build steps CI runs: install-deps, then make
    assert any("scripts/install-deps.sh build" in l for l in lines)
    assert any(l.startswith("HEALTHCHECK") and "9095/healthz" in l for l in lines)
    assert "EXPOSE 5000 9095" in lines
    assert "USER www-data" in lines, "the container runs unprivileged, nginx's master too"


def run_entrypoint(d, env, *command):
    """docker-entrypoint.sh with its include dir moved into d, running command instead of
    nginx: (status, stdout, stderr)."""
    script = open(os.path.join(REPO, "deploy/docker/docker-entrypoint.sh")).read()
    assert "conf=/tmp/dingtalk.d" in script
    path = os.path.join(d, "entrypoint.sh")
    with open(path, "w") as f:
        f.write(script.replace("conf=/tmp/dingtalk.d", f"conf={d}/dingtalk.d"))
    p = subprocess.run(["sh", path, *(command or ("true",))], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"], **env})
    return p.returncode, p.stdout, p.stderr


WEBHOOK = "w" * 48


def test_docker_runtime_config_passes_nginx_t():
    d = world_readable_tmpdir("dingtalk-docker-")
    conf = open(os.path.join(REPO, "deploy/docker/nginx.conf")).read()
    from harness import MODULE

    conf = conf.replace("/tmp/", d + "/")
    # after the rewrite: the module itself may live under /tmp (a clone there)
    conf = conf.replace("modules/ngx_http_dingtalk_module.so", MODULE)
    assert f"include {d}/dingtalk.d/*.conf;" in conf
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    env = dict(os.environ)
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["DINGTALK_NGINX_PRELOAD"]
    nginx_t = lambda: subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", d + "/nginx.conf",
                                      "-e", d + "/error.log"], capture_output=True, text=True,
                                     env=env)
    rc, _, err = run_entrypoint(d, {"ROBOT_TOKEN": TOKEN, "WEBHOOK_TOKEN": WEBHOOK})
    assert rc == 0, err
    p = nginx_t()
    assert p.returncode == 0, p.stderr
    # the credentials are really read: a bad secret fails, naming its file, not its value
    rc, _, err = run_entrypoint(d, {"ROBOT_TOKEN": TOKEN, "WEBHOOK_TOKEN": WEBHOOK,
                                    "ROBOT_SECRET": "notasecret"})
    assert rc == 0, err
    p = nginx_t()
    assert p.returncode != 0 and "dingtalk_secret_file" in p.stderr, p.stderr
    assert "notasecret" not in p.stderr
    shutil.rmtree(d, ignore_errors=True)


def test_entrypoint_turns_env_and_files_into_configuration():
    d = world_readable_tmpdir("dingtalk-entry-")
    token_file = os.path.join(d, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    env = {"ROBOT_TOKEN_FILE": token_file, "ROBOT_SECRET": "SEC0123abcdef\n",
           "WEBHOOK_TOKEN": WEBHOOK}
    rc, out, err = run_entrypoint(
        d, env, "sh", "-c", 'echo "[$ROBOT_TOKEN|$ROBOT_SECRET|$WEBHOOK_TOKEN]"')
    assert rc == 0, err
    assert out.strip() == "[||]", "no credential stays in the environment nginx starts with"
    conf_dir = os.path.join(d, "dingtalk.d")
    credentials = open(os.path.join(conf_dir, "credentials.conf")).read()
    assert credentials == (f"dingtalk_token_file {token_file};\n"
                           f"dingtalk_secret_file {conf_dir}/robot-secret;\n"
                           f"dingtalk_auth_bearer_file {conf_dir}/webhook-token;\n"), credentials
    assert open(os.path.join(conf_dir, "robot-secret")).read() == "SEC0123abcdef"
    for name in ("credentials.conf", "robot-secret", "webhook-token"):
        assert oct(os.stat(os.path.join(conf_dir, name)).st_mode & 0o777) == "0o600", name
    # required, each with its own message; never a value in one
    rc, _, err = run_entrypoint(d, {"WEBHOOK_TOKEN": WEBHOOK})
    assert rc == 1 and "set ROBOT_TOKEN_FILE" in err, err
    rc, _, err = run_entrypoint(d, {"ROBOT_TOKEN": TOKEN})
    assert rc == 1 and "set WEBHOOK_TOKEN_FILE" in err and TOKEN not in err, err
    rc, _, err = run_entrypoint(d, {"ROBOT_TOKEN_FILE": d + "/nope", "WEBHOOK_TOKEN": WEBHOOK})
    assert rc == 1 and "ROBOT_TOKEN_FILE: cannot read" in err, err
    # an optional Secret key that is not there: no signing
    rc, _, err = run_entrypoint(d, dict(env, ROBOT_SECRET="", ROBOT_SECRET_FILE=d + "/absent"))
    assert rc == 0, err
    assert "dingtalk_secret" not in open(os.path.join(conf_dir, "credentials.conf")).read()
    # a path that could end the directive and add another is refused
    odd = os.path.join(d, "t;dingtalk_api_url http:")
    shutil.copy(token_file, odd)
    rc, _, err = run_entrypoint(d, {"ROBOT_TOKEN_FILE": odd, "WEBHOOK_TOKEN": WEBHOOK})
    assert rc == 1 and "paths may hold letters, digits" in err, err
    shutil.rmtree(d, ignore_errors=True)
