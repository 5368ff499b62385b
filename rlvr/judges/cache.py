"""A bounded, thread-safe cache of judge answers, one entry per (judge, criterion, prompt,
reference, completion).

Keys are SHA-256 digests of those five texts, so an entry costs a few hundred bytes whatever the
size of the completion, and one criterion is cached on its own: a later question that mixes
cached and new criteria asks the judge only for the new ones. Only answers are cached, never
failures (a judge that failed once is asked again next time).

It lives in one process (each verifier worker has its own) and forgets the least recently used
entries past `max_entries`. It does not persist to disk.
"""

from __future__ import annotations

import collections
import hashlib
import threading

__all__ = ["JudgeCache", "cache_key"]


def cache_key(judge: str, criterion: str, prompt: str, reference: str, completion: str) -> str:
    h = hashlib.sha256()
    for part in (judge, criterion, prompt, reference, completion):
        data = part.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))  # length-prefixed: no two splits collide
        h.update(data)
    return h.hexdigest()


class JudgeCache:
    """LRU map from `cache_key(...)` to a judge's yes/no answer."""

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max(0, int(max_entries))
        self._data: collections.OrderedDict[str, bool] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def __getstate__(self) -> dict:
        return {"max_entries": self.max_entries}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["max_entries"])

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bool | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: str, answer: bool) -> None:
        if self.max_entries == 0:
            return
        with self._lock:
            self._data[key] = bool(answer)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)
