"""A scripted chat-completions server on loopback, and the answers of a good candidate, for the LLM backend tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CODE = '''import json

CAPITALS = {"veltrana": "Quorvis", "ostmark": "Brellin"}


def get_capital(country):
    """Return the capital of a country."""
    key = str(country).strip().lower()
    if key not in CAPITALS:
        return "Error: unknown country " + json.dumps(country)
    return CAPITALS[key]
'''
DECOY = '''def get_anthem(country):
    """Return the national anthem of a country."""
    return "Hymn of the Plains"
'''
TOOL = {
    "name": "get_capital",
    "description": "Return the capital of a country.",
    "parameters": {
        "type": "object",
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
    },
}
DECOY_TOOL = {
    "name": "get_anthem",
    "description": "Return the national anthem of a country.",
    "parameters": {
        "type": "object",
        "properties": {"country": {"type": "string"}},
        "required": ["country"],
    },
}
GOOD = {
    "scene": {
        "question": "What is the capital of Veltrana?",
        "final_answer": "Quorvis",
        "sub_problems": [
            {
                "id": "s1",
                "description": "capital of Veltrana",
                "depends_on": [],
                "answer": "Quorvis",
            }
        ],
    },
    "documents": {"tools": [TOOL | {"sub_problem": "s1"}]},
    "integration": {"tools": [TOOL], "assignment": {"s1": "get_capital"}},
    "scaling": {"tools": [TOOL], "distractors": [DECOY_TOOL]},
    "deployment": {
        "codes": {"get_capital": CODE, "get_anthem": DECOY},
        "solution": [[{"name": "get_capital", "arguments": {"country": "Veltrana"}}]],
        "unsolved_set": {"get_capital": ["Quorvis"]},
        "distractor_probes": [{"name": "get_anthem", "arguments": {"country": "Veltrana"}}],
    },
}


class ScriptedServer:
    """A chat-completions server: ``script(stage, attempt, message)`` returns (HTTP status, content)
    or (HTTP status, content, finish_reason).

    ``message`` is the decoded user message of the request (its ``stage``, ``candidate``...).

    ``delay_s`` holds every answer back a little; ``max_in_flight`` records the most requests that
    were being answered at once. Like vLLM, it lists ``models`` at ``GET /v1/models`` and answers a
    request for another model with a 404 naming them; with ``refuse_schema`` it answers a
    ``json_schema`` response format with a 400, like a server without structured outputs.
    """

    def __init__(
        self,
        script: Callable[[str, int, dict], tuple],
        delay_s: float = 0.0,
        models: tuple[str, ...] = ("scripted",),
        refuse_schema: bool = False,
    ) -> None:
        self.script, self.requests, self.bodies = script, 0, []
        self.models, self.refuse_schema = models, refuse_schema
        self.delay_s, self.in_flight, self.max_in_flight = delay_s, 0, 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests += 1
                    owner.bodies.append(body)
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                    attempt = owner.requests
                time.sleep(owner.delay_s)
                message = json.loads(body["messages"][1]["content"])
                status, content, finish = owner.answer(body, attempt, message)
                with owner.lock:
                    owner.in_flight -= 1
                payload = {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": finish,
                            "message": {"role": "assistant", "content": content},
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                error = {"error": {"message": content or "boom", "code": status}}
                self.reply(status, payload if status == 200 else error)

            def do_GET(self) -> None:
                names = [{"id": name, "object": "model", "owned_by": "me"} for name in owner.models]
                self.reply(200, {"object": "list", "data": names})

            def reply(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up on this request (its timeout) and hung up

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def answer(self, body: dict, attempt: int, message: dict) -> tuple[int, str, str]:
        """(status, content, finish_reason) of a request: refusals first, then the script's answer."""
        if body["model"] not in self.models:
            names = ", ".join(self.models)
            return (
                404,
                f"The model `{body['model']}` does not exist. Valid aliases: {names}.",
                "stop",
            )
        if self.refuse_schema and body.get("response_format", {}).get("type") == "json_schema":
            return 400, "response_format json_schema is not supported", "stop"
        status, content, *finish = self.script(message["stage"], attempt, message)
        return status, content, finish[0] if finish else "stop"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def good(stage: str, attempt: int = 0, message: dict | None = None) -> tuple[int, str]:
    return 200, json.dumps(GOOD[stage])
