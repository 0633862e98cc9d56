"""Test harness: the real nginx binary with the built module, and a mock DingTalk robot API.

Nothing here mocks nginx. Each test writes its own nginx.conf into a fresh prefix directory,
starts Debian's nginx on loopback, talks to it over real sockets, and stops it with SIGQUIT.
The mock DingTalk server speaks HTTP or HTTPS (with a CA made at test time), records every
request, checks signatures, and plays scripted answers (errcodes, HTTP errors, delays, drops).
It also plays what makes a delivery's outcome doubtful, always after it read the whole request:
a stall until released, a late answer, a close without an answer after "posting"; and it keeps
what the group saw (posted(), posts_of()): the group's view is the truth.
"""

import base64
import collections
import hashlib
import hmac
import http.client
import http.server
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse

TOKEN = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
SECRET = "SEC" + "a1b2c3d4e5f6" * 5 + "a1b2"

NGINX_BIN = os.environ.get("NGINX_BIN", "/usr/sbin/nginx")
REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE = os.environ.get("DINGTALK_MODULE", os.path.join(REPO, "build", "ngx_http_dingtalk_module.so"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_readable_tmpdir(prefix):
    """nginx workers run as nobody when the tests run as root: they must reach these files."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o755)
    return d


# ------------------------------------------------------------------------------------------
# certificates


class Certs:
    """A test CA and a server certificate for 127.0.0.1, plus a second CA nobody trusts."""

    def __init__(self):
        self.dir = world_readable_tmpdir("dingtalk-certs-")
        self.ca, self.ca_key = self._ca("trusted")
        self.cert, self.key = self._leaf("server", self.ca, self.ca_key)
        rogue_ca, rogue_key = self._ca("rogue")
        self.rogue_cert, self.rogue_key = self._leaf("rogue-server", rogue_ca, rogue_key)
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)

    def chain(self):
        """A root, an intermediate it signed, and a server certificate for 127.0.0.1 the
        intermediate signed: (root, intermediate, server chain file (server + intermediate),
        server key)."""
        if not hasattr(self, "_chain"):
            root, root_key = self._ca("chain-root")
            inter, inter_key = self._leaf("chain-intermediate", root, root_key, is_ca=True)
            leaf, leaf_key = self._leaf("chain-server", inter, inter_key)
            served = os.path.join(self.dir, "chain-served.pem")
            with open(served, "w") as out, open(leaf) as a, open(inter) as b:
                out.write(a.read() + b.read())
            for name in os.listdir(self.dir):
                os.chmod(os.path.join(self.dir, name), 0o644)
            self._chain = (root, inter, served, leaf_key)
        return self._chain

    def _run(self, *args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.dir)

    def _ca(self, name):
        key, crt = f"{name}-ca.key", f"{name}-ca.pem"
        self._run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                  "-subj", f"/CN=dingtalk test {name} CA", "-keyout", key, "-out", crt,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return os.path.join(self.dir, crt), os.path.join(self.dir, key)

    def _leaf(self, name, ca, ca_key, is_ca=False):
        key, csr, crt, ext = f"{name}.key", f"{name}.csr", f"{name}.pem", f"{name}.ext"
        with open(os.path.join(self.dir, ext), "w") as f:
            f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                    if is_ca else "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                               "extendedKeyUsage=serverAuth\n")
        self._run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                  "-keyout", key, "-out", csr)
        self._run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                  "-days", "2", "-extfile", ext, "-out", crt)
        return os.path.join(self.dir, crt), os.path.join(self.dir, key)


# ------------------------------------------------------------------------------------------
# mock DingTalk


class Received:
    def __init__(self, path, headers, body):
        url = urllib.parse.urlsplit(path)
        self.path = url.path
        self.raw_query = url.query
        self.query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body)
        except ValueError:
            self.json = None
        self.answer = None  # what the mock answered (dict), or None for a dropped connection
        self.at = None  # when it arrived (time.time()): the whole request was read
        self.sig_ok = None  # True/False when signed, None when not
        self.reused = False  # it came on a connection that had carried a request before
        # When the group saw it (time.time()), or None: an errcode 0 counts when the mock
        # answers (after any delay or stall, whether or not the client still listens); a
        # "close" when the mock read it (DingTalk processed it and the answer was lost).
        self.posted_at = None
        self.stalled = False  # it arrived while the mock was stalled
        self.invalid = body_error(self.json)  # why DingTalk would refuse the body, or None

    @property
    def msgtype(self):
        return self.json["msgtype"]

    @property
    def message(self):
        """The markdown (or actionCard) object: its title and text."""
        return self.json["actionCard" if self.json.get("msgtype") == "actionCard" else "markdown"]

    @property
    def title(self):
        return self.message["title"]

    @property
    def text(self):
        return self.message["text"]

    @property
    def buttons(self):
        """An actionCard's (title, actionURL) pairs; [] for markdown."""
        if self.json.get("msgtype") != "actionCard":
            return []
        return [(b["title"], b["actionURL"]) for b in self.message.get("btns", [])]


def body_error(doc):
    """Why DingTalk's robot API would not take this body as a markdown or actionCard message
    (its documented fields, their types, nothing else), or None. The real API answers such a
    body with an errcode; the stand-in refuses it the same way, so a test sees it."""
    def strings(obj, names):
        return all(isinstance(obj.get(n), str) for n in names)

    if not isinstance(doc, dict):
        return "not a JSON object"
    kind = doc.get("msgtype")
    if kind == "markdown":
        if not set(doc) <= {"msgtype", "markdown", "at"}:
            return f"unknown fields {sorted(set(doc) - {'msgtype', 'markdown', 'at'})}"
        md = doc.get("markdown")
        if not isinstance(md, dict) or set(md) != {"title", "text"} or not strings(md, md):
            return "markdown needs exactly title and text, strings"
        at = doc.get("at", {})
        if not isinstance(at, dict) or not set(at) <= {"atMobiles", "atUserIds", "isAtAll"} or \
                not all(isinstance(at.get(k, []), list) and
                        all(isinstance(v, str) for v in at.get(k, []))
                        for k in ("atMobiles", "atUserIds")) or \
                not isinstance(at.get("isAtAll", False), bool):
            return "at: atMobiles and atUserIds lists of strings, isAtAll a boolean"
        return None
    if kind == "actionCard":
        if set(doc) != {"msgtype", "actionCard"}:
            return f"an actionCard message has msgtype and actionCard only, not {sorted(doc)}"
        card = doc["actionCard"]
        if not isinstance(card, dict):
            return "actionCard is not an object"
        keys = set(card) - {"btnOrientation"}
        if keys == {"title", "text", "singleTitle", "singleURL"}:
            if not strings(card, keys):
                return "title, text, singleTitle and singleURL are strings"
        elif keys == {"title", "text", "btns"}:
            if not strings(card, ("title", "text")):
                return "title and text are strings"
            btns = card["btns"]
            if not isinstance(btns, list) or not btns:
                return "btns is a list of buttons, not empty"
            for b in btns:
                if not isinstance(b, dict) or set(b) != {"title", "actionURL"} or \
                        not strings(b, ("title", "actionURL")) or not b["title"] or \
                        not b["actionURL"]:
                    return f"a button has exactly title and actionURL, strings: {b}"
        else:
            return f"an actionCard has title, text and btns (or singleTitle and singleURL), " \
                f"not {sorted(card)}"
        if card.get("btnOrientation", "0") not in ("0", "1"):
            return "btnOrientation is \"0\" or \"1\""
        return None
    return f"msgtype {kind!r} is not one the module sends"


class MockDingTalk:
    """DingTalk's robot API as seen by the module: POST /robot/send?access_token=..."""

    OK = {"errcode": 0, "errmsg": "ok"}

    def __init__(self, tls_cert=None, tls_key=None, secret=None, port=0):
        self.secret = secret
        self.received = []
        self.script = collections.deque()  # per-request answers, consumed in order
        self.default = {"status": 200, "body": self.OK, "delay": 0}
        self.connections = 0  # accepted (over TLS: each with its handshake)
        self.closed = 0  # connections that ended (the client hung up, or a drop)
        self.lock = threading.Lock()
        # Like DingTalk: (count, seconds) per robot token, over which it answers 130101.
        self.dingtalk_limit = None
        self.over_limit = 0  # times the limit was hit: the module should make this impossible
        self.chaos = None  # (probability, random.Random): fail attempts at random
        # Like a robot secured by custom keywords: a message whose text has none is 310000.
        self.keywords = []
        # A per-request choice before the script: behaviour(rec) -> an answer dict, or None for
        # the script's (called under the lock, in arrival order).
        self.behaviour = None
        self.partial = 0  # requests whose client left before the whole body arrived
        self._running = threading.Event()  # cleared while stalled
        self._running.set()
        mock = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                self.served = 0  # requests read on this connection
                with mock.lock:
                    mock.connections += 1

            def finish(self):
                super().finish()
                with mock.lock:
                    mock.closed += 1

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(n)
                if len(body) < n:  # the client left mid-body: DingTalk never had the request
                    with mock.lock:
                        mock.partial += 1
                    self.close_connection = True
                    return
                rec = Received(self.path, dict(self.headers), body)
                rec.sig_ok = mock._check_signature(rec)
                rec.reused = self.served > 0
                self.served += 1
                with mock.lock:
                    answer = mock.behaviour(rec) if mock.behaviour else None
                    if answer is None:
                        answer = mock.script.popleft() if mock.script else dict(mock.default)
                    answer = mock._chaos(answer)
                    answer = mock._limit(rec, answer)
                    answer = mock._keywords(rec, answer)
                    if rec.invalid:  # as DingTalk: a body it cannot read is refused
                        answer = {"status": 200, "body": {"errcode": 40035,
                                                          "errmsg": "缺少参数 " + rec.invalid}}
                    rec.answer = answer
                    rec.at = time.time()
                    rec.stalled = not mock._running.is_set()
                    mock.received.append(rec)
                if answer.get("close"):
                    # "posted, then the connection closed without an answer"
                    rec.posted_at = rec.at
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                mock._running.wait()
                if answer.get("delay"):
                    time.sleep(answer["delay"])
                if answer.get("drop"):
                    rec.answer = None
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                out = answer.get("body", mock.OK)
                if answer.get("status", 200) == 200 and out == mock.OK:
                    rec.posted_at = time.time()  # whether or not the client still listens
                out = out if isinstance(out, (bytes, str)) else json.dumps(out)
                out = out.encode() if isinstance(out, str) else out
                self.send_response(answer.get("status", 200))
                self.send_header("Content-Type", answer.get("type", "application/json"))
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass  # clients that time out and hang up are part of the tests

        self.server = QuietServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/robot/send"

    def _keywords(self, rec, answer):
        if not self.keywords or answer.get("body", self.OK) != self.OK:
            return answer
        text = ((rec.json or {}).get("markdown") or (rec.json or {}).get("actionCard") or
                {}).get("text", "")
        if any(k in text for k in self.keywords):
            return answer
        msg = "keywords not in content, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"
        return {"status": 200, "body": {"errcode": 310000, "errmsg": msg}}

    def _check_signature(self, rec):
        if "sign" not in rec.query and "timestamp" not in rec.query:
            return None
        if not self.secret:
            return False
        ts = rec.query.get("timestamp", "")
        mac = hmac.new(self.secret.encode(), f"{ts}\n{self.secret}".encode(), hashlib.sha256)
        expected = base64.b64encode(mac.digest()).decode()
        fresh = ts.isdigit() and abs(int(ts) - time.time() * 1000) < 3600 * 1000
        # parse_qsl has already percent-decoded the value; the raw query must be encoded
        encoded = urllib.parse.quote(expected, safe="")
        return fresh and rec.query.get("sign") == expected and f"sign={encoded}" in rec.raw_query

    FAILURES = (
        {"status": 500, "body": "<html>internal error</html>", "type": "text/html"},
        {"status": 502, "body": "bad gateway", "type": "text/plain"},
        {"drop": True},
        {"status": 200, "body": "<html>maintenance</html>", "type": "text/html"},
        {"status": 504, "body": "timeout", "type": "text/plain", "delay": 4},
    )

    def _chaos(self, answer):
        if self.chaos is None:
            return answer
        probability, rng = self.chaos
        if rng.random() < probability:
            return dict(rng.choice(self.FAILURES), injected=True)
        return answer

    def _limit(self, rec, answer):
        body = answer.get("body", self.OK)
        if self.dingtalk_limit is None or not isinstance(body, dict) or body.get("errcode") != 0:
            return answer
        count, window = self.dingtalk_limit
        now = time.time()
        token = rec.query.get("access_token")
        recent = [r for r in self.received
                  if r.query.get("access_token") == token and r.answer
                  and isinstance(r.answer.get("body", self.OK), dict)
                  and r.answer.get("body", self.OK).get("errcode") == 0
                  and now - r.at < window]
        if len(recent) >= count:
            self.over_limit += 1
            return {"body": {"errcode": 130101,
                             "errmsg": "send too fast, exceed 20 times per minute"}}
        return answer

    def answer(self, *answers):
        """Queue answers for the next requests: dicts with status/body/delay/drop."""
        with self.lock:
            self.script.extend(answers)

    def accepted(self):
        """Messages DingTalk would have posted (answered errcode 0)."""
        with self.lock:
            return [r for r in self.received
                    if r.answer and r.answer.get("status", 200) == 200
                    and isinstance(r.answer.get("body", self.OK), dict)
                    and r.answer.get("body", self.OK).get("errcode") == 0]

    def stall(self):
        """From now on every request is read and then held, unanswered, until release()."""
        self._running.clear()

    def release(self):
        """Answers (and posts) what the stall held, and every request after at once."""
        self._running.set()

    def posted(self):
        """What the group saw, in the order it saw it: each request DingTalk posted."""
        with self.lock:
            return sorted((r for r in self.received if r.posted_at is not None),
                          key=lambda r: r.posted_at)

    def posts_of(self, names):
        """{name: [posted requests whose title or text names it]}, for names no one of which
        is a part of another (pods, alert names): how often the group saw each alert."""
        posted = self.posted()
        return {name: [r for r in posted if r.json and name in r.title + "\n" + r.text]
                for name in names}

    def copies(self):
        """{(title, text): times posted} for the messages the group saw more than once."""
        seen = collections.Counter((r.title, r.text) for r in self.posted() if r.json)
        return {k: n for k, n in seen.items() if n > 1}

    def wait_for(self, count, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(self.received) >= count:
                return True
            time.sleep(0.02)
        return False

    def close(self):
        self.release()  # a stalled handler thread would hold the server's shutdown
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------------------------------
# nginx


class NginxError(Exception):
    pass


class Nginx:
    """One nginx instance with its own prefix directory, config and logs."""

    def __init__(self, http, main="", workers=1, log_level="info", env=None,
                 thread_pool="thread_pool dingtalk threads=4 max_queue=1024;"):
        self.dir = world_readable_tmpdir("dingtalk-nginx-")
        self.port = free_port()
        self.env = dict(os.environ, **(env or {}))
        if os.environ.get("DINGTALK_NGINX_PRELOAD"):  # sanitizer runtimes, for nginx only
            self.env["LD_PRELOAD"] = os.environ["DINGTALK_NGINX_PRELOAD"]
        self.allowed = []  # error log patterns a test expects (e.g. "[alert]" it provokes)
        self.pid = None
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        self.conf = f"""
load_module {MODULE};
{user}
worker_processes {workers};
error_log {self.dir}/error.log {log_level};
pid {self.dir}/nginx.pid;
{thread_pool}
{main}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {self.dir}/body;
    proxy_temp_path {self.dir}/proxy;
    fastcgi_temp_path {self.dir}/fastcgi;
    uwsgi_temp_path {self.dir}/uwsgi;
    scgi_temp_path {self.dir}/scgi;
{http.replace("%PORT%", str(self.port)).replace("%DIR%", self.dir)}
}}
"""
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(self.conf)

    def cmd(self, *args):
        return [NGINX_BIN, "-p", self.dir + "/", "-c", self.conf_path, "-e",
                f"{self.dir}/error.log", *args]

    def test_config(self):
        """nginx -t: (ok, output)."""
        p = subprocess.run(self.cmd("-t"), capture_output=True, text=True, env=self.env)
        return p.returncode == 0, p.stdout + p.stderr

    def start(self):
        p = subprocess.run(self.cmd(), capture_output=True, text=True, env=self.env)
        if p.returncode != 0:
            raise NginxError(p.stderr + self.error_log())
        pidfile = os.path.join(self.dir, "nginx.pid")
        deadline = time.time() + 10
        while time.time() < deadline:
            if os.path.exists(pidfile):
                with open(pidfile) as f:
                    text = f.read().strip()
                if text:
                    self.pid = int(text)
                    break
            time.sleep(0.02)
        else:
            raise NginxError("nginx did not write its pid file")
        self.wait_workers()
        return self

    def workers(self, all_states=False):
        """Worker pids; by default only those not shutting down."""
        if self.pid is None:
            return []
        out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(self.pid)],
                             capture_output=True, text=True).stdout
        return [int(line.split()[0]) for line in out.splitlines()
                if "worker process" in line and (all_states or "shutting down" not in line)]

    def wait_workers(self, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.workers():
                return
            time.sleep(0.02)
        raise NginxError("no worker process started")

    def signal(self, sig):
        os.kill(self.pid, sig)

    def reload(self):
        old = set(self.workers())
        self.signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            now = set(self.workers())
            if now and not (now & old):
                return
            time.sleep(0.02)
        raise NginxError("reload did not start new workers")

    def running(self):
        """The master is alive. A daemon's master is reparented to init once it exits, and
        stays a zombie until init reaps it: that counts as gone."""
        if self.pid is None:
            return False
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (FileNotFoundError, ProcessLookupError):
            return False

    def stop(self, timeout=30):
        if not self.running():
            return
        self.signal(signal.SIGQUIT)
        deadline = time.time() + timeout
        while time.time() < deadline and self.running():
            time.sleep(0.05)
        if self.running():
            self.signal(signal.SIGKILL)
            raise NginxError("nginx did not quit within %d s" % timeout)

    def error_log(self):
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    PROBLEMS = ("[alert]", "[crit]", "[emerg]", "AddressSanitizer", "LeakSanitizer",
                "runtime error:")

    def problems(self):
        """[alert], [crit], [emerg] and sanitizer lines the test did not ask for."""
        bad = []
        for line in self.error_log().splitlines():
            if any(tag in line for tag in self.PROBLEMS):
                if not any(a in line for a in self.allowed):
                    bad.append(line)
        return bad

    # -- requests -------------------------------------------------------------------------

    def request(self, method, path, body=None, headers=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            hdrs = {"Content-Type": "application/json"}
            hdrs.update(headers or {})
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Reply(resp.status, dict(resp.getheaders()), data)
        finally:
            conn.close()

    def post(self, path="/", body=None, **kw):
        return self.request("POST", path, body, **kw)

    def get(self, path="/", **kw):
        return self.request("GET", path, **kw)


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"Reply({self.status}, {self.body[:300]!r})"


# ------------------------------------------------------------------------------------------
# payloads


def alert(name="KubePodCrashLooping", status="firing", severity="critical", pod="api-0",
          namespace="kube-ops", message=None, extra_labels=None, starts="2026-11-23T16:04:05Z",
          ends="0001-01-01T00:00:00Z", fingerprint=None):
    labels = {"alertname": name, "severity": severity, "namespace": namespace}
    if pod is not None:
        labels["pod"] = pod
    labels.update(extra_labels or {})
    return {
        "status": status,
        "labels": labels,
        "annotations": {"message": message or f"Pod {namespace}/{pod} is crash looping"},
        "startsAt": starts,
        "endsAt": ends,
        "generatorURL": "http://prometheus.example/graph?g0.expr=up",
        "fingerprint": fingerprint or hashlib.sha1(json.dumps(labels).encode()).hexdigest()[:16],
    }


_GROUPS = itertools.count(1)


def notification(*alerts, group="KubePodCrashLooping", truncated=0):
    """A notification of its own: each call is another group of Alertmanager's route (its
    groupKey differs), so the module never takes it for a retry of an earlier one. A retry
    posts the same dict again."""
    alerts = list(alerts) or [alert()]
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}/{n="%d"}:{alertname="%s"}' % (next(_GROUPS), group),
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": "dingtalk",
        "groupLabels": {"alertname": group},
        "commonLabels": {"alertname": group},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    }


def line_of(ngx, needle):
    """The line of ngx's nginx.conf that holds needle (for file:line checks)."""
    for n, text in enumerate(open(ngx.conf_path).read().splitlines(), start=1):
        if needle in text:
            return n
    raise AssertionError(needle)


def webhook(mock, extra="", location="= /"):
    """An http-block body with one webhook location sending to the mock."""
    return f"""
    server {{
        listen 127.0.0.1:%PORT%;
        location {location} {{
            dingtalk;
            dingtalk_token {TOKEN};
            dingtalk_api_url {mock.url};
            dingtalk_thread_pool dingtalk;
            {extra}
        }}
        location = /static {{
            return 200 "static\\n";
        }}
    }}
"""


def relay(src, dst, delay=0.0):
    """Passes what src sends on to dst (each read held `delay` seconds) until either closes;
    then shuts both down."""
    try:
        while data := src.recv(65536):
            time.sleep(delay)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FlakyFront:
    """A TCP front for a mock: the first `resets` connections are reset as soon as the client
    speaks (for TLS: in the middle of the handshake); the rest are relayed to the mock."""

    def __init__(self, target_port, resets=1):
        self.target_port = target_port
        self.resets = resets
        self.accepted = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.resets:
                conn.recv(1)  # the ClientHello has begun
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()  # RST
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=relay, args=(a, b), daemon=True).start()

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------------------------------
# a real forward proxy (dingtalk_proxy)


TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"


class Tinyproxy:
    """tinyproxy in the foreground on a free loopback port, logging CONNECTs to a file."""

    def __init__(self, connect_ports, auth=None):
        self.dir = world_readable_tmpdir("dingtalk-tinyproxy-")
        self.port = free_port()
        self.log_path = os.path.join(self.dir, "log")
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", "LogLevel Connect",
                 "MaxClients 20", "Allow 127.0.0.1"]
        lines += [f"ConnectPort {p}" for p in connect_ports]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        self.conf = os.path.join(self.dir, "tinyproxy.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([TINYPROXY, "-d", "-c", self.conf], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            assert self.proc.poll() is None, "tinyproxy exited:\n" + self.log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("tinyproxy did not listen:\n" + self.log())

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def url(self, credentials=""):
        return f"http://{credentials}127.0.0.1:{self.port}"

    def close(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# ------------------------------------------------------------------------------------------
# a client that retries as Alertmanager does


class Try:
    """One POST of a notification: when it started and ended (time.time()) and its status, or
    None when the connection failed or the client's timeout ran out."""

    def __init__(self, start, end, status, error=None):
        self.start, self.end, self.status, self.error = start, end, status, error

    def __repr__(self):
        return f"Try({self.start:.1f}-{self.end:.1f}: {self.status or self.error})"


def like_alertmanager(ngx, payload, rng, flush_timeout=60.0, group_interval=None, give_up=None,
                      path="/", headers=None):
    """POSTs one notification the way Alertmanager 0.25's notify pipeline does, and returns
    every try (a list of Try; the last is a 200 when it got through).

    A flush sends at once and, after a 5xx or a connection error or timeout, again with
    cenkalti/backoff's schedule (500 ms first, then x1.5, each wait randomized by +-50%, at most
    60 s), each POST with the time left to the flush's deadline as its timeout, until a 200 or
    the deadline (flush_timeout: Alertmanager's max(group_interval, 10s)); any other status is
    permanent and ends it. With group_interval, a failed flush is followed by the group's next
    one (group_interval after the last began, or at once when it ran longer), its backoff
    starting again at 500 ms, until give_up seconds after the first POST."""
    body = json.dumps(payload) if isinstance(payload, (dict, list)) else payload
    tries = []
    first = time.time()
    flush_start = first
    while True:
        deadline = flush_start + flush_timeout
        interval = 0.5
        while True:
            left = deadline - time.time()
            if left <= 0:
                break
            t0 = time.time()
            try:
                status, error = ngx.post(path, body, timeout=left, headers=headers).status, None
            except (OSError, http.client.HTTPException) as e:
                status, error = None, type(e).__name__
            tries.append(Try(t0, time.time(), status, error))
            if status is not None and not 500 <= status < 600:
                return tries  # a 200, or a 4xx Alertmanager never retries
            wait = interval * (1 + 0.5 * (2 * rng.random() - 1))
            interval = min(interval * 1.5, 60.0)
            if time.time() + wait >= deadline:
                break
            time.sleep(wait)
        if group_interval is None:
            return tries
        flush_start = max(flush_start + group_interval, time.time())
        if give_up is not None and flush_start - first >= give_up:
            return tries
        time.sleep(max(0.0, flush_start - time.time()))
