#!/usr/bin/env python3
"""A local stand-in for DingTalk's robot API that prints every message it gets.

Used by `make run` when no ROBOT_TOKEN is set, so the module can be tried without a DingTalk
account. Answers {"errcode":0,"errmsg":"ok"} like the real robot API.

    scripts/dingtalk-standin.py [--port 5001]
"""

import argparse
import http.server
import json
import sys
import textwrap
import urllib.parse

BOLD, DIM, RED, GREEN, RESET = "\033[1m", "\033[2m", "\033[31m", "\033[32m", "\033[0m"


def paint(text, color):
    return f"{color}{text}{RESET}" if sys.stdout.isatty() else text


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        try:
            msg = json.loads(body)
            title = msg["markdown"]["title"]
            text = msg["markdown"]["text"]
        except (ValueError, KeyError, TypeError):
            self.answer({"errcode": 400013, "errmsg": "not a markdown message"})
            return
        color = RED if "FIRING" in title else GREEN
        signed = "signed" if "sign" in query else "unsigned"
        print(paint("─" * 72, DIM))
        print(paint(f"DingTalk message  ({len(body)} bytes, {signed})", DIM))
        print(paint(title, BOLD + color))
        print()
        for para in text.split("\n\n"):
            print(textwrap.indent(para, "  "))
        at = msg.get("at")
        if at:
            print(paint(f"  at: {json.dumps(at, ensure_ascii=False)}", DIM))
        sys.stdout.flush()
        self.answer({"errcode": 0, "errmsg": "ok"})

    def answer(self, obj):
        out = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=5001)
    args = ap.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"DingTalk stand-in on http://127.0.0.1:{args.port}/robot/send", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
