"""`OpenAIJudge`: rubric questions to any OpenAI-compatible chat-completions server over HTTP.

Works with the OpenAI API, vLLM's `vllm serve`, llama.cpp's server, SGLang, and anything else
that answers `POST {base_url}/chat/completions`. One `judge()` is one request that asks all its
criteria (see `rlvr.judges.base` for the prompt and the strict reply parser).

Failure handling (every path ends in an answer or a `JudgeError`, never in a "no"):
- 429: wait `Retry-After` (seconds or an HTTP date; else exponential back-off with jitter), retry;
- 408, 5xx, connection refused/reset, connect or read timeout: back-off, retry;
- other 4xx (bad key, unknown model): `JudgeError` at once (retrying cannot help);
- a body that is not the chat-completions JSON, an empty or truncated (`finish_reason:
  length`) message, a `refusal`, or a reply the strict parser rejects: `JudgeError`, not retried
  (a deterministic judge would say the same again; the sample is masked and counted);
- every retry and wait stays inside `deadline_s` for the whole call: a wait that would pass it
  is not started.
At most `max_concurrency` requests are in flight from one judge object (threads may call
`judge()` concurrently; the HTTP client and its connection pool are shared). The API key is read
from the environment variable `api_key_env` at first use, never stored in options or logs.

Needs `httpx` (`pip install 'rlvr[judge]'`). This module does not cache or batch across
completions: the rubric verifier does.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import os
import random
import threading
import time
from typing import Any, Mapping

from rlvr.errors import ConfigError, JudgeError
from rlvr.judges.base import PROMPT_VERSION, JudgeQuestion, parse_verdicts, render_messages

__all__ = ["OpenAIJudge"]

log = logging.getLogger("rlvr.judges")
INSTALL_HINT = "pip install 'rlvr[judge]'  (or: pip install httpx)"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


class OpenAIJudge:
    """A judge behind an OpenAI-compatible `/chat/completions` endpoint (see module docstring)."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000/v1", model: str = "default",
                 api_key_env: str | None = "OPENAI_API_KEY", timeout_s: float = 30.0,
                 connect_timeout_s: float = 5.0, deadline_s: float = 60.0, max_retries: int = 4,
                 backoff_s: float = 0.5, max_backoff_s: float = 20.0, max_concurrency: int = 64,
                 temperature: float = 0.0, max_tokens: int = 256,
                 extra_body: Mapping[str, Any] | None = None):
        if timeout_s <= 0 or connect_timeout_s <= 0 or deadline_s <= 0:
            raise ConfigError("openai judge: timeout_s, connect_timeout_s, deadline_s must be > 0")
        if max_retries < 0 or max_concurrency < 1 or backoff_s < 0:
            raise ConfigError("openai judge: max_retries >= 0, max_concurrency >= 1, backoff_s >= 0")
        self.base_url = base_url.rstrip("/")
        self.model, self.api_key_env = model, api_key_env
        self.timeout_s, self.connect_timeout_s, self.deadline_s = timeout_s, connect_timeout_s, deadline_s
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.max_concurrency, self.temperature, self.max_tokens = max_concurrency, temperature, max_tokens
        self.extra_body = dict(extra_body or {})
        self.identity = f"openai:{self.base_url}:{model}:t={temperature}:{PROMPT_VERSION}"
        self.stats: collections.Counter = collections.Counter()
        self._client: Any = None
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:  # the client and locks are rebuilt in each process
        state = dict(self.__dict__)
        state.update(_client=None, _slots=None, _lock=None, stats=collections.Counter())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._lock = threading.Lock()

    # ---- lifecycle --------------------------------------------------------------------------

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import httpx
                except ImportError as exc:
                    raise ConfigError(f"the openai judge needs httpx: {INSTALL_HINT}") from exc
                headers = {"Content-Type": "application/json"}
                key = os.environ.get(self.api_key_env) if self.api_key_env else None
                if key:
                    headers["Authorization"] = f"Bearer {key}"
                limits = httpx.Limits(max_connections=self.max_concurrency,
                                      max_keepalive_connections=self.max_concurrency)
                timeout = httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s, pool=None)
                self._client = httpx.Client(headers=headers, limits=limits, timeout=timeout)
            return self._client

    def warmup(self) -> None:
        self._http()

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> "OpenAIJudge":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- the protocol -----------------------------------------------------------------------

    def judge(self, question: JudgeQuestion) -> tuple[bool, ...]:
        body = {"model": self.model, "messages": render_messages(question),
                "temperature": self.temperature, "max_tokens": self.max_tokens, **self.extra_body}
        reply = self._complete(body)
        try:
            answers = parse_verdicts(reply, len(question.criteria), self.identity)
        except JudgeError as exc:
            self._count(f"failed_{exc.reason}")
            raise
        self._count("answers")
        return answers

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    # ---- HTTP with retries ------------------------------------------------------------------

    def _fail(self, reason: str, message: str) -> JudgeError:
        self._count(f"failed_{reason}")
        return JudgeError(f"judge {self.identity}: {message}", judge=self.identity, reason=reason)

    def _complete(self, body: dict[str, Any]) -> str | None:
        """The assistant message of one chat completion, retried as the module docstring says."""
        import httpx

        client, url = self._http(), f"{self.base_url}/chat/completions"
        deadline = time.monotonic() + self.deadline_s
        for attempt in range(self.max_retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                raise self._fail("timeout", f"no answer within deadline_s={self.deadline_s}")
            self._count("requests")
            try:
                with self._slots:
                    response = client.post(url, json=body, timeout=httpx.Timeout(
                        min(self.timeout_s, left), connect=min(self.connect_timeout_s, left),
                        pool=None))
            except httpx.TimeoutException as exc:
                reason, why, wait = "timeout", f"{type(exc).__name__}", None
            except httpx.TransportError as exc:  # refused, reset, DNS, protocol errors
                reason, why, wait = "connection", f"{type(exc).__name__}: {exc}", None
            else:
                if response.status_code == 200:
                    return self._message(response)
                reason, why = "http_status", f"HTTP {response.status_code}: {response.text[:200]!r}"
                if response.status_code not in _RETRY_STATUS:
                    raise self._fail(reason, why)
                wait = _retry_after_s(response.headers.get("retry-after"))
            self._count(f"retry_{reason}")
            if attempt == self.max_retries:
                raise self._fail(reason, f"{why} (after {attempt + 1} attempts)")
            pause = self._backoff(attempt) if wait is None else min(wait, self.max_backoff_s)
            if time.monotonic() + pause >= deadline:
                raise self._fail(reason, f"{why}; a retry in {pause:.1f}s would pass deadline_s")
            log.info("judge %s: %s; retrying in %.2fs", self.identity, why, pause)
            time.sleep(pause)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)

    def _message(self, response: Any) -> str | None:
        try:
            payload = response.json()
            choice = payload["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise self._fail("malformed", f"not a chat-completions body ({type(exc).__name__}): "
                                          f"{response.text[:200]!r}") from None
        if not isinstance(message, dict):
            raise self._fail("malformed", "choices[0].message is not an object")
        if message.get("refusal"):
            raise self._fail("refusal", f"refused: {str(message['refusal'])[:200]!r}")
        if choice.get("finish_reason") == "length":
            raise self._fail("truncated", f"reply cut at max_tokens={self.max_tokens}")
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise self._fail("malformed", "message content is not text")
        return content


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
