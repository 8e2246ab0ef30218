"""A small Redfish service for fencekit's fault tests and benchmarks.

Serves the service root, a Systems collection and its ComputerSystem resources over
HTTPS with Basic authentication, and takes ComputerSystem.Reset. Unlike
sushy-emulator it switches at once (or after --delay-ms), and it can misbehave on
purpose (--mode). It keeps the true power state of every system in --state (JSON,
rewritten on every change) and appends every request to --requests, which tests read
as the oracle; nothing reads them through fencekit.

Modes: obey; liar (accepts ForceOff and stays On); status:CODE (every request is
answered CODE with a Redfish error body); post-status:CODE (only the reset is);
garbage (200 with a body that is not JSON); hang (reads the request, never answers);
no-power-state (systems without PowerState); powering-off (ForceOff leaves the system
PoweringOff for good).
"""

import argparse
import base64
import hmac
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password-file", required=True)
    p.add_argument("--state", required=True)
    p.add_argument("--requests", required=True)
    p.add_argument("--systems", default="System.Embedded.1")
    p.add_argument("--mode", default="obey")
    p.add_argument("--delay-ms", type=int, default=0)
    return p.parse_args()


ARGS = parse()
with open(ARGS.password_file) as f:
    PASSWORD = f.read().rstrip("\n")
EXPECTED = "Basic " + base64.b64encode(f"{ARGS.user}:{PASSWORD}".encode()).decode()
SYSTEMS = ARGS.systems.split(",")
STATE = {s: "On" for s in SYSTEMS}
# When a pending change lands: system -> (unix time, state).
PENDING = {}


def save():
    tmp = ARGS.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, ARGS.state)


def settle():
    now = time.time()
    for system, (when, state) in list(PENDING.items()):
        if now >= when:
            STATE[system] = state
            del PENDING[system]
            save()


def later(system, state, seconds):
    if seconds <= 0:
        STATE[system] = state
        PENDING.pop(system, None)
    else:
        PENDING[system] = (time.time() + seconds, state)
    save()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def record(self, body):
        with LOCK, open(ARGS.requests, "a") as f:
            f.write(f"{self.command} {self.path} {body}\n")

    def reply(self, code, obj=None, raw=None):
        data = raw if raw is not None else json.dumps(obj or {}).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, code, message):
        self.reply(code, {"error": {"code": "Base.1.0.GeneralError", "message": message}})

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        self.record(body)
        mode = ARGS.mode
        if mode == "hang":
            time.sleep(3600)
            return
        auth = self.headers.get("Authorization") or ""
        if not hmac.compare_digest(auth.encode(), EXPECTED.encode()):
            return self.error(401, "Incorrect username or password")
        if mode.startswith("status:"):
            return self.error(int(mode.split(":")[1]), "failing on purpose")
        if mode == "garbage":
            return self.reply(200, raw=b"<html>Service Temporarily Unavailable</html>")
        path = self.path.rstrip("/")
        with LOCK:
            settle()
            if self.command == "GET":
                return self.get(path)
            if self.command == "POST" and path.endswith("/Actions/ComputerSystem.Reset"):
                return self.reset(path, body)
        return self.error(405, "method not allowed")

    def get(self, path):
        if path == "/redfish/v1":
            return self.reply(200, {"@odata.id": "/redfish/v1/", "Id": "RootService",
                                    "Systems": {"@odata.id": "/redfish/v1/Systems"}})
        if path == "/redfish/v1/Systems":
            return self.reply(200, {"@odata.id": "/redfish/v1/Systems",
                                    "Members@odata.count": len(SYSTEMS),
                                    "Members": [{"@odata.id": f"/redfish/v1/Systems/{s}"}
                                                for s in SYSTEMS]})
        for s in SYSTEMS:
            if path == f"/redfish/v1/Systems/{s}":
                system = {
                    "@odata.id": path, "Id": s, "Name": f"server {s}",
                    "Actions": {"#ComputerSystem.Reset": {
                        "target": f"{path}/Actions/ComputerSystem.Reset",
                        "ResetType@Redfish.AllowableValues":
                            ["On", "ForceOff", "GracefulShutdown", "ForceRestart", "Nmi",
                             "PowerCycle"]}},
                }
                if ARGS.mode != "no-power-state":
                    system["PowerState"] = STATE[s]
                return self.reply(200, system)
        return self.error(404, "no such resource")

    def reset(self, path, body):
        system = path.split("/")[-3]
        if system not in SYSTEMS:
            return self.error(404, "no such system")
        if ARGS.mode.startswith("post-status:"):
            return self.error(int(ARGS.mode.split(":")[1]), "reset failing on purpose")
        try:
            reset = json.loads(body)["ResetType"]
        except Exception:
            return self.error(400, "no ResetType")
        delay = ARGS.delay_ms / 1000
        if reset == "ForceOff":
            if ARGS.mode == "liar":
                pass
            elif ARGS.mode == "powering-off":
                later(system, "PoweringOff", 0)
            else:
                later(system, "Off", delay)
        elif reset in ("On", "ForceOn"):
            later(system, "On", delay)
        elif reset in ("PowerCycle", "ForceRestart"):
            if ARGS.mode != "liar":
                STATE[system] = "Off"
                save()
                later(system, "On", max(delay, 1.0))
        elif reset == "Nmi":
            pass
        else:
            return self.error(400, f"ResetType {reset} not supported")
        self.reply(204, raw=b"")

    do_GET = handle_any
    do_POST = handle_any
    do_DELETE = handle_any
    do_PATCH = handle_any


def main():
    save()
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(ARGS.cert, ARGS.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
