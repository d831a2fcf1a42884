#!/usr/bin/env python3
"""A webhook endpoint for the HTTP engine test (test/http/engine_test.cpp).

    python3 server.py --port 0 --ready-file F     writes {"port": N} to F once listening

What a request gets depends on its path (any method):
    /ok                   200 "ok"
    /echo                 200, the request as text: method, version, headers, then the body
    /status/N[/S]         status N, with Retry-After: S if given, and a short body
    /body/N/K             status N with a body of K bytes ("x" repeated)
    /redirect             302 to /redirect-target
    /stall/MS             waits MS milliseconds, then 200
    /drop                 reads the request, then closes the connection without answering
    /garbage              answers a line that is not HTTP, then closes the connection
    /_stats               "connections=N" and "path <path> N" lines: connections accepted and
                          requests seen per path (stats requests not counted)
Python's standard library only, one thread per connection, HTTP/1.1 keep-alive.
"""
import argparse
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
connections = 0
paths = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        global connections
        super().setup()
        with lock:
            connections += 1

    def log_message(self, *args):
        pass

    def reply(self, status, body=b"", headers=()):
        if status in (204, 304) or status < 200:
            body = b""  # these have no body (a body would be read as the next response)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        if path == "/_stats":
            with lock:
                lines = ["connections=%d" % connections] + ["path %s %d" % kv for kv in sorted(paths.items())]
            self.reply(200, ("\n".join(lines) + "\n").encode())
            return
        with lock:
            paths[path] = paths.get(path, 0) + 1
        try:
            if parts[0] == "ok":
                self.reply(200, b"ok")
            elif parts[0] == "echo":
                text = "%s %s\n" % (self.command, self.request_version)
                text += "".join("%s: %s\n" % (k.lower(), v) for k, v in self.headers.items())
                self.reply(200, text.encode() + b"\n" + body)
            elif parts[0] == "status":
                headers = [("Retry-After", parts[2])] if len(parts) > 2 else []
                self.reply(int(parts[1]), b"status %s" % parts[1].encode(), headers)
            elif parts[0] == "body":
                self.reply(int(parts[1]), b"x" * int(parts[2]))
            elif parts[0] == "redirect":
                self.reply(302, b"", [("Location", "/redirect-target")])
            elif parts[0] == "stall":
                time.sleep(int(parts[1]) / 1000.0)
                self.reply(200, b"late")
            elif parts[0] == "garbage":
                self.close_connection = True
                self.wfile.write(b"this is not HTTP\r\n\r\n")
            elif parts[0] == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.reply(404, b"no such path")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (a stall it timed out, abandon_all)

    do_GET = do_POST = do_PUT = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # 200 connections at once must not wait for SYN retries

    def handle_error(self, request, client_address):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready-file", required=True)
    args = ap.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"port": server.server_address[1]}, f)
    os.rename(tmp, args.ready_file)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
