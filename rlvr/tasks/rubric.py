"""Rubric tasks: problems scored by the `rubric` verifier, from JSONL files or a built-in set.

**File format** (`data_files`: one path, or `{train: path, test: path}`; JSON Lines or Parquet):

    {"id": "q1", "prompt": "Explain why the sky is blue.",
     "rubric": [{"text": "Mentions Rayleigh scattering", "label": "Essential"},
                {"text": "Under 150 words", "label": "Optional", "check": {"max_words": 150}},
                {"text": "Claims the sky reflects the ocean", "label": "Pitfall"}],
     "answer": "optional reference answer, shown to the judge"}

`prompt` is text or a list of chat messages; `rubric` is a list of items, a mapping with `items`
(and optionally `gate`, `passed_threshold`), or a path to a YAML/JSON rubric file relative to the
data file. Each row's rubric is parsed while loading: a malformed one is a malformed row (named by
file and line, skipped or raised by `on_error`). See `rlvr.verifiers.rubric_spec` for items.

**Built-in set** (no `data_files`): "Write one sentence about TOPIC that uses the word WORD",
over 24 topics x 24 words, split with `seed`. Its rubric mixes deterministic items (the word is
used; one sentence; at most 25 words; no refusal or "as an AI" pitfall) with one judge item (the
sentence is about the topic; the item quotes the word that names the topic, e.g. `(it mentions
'ocean')`, so the scripted keyword judge of rlvr's tests and benchmarks can decide it as well as
an LLM judge can); `judge_items=False` leaves the judge item out (a rubric that needs
no judge, e.g. for a held-out check or a machine without one).

This module does not score anything: the rubric verifier does.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Mapping, Sequence

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.base import check_split
from rlvr.tasks.files import field, load_file
from rlvr.tasks.prompting import PromptStyle
from rlvr.tasks.splits import shuffle_and_cut
from rlvr.types import Problem

__all__ = ["RubricTask", "builtin_rubric"]

# each topic with the word that names it: the judge item quotes it ("... (it mentions 'ocean')"),
# so a scripted keyword judge can decide the item as well as an LLM judge can
TOPIC_KEYWORDS = {"the ocean": "ocean", "winter": "winter", "a city at night": "city", "bread": "bread",
                  "mountains": "mountain", "a bookshop": "book", "rain": "rain", "the moon": "moon",
                  "a garden": "garden", "trains": "train", "coffee": "coffee", "a forest": "forest",
                  "music": "music", "the desert": "desert", "bicycles": "bicycle", "a market": "market",
                  "snow": "snow", "the river": "river", "birds": "bird", "a kitchen": "kitchen",
                  "the stars": "star", "autumn": "autumn", "a bridge": "bridge",
                  "the sea shore": "shore"}
TOPICS = tuple(TOPIC_KEYWORDS)
WORDS = ("quiet", "golden", "ancient", "bright", "gentle", "heavy", "silver", "warm", "hidden",
         "crowded", "slow", "fresh", "empty", "wild", "soft", "narrow", "endless", "careful",
         "broken", "simple", "distant", "sudden", "humble", "patient")
_REFUSAL = r"(?i)\b(?:as an ai|i'?m sorry|i cannot|i can'?t help|language model)\b"


def builtin_rubric(topic: str, word: str, judge_items: bool = True) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        {"id": "word", "text": f"Uses the word '{word}'", "label": "Essential",
         "check": {"regex": rf"(?i)\b{word}\b"}},
        {"id": "one_sentence", "text": "Is a single sentence", "label": "Important",
         "check": {"regex": r"^[^.!?]+[.!?][\s\"')]*$"}},
        {"id": "short", "text": "At most 25 words", "label": "Important",
         "check": {"min_words": 3, "max_words": 25}},
        {"id": "refusal", "text": "Refuses or talks about being an AI", "label": "Pitfall",
         "check": {"regex": _REFUSAL}},
    ]
    if judge_items:
        keyword = TOPIC_KEYWORDS.get(topic, topic)
        items.append({"id": "on_topic", "text": f"The sentence is about {topic} (it mentions "
                                                f"'{keyword}')", "label": "Important"})
    return {"items": items, "passed_threshold": 0.75}


class RubricTask:
    """Rubric problems from `data_files`, or the built-in set (see the module docstring)."""

    name = "rubric"

    def __init__(self, data_files: str | Mapping[str, str] | None = None, test_size: int = 48,
                 seed: int = 0, verifier: str = "rubric", judge_items: bool = True,
                 prompt: Mapping[str, Any] | None = None, on_error: str = "skip",
                 max_bad_fraction: float = 0.1):
        self.verifier, self.judge_items = verifier, judge_items
        self.style = PromptStyle.from_options(prompt, answer_format="none", task=self.name)
        self.skipped: list[DataError] = []
        if data_files is None:
            self._splits = self._builtin(test_size, seed)
            return
        opts = {"on_error": on_error, "max_bad_fraction": max_bad_fraction, "skipped": self.skipped}
        if isinstance(data_files, (str, Path)):
            rows = load_file(data_files, self._row_reader(data_files), **opts)
            self._splits = shuffle_and_cut(self.name, rows, test_size, seed)
        elif isinstance(data_files, Mapping) and data_files and set(data_files) <= {"train", "test"}:
            self._splits = {s: load_file(p, self._row_reader(p), **opts) for s, p in data_files.items()}
        else:
            raise ConfigError(f"rubric: data_files must be a path or a mapping with 'train' and/or "
                              f"'test', not {data_files!r}")

    def _builtin(self, test_size: int, seed: int) -> dict[str, list[Problem]]:
        pairs = [(t, w) for t in TOPICS for w in WORDS]
        if not 1 <= test_size < len(pairs):
            raise ConfigError(f"rubric: test_size must be in [1, {len(pairs) - 1}]")
        random.Random(f"rubric-{seed}").shuffle(pairs)
        problems = [Problem(id=f"rubric-{t.replace(' ', '_')}-{w}",
                            prompt=self.style.render(f"Write one sentence about {t} that uses the "
                                                     f"word \"{w}\"."),
                            verifier=self.verifier,
                            reference={"rubric": builtin_rubric(t, w, self.judge_items)})
                    for t, w in pairs]
        return {"test": problems[:test_size], "train": problems[test_size:]}

    def _row_reader(self, path: str | Path):
        base = Path(path).expanduser().resolve().parent

        def convert(row: dict[str, Any], where: str) -> Problem:
            from rlvr.errors import BadReferenceError
            from rlvr.verifiers.rubric_spec import rubric_of

            prompt = row.get("prompt")
            if isinstance(prompt, list):
                if not prompt or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                         for m in prompt):
                    raise DataError(f"{where}: 'prompt' messages need a 'content' string each")
                rendered: Any = tuple({"role": str(m.get("role", "user")), "content": m["content"]}
                                      for m in prompt)
            else:
                rendered = self.style.render(field(row, "prompt", where))
            rubric = row.get("rubric")
            if isinstance(rubric, str):
                rubric = str(base / Path(rubric).expanduser())
            reference: dict[str, Any] = {"rubric": rubric}
            if row.get("answer") is not None:
                reference["answer"] = str(row["answer"])
            pid = str(row["id"]) if row.get("id") is not None else f"rubric-{Path(where).name}"
            try:
                rubric_of(reference, pid)
            except BadReferenceError as exc:
                raise DataError(f"{where}: {exc}") from exc
            return Problem(id=pid, prompt=rendered, verifier=self.verifier, reference=reference)

        return convert

    def problems(self, split: str) -> Sequence[Problem]:
        check_split(split)
        if split not in self._splits:
            raise ConfigError(f"rubric: no {split!r} file was given in data_files")
        return self._splits[split]
