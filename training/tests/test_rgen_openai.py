"""The openai R-Gen backend against a local chat-completions server: requests, retries, errors, resume."""

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from because_train.config import OpenAIConfig
from because_train.data import DataError
from because_train.rgen import RgenItem
from because_train.rgen.openai_compat import (
    SYSTEM_PROMPT,
    OpenAIError,
    OpenAIReasoningGenerator,
    parse_retry_after,
)

ITEMS = [
    RgenItem("train:0", "i feel so happy and carefree today", "joy"),
    RgenItem("train:1", "i am scared of what comes next", "fear"),
    RgenItem("train:2", "i feel so alone and sad tonight", "sadness"),
    RgenItem("train:3", "i was amazed by the news", "surprise"),
    RgenItem("train:4", "i am furious at the delay", "anger"),
]


@dataclass
class Server:
    """Answers like a chat-completions server; `failures` are (status, headers, body) for the next calls."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    fail_text: str | None = None  # every request for this text gets a 400
    reply: str | None = None  # a fixed reply instead of the canned one
    lock: threading.Lock = field(default_factory=threading.Lock)

    @staticmethod
    def canned(text: str, label: str) -> str:
        return f'  The words "{text.split()[-1]}" show {label}.\n'

    def texts(self) -> list[str]:
        return [re.search(r'Text: "(.*)"', r["messages"][1]["content"]).group(1) for r in self.requests]


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def send(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.requests.append(body)
                state.headers.append(dict(self.headers))
                failure = state.failures.pop(0) if state.failures else None
            if self.path != "/v1/chat/completions":
                return self.send(404, '{"error": {"message": "no such route"}}')
            if failure is not None:
                return self.send(failure[0], failure[2], failure[1])
            user = body["messages"][1]["content"]
            text = re.search(r'Text: "(.*)"', user).group(1)
            label = re.search(r"Emotion: (\w+)", user).group(1)
            if text == state.fail_text:
                return self.send(400, '{"error": {"message": "bad request: max_tokens too large"}}')
            content = state.reply if state.reply is not None else Server.canned(text, label)
            choice = {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
            self.send(200, json.dumps({"id": "x", "object": "chat.completion", "choices": [choice]}))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def make(
    url: str, cache: Path, concurrency: int = 3, max_retries: int = 3
) -> tuple[OpenAIReasoningGenerator, list[float]]:
    cfg = OpenAIConfig(
        base_url=url, model="test-model", concurrency=concurrency, max_retries=max_retries, timeout_s=5
    )
    sleeps: list[float] = []
    gen = OpenAIReasoningGenerator(cfg, seed=7, cache_path=cache, backoff_s=0.01, sleep=sleeps.append)
    return gen, sleeps


def expected(item: RgenItem) -> str:
    return Server.canned(item.text, item.label).strip()


def test_request_shape_and_results(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    gen, sleeps = make(server.url, tmp_path / "cache.jsonl")
    out = gen.generate(ITEMS)

    assert out == [expected(it) for it in ITEMS]  # in order, stripped, one line
    assert sorted(server.texts()) == sorted(it.text for it in ITEMS)
    for body, headers in zip(server.requests, server.headers, strict=True):
        assert body["model"] == "test-model"
        assert body["temperature"] == 0 and body["seed"] == 7 and body["max_tokens"] == 96
        assert [m["role"] for m in body["messages"]] == ["system", "user"]
        assert body["messages"][0]["content"] == SYSTEM_PROMPT
        assert headers["Authorization"] == "Bearer sk-test"
        assert headers["Content-Type"] == "application/json"
    user = next(r for r in server.requests if "scared" in r["messages"][1]["content"])["messages"][1][
        "content"
    ]
    assert '"i am scared of what comes next"' in user and "fear" in user

    records = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert {r["key"]: r["reasoning"] for r in records} == {it.key: expected(it) for it in ITEMS}
    assert gen.stats["requested"] == 5 and gen.stats["retries"] == 0 and sleeps == []


def test_no_api_key_no_authorization_header(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    gen, _ = make(server.url, tmp_path / "cache.jsonl")
    gen.generate(ITEMS[:1])
    assert "Authorization" not in server.headers[0]


def test_retries_503_and_429_honouring_retry_after(server: Server, tmp_path: Path) -> None:
    server.failures = [
        (503, {}, '{"error": {"message": "loading model"}}'),
        (429, {"Retry-After": "2"}, '{"error": {"message": "slow down"}}'),
    ]
    gen, sleeps = make(server.url, tmp_path / "cache.jsonl", concurrency=1)
    out = gen.generate(ITEMS[:2])

    assert out == [expected(it) for it in ITEMS[:2]]
    assert len(server.requests) == 4  # the first row asked three times, the second once
    assert gen.stats["retries"] == 2
    assert len(sleeps) == 2
    assert 0.005 <= sleeps[0] <= 0.01  # backoff with jitter: 0.01 s scaled by 0.5-1
    assert sleeps[1] == 2.0  # Retry-After wins over the backoff


def test_gives_up_after_max_retries(server: Server, tmp_path: Path) -> None:
    server.failures = [(502, {}, "bad gateway")] * 10
    gen, sleeps = make(server.url, tmp_path / "cache.jsonl", concurrency=1, max_retries=3)
    with pytest.raises(OpenAIError, match=r"failed 4 times; last: HTTP 502"):
        gen.generate(ITEMS[:1])
    assert len(server.requests) == 4
    assert [round(s / 0.01) for s in sleeps] != [] and len(sleeps) == 3
    assert all(0.01 * 2**i * 0.5 <= s <= 0.01 * 2**i for i, s in enumerate(sleeps))  # exponential


def test_connection_refused_is_retried(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gen, sleeps = make(f"http://127.0.0.1:{port}/v1", tmp_path / "cache.jsonl", concurrency=1, max_retries=2)
    with pytest.raises(OpenAIError, match=r"failed 3 times; last: URLError: .*[Cc]onnection refused"):
        gen.generate(ITEMS[:1])
    assert len(sleeps) == 2


def test_client_error_is_not_retried(server: Server, tmp_path: Path) -> None:
    server.failures = [(400, {}, '{"error": {"message": "unknown model test-model"}}')]
    gen, sleeps = make(server.url, tmp_path / "cache.jsonl", concurrency=1)
    with pytest.raises(OpenAIError) as e:
        gen.generate(ITEMS[:1])
    message = str(e.value)
    assert "HTTP 400" in message and "unknown model test-model" in message and "not retried" in message
    assert len(server.requests) == 1 and sleeps == []


def test_killed_run_resumes_without_rerequesting_finished_rows(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    server.fail_text = ITEMS[3].text  # the run dies on the fourth row
    gen, _ = make(server.url, cache, concurrency=1)
    with pytest.raises(OpenAIError, match="HTTP 400"):
        gen.generate(ITEMS)
    finished = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert finished == [it.key for it in ITEMS[:3]]
    with open(cache, "a") as f:  # killed while writing a record
        f.write('{"key": "train:3", "reaso')

    server.fail_text, server.requests = None, []
    gen, _ = make(server.url, cache)
    out = gen.generate(ITEMS)
    assert out == [expected(it) for it in ITEMS]
    assert sorted(server.texts()) == sorted(it.text for it in ITEMS[3:])  # only the unfinished rows
    assert gen.stats["cached"] == 3 and gen.stats["requested"] == 2
    keys = [json.loads(line)["key"] for line in cache.read_text().splitlines()]
    assert sorted(keys) == sorted(it.key for it in ITEMS)  # the cut-off line is gone

    server.requests = []  # everything cached now: no request at all
    assert make(server.url, cache)[0].generate(ITEMS) == out
    assert server.requests == []

    changed = [RgenItem(ITEMS[0].key, "i feel calm now", "joy"), *ITEMS[1:]]  # same key, other text
    gen, _ = make(server.url, cache)
    assert gen.generate(changed)[0] == expected(changed[0])
    assert server.texts() == ["i feel calm now"] and gen.stats["stale"] == 1


def test_empty_reply_falls_back_and_is_counted(server: Server, tmp_path: Path) -> None:
    server.reply = "<think>the user wants a rationale</think>\n  "
    gen, _ = make(server.url, tmp_path / "cache.jsonl")
    out = gen.generate(ITEMS[:2])
    assert out == ["The words of the text suggest joy.", "The words of the text suggest fear."]
    assert gen.stats["fallback"] == 2


def test_bad_cache_line_is_an_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache.jsonl"
    cache.write_text('{"key": "a", "reasoning": "r"}\nnot json\n')
    gen, _ = make("http://127.0.0.1:9/v1", cache)
    with pytest.raises(DataError, match=f"{cache}:2: bad cache record"):
        gen.generate(ITEMS[:1])


def test_duplicate_keys_with_different_rows_are_refused(tmp_path: Path) -> None:
    gen, _ = make("http://127.0.0.1:9/v1", tmp_path / "cache.jsonl")
    with pytest.raises(ValueError, match="names two different rows"):
        gen.generate([ITEMS[0], RgenItem(ITEMS[0].key, "other", "joy")])


def test_parse_retry_after() -> None:
    assert parse_retry_after(None) is None
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("-1") == 0.0
    assert parse_retry_after("junk") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
