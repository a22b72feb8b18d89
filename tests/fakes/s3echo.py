"""An S3-compatible endpoint that answers every read with 403 and echoes what the request
carried (its X-Amz-Security-Token, the Authorization header with the access key id) in the
error's Message, as a misconfigured proxy or store may: assetbuild must print none of it.
HEAD answers 200, so the bucket looks present and the commands go on to list it."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape


class S3EchoServer:
    def __init__(self) -> None:
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _deny(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                token = self.headers.get("X-Amz-Security-Token", "")
                auth = self.headers.get("Authorization", "")
                message = (f"The provided token {token} is not valid for {auth}; "
                           f"token (lowercased) {token.lower()}, cut {token[:24]}...")
                body = ('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
                        f"<Message>{escape(message)}</Message><RequestId>{escape(token[:32])}</RequestId>"
                        "</Error>").encode()
                self.send_response(403)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("x-amz-request-id", token[:40])
                self.end_headers()
                self.wfile.write(body)
                echo.denied += 1

            do_GET = do_PUT = do_POST = do_DELETE = _deny

        self.denied = 0
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "S3EchoServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
