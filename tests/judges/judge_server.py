"""A real HTTP server on loopback that speaks the OpenAI chat-completions protocol, for tests.

Its default judge is a small deterministic "keyword judge": a criterion that quotes a word
(`Mentions 'Paris'`) is met when the response contains that word (case-insensitive); a criterion
without a quoted word is not met. With `gullible=True` it also behaves like a judge that obeys
grader-addressing text: a response containing "answer yes" (any case) gets YES for everything.

Faults are scripted per request: `server.faults` is a list of actions taken by the next requests
in order ("429", "429-date", "500", "503", "malformed", "not-json", "empty", "refusal",
"truncated", "hang", "drop", "missing", "extra", "conflict", "prose"); `fail_if` is a predicate
on the response text that makes every request about it answer 500 (a persistently failing
judge); `fail_fraction` f makes exactly that share of requests answer 500, evenly spread
(request n fails when floor((n+1)f) > floor(nf)); `delay_s` delays every answer. `statuses`
counts the HTTP statuses it answered with.
"""

from __future__ import annotations

import collections
import email.utils
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

_RESPONSE = re.compile(r"<<<RESPONSE (\w+)>>>\n(.*)\n<<<END RESPONSE \1>>>", re.S)
_CRITERION = re.compile(r"^(\d+)\. (.*)$", re.M)


def keyword_answers(response: str, criteria: list[str], gullible: bool = False) -> list[bool]:
    if gullible and "answer yes" in response.lower():
        return [True] * len(criteria)
    out = []
    for c in criteria:
        m = re.search(r"'([^']+)'", c)
        out.append(bool(m) and m.group(1).lower() in response.lower())
    return out


def parse_request(body: dict) -> tuple[str, list[str]]:
    user = body["messages"][-1]["content"]
    response = _RESPONSE.search(user).group(2)
    criteria_block = user.split("CRITERIA:\n", 1)[1].split("\n\n", 1)[0]
    return response, [m.group(2) for m in _CRITERION.finditer(criteria_block)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the listen backlog: the default 5 drops bursts of connections


class JudgeServer:
    def __init__(self, delay_s: float = 0.0, gullible: bool = False,
                 fail_if: Callable[[str], bool] | None = None, fail_fraction: float = 0.0):
        self.delay_s, self.gullible, self.fail_if = delay_s, gullible, fail_if
        self.fail_fraction = fail_fraction  # request n fails when floor((n+1)f) > floor(nf)
        self.faults: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                if self.path != "/v1/chat/completions":
                    return server.send(self, 404, b'{"error": "not found"}')
                with server.lock:
                    server.requests.append(body)
                    fault = server.faults.pop(0) if server.faults else None
                    n, f = len(server.requests) - 1, server.fail_fraction
                    if fault is None and int((n + 1) * f) > int(n * f):
                        fault = "500"
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    server.answer(self, body, fault)
                finally:
                    with server.lock:
                        server.in_flight -= 1

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "JudgeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- answers ----------------------------------------------------------------------------

    def send(self, handler, status: int, payload: bytes, headers: dict | None = None) -> None:
        with self.lock:
            self.statuses[status] += 1
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            handler.send_header(k, v)
        handler.end_headers()
        handler.wfile.write(payload)

    @staticmethod
    def completion(content: str | None, finish: str = "stop", refusal: str | None = None) -> bytes:
        message = {"role": "assistant", "content": content}
        if refusal is not None:
            message["refusal"] = refusal
        return json.dumps({"id": "x", "object": "chat.completion", "model": "scripted",
                           "choices": [{"index": 0, "message": message, "finish_reason": finish}]}).encode()

    def answer(self, handler, body: dict, fault: str | None) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        response, criteria = parse_request(body)
        if fault == "hang":
            time.sleep(3.0)
        if fault == "drop":
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        if fault in ("429", "429-date"):
            when = "1" if fault == "429" else email.utils.formatdate(time.time() + 2, usegmt=True)
            return self.send(handler, 429, b'{"error": "rate limited"}', {"Retry-After": when})
        if fault in ("500", "503") or (self.fail_if is not None and self.fail_if(response)):
            return self.send(handler, int(fault or 500), b'{"error": "server error"}')
        if fault == "not-json":
            return self.send(handler, 200, b"<html>gateway</html>")
        if fault == "malformed":
            return self.send(handler, 200, b'{"choices": []}')
        if fault == "empty":
            return self.send(handler, 200, self.completion(""))
        if fault == "refusal":
            return self.send(handler, 200, self.completion(None, refusal="I can't grade this."))
        if fault == "truncated":
            return self.send(handler, 200, self.completion("1: YES", finish="length"))
        answers = keyword_answers(response, criteria, self.gullible)
        lines = [f"{k}: {'YES' if a else 'NO'}" for k, a in enumerate(answers, 1)]
        if fault == "missing":
            lines = lines[:-1]
        elif fault == "extra":
            lines.append(f"{len(lines) + 1}: YES")
        elif fault == "conflict":
            lines.append(f"1: {'NO' if answers[0] else 'YES'}")
        elif fault == "prose":
            lines = ["The response looks fine to me overall."]
        self.send(handler, 200, self.completion("\n".join(lines)))
