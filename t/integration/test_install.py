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
    for t in ("default", "compact", "english"):
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
    assert any(l.startswith("HEALTHCHECK") and "5000" in l for l in lines)
    assert "EXPOSE 5000" in lines


def test_docker_runtime_config_passes_nginx_t():
    d = world_readable_tmpdir("dingtalk-docker-")
    conf = open(os.path.join(REPO, "deploy/docker/nginx.conf")).read()
    from harness import MODULE

    conf = re.sub(r"/tmp/|/etc/nginx/dingtalk\.d/", lambda m: d + "/" + (
        "dingtalk.d/" if "dingtalk" in m.group(0) else ""), conf)  # one pass: no double rewrite
    # after the rewrite: the module itself may live under /tmp (a clone there)
    conf = conf.replace("modules/ngx_http_dingtalk_module.so", MODULE)
    assert f"include {d}/dingtalk.d/*.conf;" in conf
    os.mkdir(os.path.join(d, "dingtalk.d"))
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    env = dict(os.environ, ROBOT_TOKEN=TOKEN)
    if os.environ.get("DINGTALK_NGINX_PRELOAD"):
        env["LD_PRELOAD"] = os.environ["DINGTALK_NGINX_PRELOAD"]
    p = subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", d + "/nginx.conf", "-e",
                        d + "/error.log"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    # the included secret is really read: a bad one fails
    with open(os.path.join(d, "dingtalk.d", "secret.conf"), "w") as f:
        f.write("dingtalk_secret notasecret;\n")
    p = subprocess.run([NGINX_BIN, "-t", "-p", d + "/", "-c", d + "/nginx.conf", "-e",
                        d + "/error.log"], capture_output=True, text=True, env=env)
    assert p.returncode != 0 and "dingtalk_secret" in p.stderr
    shutil.rmtree(d, ignore_errors=True)


def test_entrypoint_turns_env_into_configuration():
    d = world_readable_tmpdir("dingtalk-entry-")
    script = open(os.path.join(REPO, "deploy/docker/docker-entrypoint.sh")).read()
    script = script.replace("/etc/nginx/dingtalk.d", d + "/dingtalk.d")
    path = os.path.join(d, "entrypoint.sh")
    with open(path, "w") as f:
        f.write(script)
    token_file = os.path.join(d, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    env = {"PATH": os.environ["PATH"], "ROBOT_TOKEN_FILE": token_file,
           "ROBOT_SECRET": "SEC0123abcdef"}
    p = subprocess.run(["sh", path, "sh", "-c", 'echo "token=$ROBOT_TOKEN secret=$ROBOT_SECRET"'],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"token={TOKEN} secret=", "the secret never stays in the env"
    secret_conf = os.path.join(d, "dingtalk.d", "secret.conf")
    assert open(secret_conf).read() == "dingtalk_secret SEC0123abcdef;\n"
    assert oct(os.stat(secret_conf).st_mode & 0o777) == "0o600"
    p = subprocess.run(["sh", path, "true"], capture_output=True, text=True,
                       env={"PATH": os.environ["PATH"]})
    assert p.returncode == 1 and "ROBOT_TOKEN" in p.stderr
    # a Secret with a trailing newline still works; values that could inject config do not
    p = subprocess.run(["sh", path, "sh", "-c", 'echo "[$ROBOT_TOKEN]"'], capture_output=True,
                       text=True, env={"PATH": os.environ["PATH"], "ROBOT_TOKEN": TOKEN + "\n"})
    assert p.returncode == 0 and p.stdout.strip() == f"[{TOKEN}]", p.stderr
    for bad in ({"ROBOT_TOKEN": "abc;def"}, {"ROBOT_TOKEN": TOKEN,
                                             "ROBOT_SECRET": "SEC00; dingtalk_api_url http://x/"}):
        p = subprocess.run(["sh", path, "true"], capture_output=True, text=True,
                           env=dict(bad, PATH=os.environ["PATH"]))
        assert p.returncode == 1, bad
    shutil.rmtree(d, ignore_errors=True)
