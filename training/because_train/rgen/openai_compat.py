"""The `openai` R-Gen backend: any OpenAI-compatible chat-completions server (vLLM, llama.cpp, Ollama).

For each (text, gold emotion) pair it asks the server for a one or two sentence rationale that quotes
the text and names the emotion. Requests run on a bounded thread pool and are retried with
exponential backoff and jitter on connection errors, 429 and 5xx (honouring Retry-After); any other
4xx stops the run at once with the server's message. Every finished row is appended to a JSONL cache
and flushed immediately, so a run that is killed midway resumes without asking for those rows again.
Only the standard library is used for HTTP.
"""

import hashlib
import http.client
import json
import logging
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

from because_train.config import OpenAIConfig
from because_train.console import Progress
from because_train.data import DataError
from because_train.rgen import RgenItem

log = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You explain why a short text expresses an emotion. Reply with one or two sentences that quote the "
    "text's own words and name the given emotion. Write only the rationale, on one line."
)
MAX_RETRY_AFTER_S = 600.0
THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)  # reasoning models' hidden thoughts


def user_prompt(text: str, label: str) -> str:
    return f'Text: "{text}"\nEmotion: {label}\nWhy does this text express {label}?'


def fallback_reasoning(label: str) -> str:
    return f"The words of the text suggest {label}."


def clean_reply(content: str) -> str:
    return " ".join(THINK.sub(" ", content).split())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or None if absent or invalid."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class OpenAIError(RuntimeError):
    """The server refused a request, or kept failing after every retry; the message says which."""


class OpenAIReasoningGenerator:
    def __init__(
        self,
        cfg: OpenAIConfig,
        seed: int,
        cache_path: Path,
        *,
        backoff_s: float = 1.0,  # first retry waits about this long, doubling each time
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        progress: bool = True,
    ) -> None:
        self.cfg, self.seed, self.cache_path = cfg, seed, Path(cache_path)
        self.backoff_s, self.max_backoff_s, self._sleep, self.progress = (
            backoff_s,
            max_backoff_s,
            sleep,
            progress,
        )
        self.name = f"openai:{cfg.model}"
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self.stats: dict[str, int] = {
            "requested": 0,
            "cached": 0,
            "stale": 0,
            "retries": 0,
            "fallback": 0,
            "truncated": 0,
        }
        self._lock = threading.Lock()
        self._stop = threading.Event()

    # ---- requests ----

    def payload(self, item: RgenItem) -> dict[str, Any]:
        return {
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": user_prompt(item.text, item.label)},
            ],
            "temperature": 0,
            "seed": self.seed,
            "max_tokens": self.cfg.max_tokens,
        }

    @staticmethod
    def request_id(payload: dict[str, Any]) -> str:
        """Identifies what was asked: a cached row is reused only for the same request."""
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _count(self, stat: str, n: int = 1) -> None:
        with self._lock:
            self.stats[stat] += n

    def complete(self, payload: dict[str, Any]) -> str:
        """The server's reply for one request, retried on connection errors, 429 and 5xx."""
        body = json.dumps(payload).encode()
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            if self._stop.is_set():
                raise OpenAIError("stopped: another request failed")
            request = urllib.request.Request(self.url, data=body, headers=self._headers(), method="POST")
            retry_after: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
                    return self._parse(response.read())
            except urllib.error.HTTPError as e:
                detail = e.read(500).decode("utf-8", "replace").strip()
                if e.code != 429 and not 500 <= e.code < 600:
                    raise OpenAIError(
                        f"POST {self.url} returned HTTP {e.code} {e.reason}: {detail} "
                        "(a client error, not retried: check base_url, model and the API key)"
                    ) from None
                problem = f"HTTP {e.code} {e.reason}: {detail}"
                retry_after = parse_retry_after(e.headers.get("Retry-After"))
            except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut short
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                problem = f"{type(e).__name__}: {reason}"
            if attempt + 1 == attempts:
                raise OpenAIError(f"POST {self.url} failed {attempts} times; last: {problem}")
            if retry_after is None:
                retry_after = min(self.max_backoff_s, self.backoff_s * 2**attempt) * random.uniform(0.5, 1.0)
            self._count("retries")
            self._sleep(retry_after)
        raise AssertionError("unreachable")

    def _parse(self, raw: bytes) -> str:
        try:
            choice = json.loads(raw)["choices"][0]
            content = choice["message"]["content"] or ""
        except (ValueError, KeyError, IndexError, TypeError):
            snippet = raw[:300].decode("utf-8", "replace")
            raise OpenAIError(f"POST {self.url}: not a chat completion: {snippet}") from None
        if choice.get("finish_reason") == "length":
            self._count("truncated")
        return clean_reply(content)

    # ---- the resumable cache ----

    def load_cache(self) -> dict[str, tuple[str, str]]:
        """key -> (request id, reasoning); the last record of a key wins. A line cut off by a kill
        (the file's last, without a newline) is removed; any other bad line is an error."""
        if not self.cache_path.is_file():
            return {}
        data = self.cache_path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            with open(self.cache_path, "r+b") as f:
                f.truncate(complete)
        cache: dict[str, tuple[str, str]] = {}
        for lineno, line in enumerate(data[:complete].splitlines(), start=1):
            where = f"{self.cache_path}:{lineno}"
            try:
                record = json.loads(line)
                cache[record["key"]] = (record.get("request", ""), record["reasoning"])
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{where}: bad cache record ({type(e).__name__}: {e})") from None
        return cache

    # ---- the interface ----

    def generate(self, items: Sequence[RgenItem]) -> list[str]:
        """One rationale per item, in order; rows already in the cache are not requested again."""
        by_key: dict[str, RgenItem] = {}
        for it in items:
            if by_key.setdefault(it.key, it) != it:
                raise ValueError(f"rgen openai: key {it.key!r} names two different rows")
        cache = self.load_cache()
        done: dict[str, str] = {}
        todo: list[tuple[RgenItem, dict[str, Any], str]] = []
        for key, it in by_key.items():
            payload = self.payload(it)
            rid = self.request_id(payload)
            hit = cache.get(key)
            if hit is not None and hit[0] == rid:
                done[key] = hit[1]
            else:
                self.stats["stale"] += hit is not None
                todo.append((it, payload, rid))
        self.stats["cached"] += len(done)
        if todo:
            self._request_all(todo, done)
        return [done[it.key] for it in items]

    def _request_all(self, todo: list[tuple[RgenItem, dict[str, Any], str]], done: dict[str, str]) -> None:
        self._stop.clear()
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        t0 = last = time.perf_counter()
        with (
            open(self.cache_path, "a", encoding="utf-8") as cache,
            ThreadPoolExecutor(self.cfg.concurrency) as pool,
            Progress(log, "rgen-openai", len(todo), unit="row", enabled=self.progress) as meter,
        ):
            pending: dict[Future[str], tuple[RgenItem, str]] = {
                pool.submit(self.complete, payload): (it, rid) for it, payload, rid in todo
            }
            try:
                for n, future in enumerate(as_completed(pending), start=1):
                    it, rid = pending.pop(future)
                    text = future.result()  # the first failure stops the run
                    if not text:
                        self.stats["fallback"] += 1
                        text = fallback_reasoning(it.label)
                    record = {"key": it.key, "reasoning": text, "request": rid}
                    cache.write(json.dumps(record, ensure_ascii=False) + "\n")
                    cache.flush()
                    done[it.key] = text
                    self.stats["requested"] += 1
                    meter.update(n, f"{self.stats['retries']} retries")
                    now = time.perf_counter()
                    if now - last > 5.0 or n == len(todo):
                        last = now
                        meter.line(
                            f"rgen-openai: {n}/{len(todo)} rows {n / max(now - t0, 1e-9):.1f} rows/s, "
                            f"{self.stats['retries']} retries, {self.stats['cached']} cached"
                        )
            except BaseException:
                self._stop.set()  # running requests give up at their next attempt
                for future in pending:
                    future.cancel()
                raise
