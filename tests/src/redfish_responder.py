"""A small Redfish service for fencekit's fault tests and benchmarks.

Serves the service root, a Systems collection and its ComputerSystem resources over
HTTPS with Basic authentication, and takes ComputerSystem.Reset. Unlike
sushy-emulator it switches at once (or after --delay-ms), and it can misbehave on
purpose (--mode). It keeps the true power state of every system in --state (JSON,
rewritten on every change) and appends every request to --requests, which tests read
as the oracle; nothing reads them through fencekit.

Modes: obey; liar (accepts ForceOff and stays On); stuck (accepts every reset and
never changes); status:CODE (every request is
answered CODE with a Redfish error body); post-status:CODE (only the reset is);
garbage (200 with a body that is not JSON); hang (reads the request, never answers);
no-power-state (systems without PowerState); powering-off (ForceOff leaves the system
PoweringOff for good); pending:MS (a change reads PoweringOff or PoweringOn for MS
milliseconds, then lands); drop (a reset takes effect and is never answered, nor is
anything after it); paged (the Systems collection lists one member per page, with
Members@odata.nextLink); short-list (the collection declares every member in
Members@odata.count but lists only the first).

--events gets one line per reset that changes power, as fencekit's fault matrix
reads them: ACCEPTED_MS SYSTEM_NUMBER on|off EFFECTIVE_MS|- (- for never).
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
    p.add_argument("--initial", default="On", choices=["On", "Off"])
    p.add_argument("--events", default=os.devnull)
    return p.parse_args()


ARGS = parse()
with open(ARGS.password_file) as f:
    PASSWORD = f.read().rstrip("\n")
EXPECTED = "Basic " + base64.b64encode(f"{ARGS.user}:{PASSWORD}".encode()).decode()
SYSTEMS = ARGS.systems.split(",")
STATE = {s: ARGS.initial for s in SYSTEMS}
# Changes still to land: system -> [(unix time, state), ...] in time order.
PENDING = {}
# Set once a reset was dropped: nothing is answered after it.
DROPPED = threading.Event()


def event(system, on, effective, accepted=None):
    """Appends ACCEPTED_MS NUMBER on|off EFFECTIVE_MS|- to the events file. The steps
    of one command (a cycle's off and on) share its accepted time."""
    now = int((accepted or time.time()) * 1000)
    when = "-" if effective is None else str(int(effective * 1000))
    with open(ARGS.events, "a") as f:
        f.write(f"{now} {SYSTEMS.index(system) + 1} {'on' if on else 'off'} {when}\n")


def save():
    tmp = ARGS.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump(STATE, f)
    os.replace(tmp, ARGS.state)


def settle():
    now = time.time()
    for system, changes in PENDING.items():
        while changes and now >= changes[0][0]:
            STATE[system] = changes.pop(0)[1]
            save()


def later(system, state, seconds, then=None):
    """STATE becomes `state` in `seconds` (and `then` = (state, seconds) after that)."""
    if ARGS.mode.startswith("pending:"):
        seconds = int(ARGS.mode.split(":")[1]) / 1000
        STATE[system] = "PoweringOff" if state == "Off" else "PoweringOn"
    now = time.time()
    PENDING[system] = []
    if seconds <= 0:
        STATE[system] = state
    else:
        PENDING[system].append((now + seconds, state))
    event(system, state == "On", now + max(seconds, 0), accepted=now)
    if then is not None:
        PENDING[system].append((now + max(seconds, 0) + then[1], then[0]))
        event(system, then[0] == "On", now + max(seconds, 0) + then[1], accepted=now)
    save()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle holds the body
    # for the client's delayed ACK (40 ms a request).
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def record(self, body):
        with LOCK, open(ARGS.requests, "a") as f:
            f.write(f"{self.command} {self.path} conn={self.client_address[1]} {body}\n")

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
        if mode == "hang" or DROPPED.is_set():
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
        if path == "/redfish/v1/Systems" or path.startswith("/redfish/v1/Systems?page="):
            members = [{"@odata.id": f"/redfish/v1/Systems/{s}"} for s in SYSTEMS]
            body = {"@odata.id": "/redfish/v1/Systems", "Members@odata.count": len(SYSTEMS)}
            if ARGS.mode == "paged":
                page = int(path.split("page=")[1]) if "page=" in path else 0
                body["Members"] = members[page:page + 1]
                if page + 1 < len(members):
                    body["Members@odata.nextLink"] = f"/redfish/v1/Systems?page={page + 1}"
            elif ARGS.mode == "short-list":
                body["Members"] = members[:1]
            else:
                body["Members"] = members
            return self.reply(200, body)
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
        if ARGS.mode == "drop":
            DROPPED.set()
        if ARGS.mode.startswith("post-status:"):
            return self.error(int(ARGS.mode.split(":")[1]), "reset failing on purpose")
        try:
            reset = json.loads(body)["ResetType"]
        except Exception:
            return self.error(400, "no ResetType")
        delay = ARGS.delay_ms / 1000
        changes = ("ForceOff", "On", "ForceOn", "PowerCycle", "ForceRestart")
        if ARGS.mode == "stuck" and reset in changes:
            event(system, reset in ("On", "ForceOn"), None)
        elif reset == "ForceOff":
            if ARGS.mode == "liar":
                event(system, False, None)
            elif ARGS.mode == "powering-off":
                later(system, "PoweringOff", 0)
            else:
                later(system, "Off", delay)
        elif reset in ("On", "ForceOn"):
            later(system, "On", delay)
        elif reset in ("PowerCycle", "ForceRestart"):
            if ARGS.mode == "liar":
                event(system, False, None)
            else:
                # Off after the delay, on a second later: long enough to be read off.
                later(system, "Off", delay, then=("On", 1.0))
        elif reset == "Nmi":
            pass
        else:
            return self.error(400, f"ResetType {reset} not supported")
        if DROPPED.is_set():
            time.sleep(3600)
            return
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
