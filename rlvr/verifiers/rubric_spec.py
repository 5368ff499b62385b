"""Rubrics: how they are written, read, and scored, and the deterministic checks of their items.

A rubric is a list of items, or a mapping `{items: [...], gate: [ids], passed_threshold: x}`,
inline in `problem.reference["rubric"]` or in a YAML/JSON file named there (a string path) or in
`reference["rubric_file"]`. An item is

    {id: optional name, text: "what is checked", weight: 2.5 | label: Essential, check: ...}

- `weight`, or a `label` with these default weights (a verifier option can change them):

      Essential 5    Important 3    Optional 1    Pitfall -3

  A negative weight makes a *pitfall*: its text names the bad behaviour, and "met" means the
  bad behaviour happened (HealthBench's convention), so a met pitfall subtracts its weight.
- `check` (one of):
  - absent or `judge`: a yes/no question (the item's text) for the LLM judge;
  - `{regex: PATTERN, flags: "ims"}`: met when the pattern is found (at most 1,000 characters
    of pattern, searched with a time limit: a search that times out counts *against* the
    completion, i.e. a positive item unmet, a pitfall met);
  - `{contains: TEXT | [TEXT, ...], case_sensitive: false}`: met when every text appears;
  - `{not_contains: TEXT | [TEXT, ...]}`: met when none appears;
  - `{min_chars, max_chars, min_words, max_words}` (any of them): met when within all bounds;
  - `{math_equal: ANSWER | true}`: met when the `math` verifier accepts the completion's final
    answer for ANSWER (`true`: the problem's `reference["answer"]`);
  - `{code_tests: {tests, test_format, entry_point, ...} | true}`: met when the `code`
    verifier's tests all pass (`true`: the problem's own `tests`, `test_format`, ...).

Score: reward = clip(sum(w * met) / sum(w for w > 0), 0, 1). A *gate* lists ids of deterministic
items that must come out right (a positive item met, a pitfall unmet) before anything counts:
otherwise the reward is 0. A malformed rubric is the dataset's bug: `BadReferenceError`.

This module does not talk to judges and does not decide what to do about grader-addressing text:
`rlvr.verifiers.rubric` does.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import regex

from rlvr.errors import BadReferenceError

__all__ = ["Item", "Rubric", "DEFAULT_LABEL_WEIGHTS", "parse_rubric", "rubric_of", "score",
           "run_text_check"]

DEFAULT_LABEL_WEIGHTS: Mapping[str, float] = {"essential": 5.0, "important": 3.0, "optional": 1.0,
                                              "pitfall": -3.0}
TEXT_KINDS = ("regex", "contains", "not_contains", "length")
KINDS = ("judge", *TEXT_KINDS, "math_equal", "code_tests")
MAX_PATTERN_CHARS = 1_000
MAX_ITEMS = 200
_LENGTH_KEYS = ("min_chars", "max_chars", "min_words", "max_words")
_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    weight: float
    kind: str  # one of KINDS
    spec: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    label: str | None = None

    @property
    def pitfall(self) -> bool:
        return self.weight < 0


@dataclass(frozen=True)
class Rubric:
    items: tuple[Item, ...]
    gate: tuple[str, ...] = ()
    passed_threshold: float | None = None  # None: the verifier's option

    @property
    def positive_total(self) -> float:
        return sum(i.weight for i in self.items if i.weight > 0)

    @property
    def judge_items(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.kind == "judge")


def score(weights_and_met: list[tuple[float, bool]]) -> tuple[float, float, float]:
    """(reward, raw sum of w*met, sum of positive w) for an evaluated rubric."""
    raw = sum(w for w, met in weights_and_met if met)
    positive = sum(w for w, _ in weights_and_met if w > 0)
    if positive <= 0:
        raise ValueError("a rubric needs at least one item of positive weight")
    return min(1.0, max(0.0, raw / positive)), raw, positive


# ---------------------------------------------------------------------------- reading rubrics


def _bad(problem_id: str, message: str) -> BadReferenceError:
    return BadReferenceError(f"problem {problem_id}: rubric: {message}", problem_id=problem_id,
                             verifier="rubric")


def _load_file(path: Path, problem_id: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _bad(problem_id, f"cannot read {path}: {exc}") from exc
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parse errors
        raise _bad(problem_id, f"{path} is not valid: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError does not derive from ValueError
        raise _bad(problem_id, f"{path} is not valid YAML: {exc}") from exc


def rubric_of(reference: Mapping[str, Any], problem_id: str, base_dir: str | None = None,
              label_weights: Mapping[str, float] = DEFAULT_LABEL_WEIGHTS) -> Rubric:
    """The rubric of a problem's reference (inline, or a file path), parsed and checked."""
    raw = reference.get("rubric", reference.get("rubric_file"))
    if raw is None:
        raise _bad(problem_id, "the rubric verifier needs reference['rubric'] (items or a file)")
    if isinstance(raw, str):
        path = Path(raw).expanduser()
        if not path.is_absolute() and base_dir:
            path = Path(base_dir) / path
        raw = _load_file(path, problem_id)
    try:
        canonical = json.dumps(raw, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise _bad(problem_id, f"not plain data: {exc}") from exc
    return _parse_cached(canonical, problem_id, tuple(sorted(label_weights.items())))


@functools.lru_cache(maxsize=4096)
def _parse_cached(canonical: str, problem_id: str, label_weights: tuple) -> Rubric:
    return parse_rubric(json.loads(canonical), problem_id, dict(label_weights))


def parse_rubric(raw: Any, problem_id: str = "?",
                 label_weights: Mapping[str, float] = DEFAULT_LABEL_WEIGHTS) -> Rubric:
    if isinstance(raw, Mapping):
        unknown = set(raw) - {"items", "gate", "passed_threshold"}
        if unknown:
            raise _bad(problem_id, f"unknown keys {sorted(unknown)} (items, gate, passed_threshold)")
        items_raw, gate, threshold = raw.get("items"), raw.get("gate") or [], raw.get("passed_threshold")
    else:
        items_raw, gate, threshold = raw, [], None
    if not isinstance(items_raw, list) or not items_raw or len(items_raw) > MAX_ITEMS:
        raise _bad(problem_id, f"items must be a non-empty list of at most {MAX_ITEMS}")
    items = tuple(_item(x, k, problem_id, label_weights) for k, x in enumerate(items_raw, 1))
    ids = [i.id for i in items]
    if len(set(ids)) != len(ids):
        raise _bad(problem_id, f"item ids repeat: {ids}")
    if isinstance(gate, str):
        gate = [gate]
    by_id = {i.id: i for i in items}
    for g in gate:
        if g not in by_id:
            raise _bad(problem_id, f"gate names {g!r}, which is not an item id ({ids})")
        if by_id[g].kind == "judge":
            raise _bad(problem_id, f"gate item {g!r} is a judge item; a gate must be deterministic")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0 <= threshold <= 1):
        raise _bad(problem_id, f"passed_threshold must be a number in [0, 1], not {threshold!r}")
    rubric = Rubric(items, tuple(gate), None if threshold is None else float(threshold))
    if rubric.positive_total <= 0:
        raise _bad(problem_id, "no item has a positive weight, so no answer could score")
    return rubric


def _item(raw: Any, k: int, problem_id: str, label_weights: Mapping[str, float]) -> Item:
    where = f"item {k}"
    if not isinstance(raw, Mapping):
        raise _bad(problem_id, f"{where} is not a mapping")
    unknown = set(raw) - {"id", "text", "weight", "label", "check"}
    if unknown:
        raise _bad(problem_id, f"{where}: unknown keys {sorted(unknown)}")
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        raise _bad(problem_id, f"{where} needs a non-empty 'text'")
    label = raw.get("label")
    weight = raw.get("weight")
    if label is not None:
        if not isinstance(label, str) or label.lower() not in label_weights:
            raise _bad(problem_id, f"{where}: label {label!r} is not one of "
                                   f"{', '.join(k.title() for k in label_weights)}")
        label = label.lower()
    if weight is None:
        if label is None:
            raise _bad(problem_id, f"{where} needs a 'weight' or a 'label'")
        weight = label_weights[label]
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight == 0 \
            or weight != weight or abs(weight) == float("inf"):
        raise _bad(problem_id, f"{where}: weight must be a finite non-zero number, not {weight!r}")
    if label == "pitfall" and weight > 0:
        raise _bad(problem_id, f"{where}: a Pitfall has a negative weight (met = the bad thing "
                               f"happened), not {weight}")
    kind, spec = _check(raw.get("check"), where, problem_id)
    return Item(id=str(raw.get("id") or f"item{k}"), text=text.strip(), weight=float(weight),
                kind=kind, spec=spec, label=label)


def _strings(value: Any, where: str, problem_id: str) -> list[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise _bad(problem_id, f"{where}: expected a non-empty string or list of strings")
    return values


def _check(check: Any, where: str, problem_id: str) -> tuple[str, dict[str, Any]]:
    if check is None or check == "judge":
        return "judge", {}
    if not isinstance(check, Mapping):
        raise _bad(problem_id, f"{where}: check must be 'judge' or a mapping, not {check!r}")
    keys = set(check)
    if "regex" in keys:
        pattern, flags = check["regex"], check.get("flags", "")
        if not isinstance(pattern, str) or not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise _bad(problem_id, f"{where}: regex must be a string of 1-{MAX_PATTERN_CHARS} chars")
        if not isinstance(flags, str) or set(flags) - set(_FLAGS) or keys - {"regex", "flags"}:
            raise _bad(problem_id, f"{where}: regex takes only 'flags' (of {''.join(_FLAGS)})")
        bits = 0
        for f in flags:
            bits |= _FLAGS[f]
        try:
            compiled = regex.compile(pattern, bits)
        except regex.error as exc:
            raise _bad(problem_id, f"{where}: bad regex {pattern!r}: {exc}") from exc
        return "regex", {"pattern": compiled}
    for kind in ("contains", "not_contains"):
        if kind in keys:
            if keys - {kind, "case_sensitive"}:
                raise _bad(problem_id, f"{where}: {kind} takes only 'case_sensitive'")
            return kind, {"texts": _strings(check[kind], where, problem_id),
                          "case_sensitive": bool(check.get("case_sensitive", False))}
    if keys and keys <= set(_LENGTH_KEYS):
        bounds = {k: check[k] for k in _LENGTH_KEYS if k in check}
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in bounds.values()):
            raise _bad(problem_id, f"{where}: length bounds must be non-negative integers")
        return "length", bounds
    if keys == {"math_equal"}:
        answer = check["math_equal"]
        if answer is not True and not (isinstance(answer, (str, int, float)) and str(answer).strip()):
            raise _bad(problem_id, f"{where}: math_equal is an answer or true")
        return "math_equal", {"answer": answer}
    if keys == {"code_tests"}:
        tests = check["code_tests"]
        if tests is not True and not (isinstance(tests, Mapping) and "tests" in tests):
            raise _bad(problem_id, f"{where}: code_tests is {{tests, test_format, ...}} or true")
        return "code_tests", {"reference": tests}
    raise _bad(problem_id, f"{where}: unknown check {dict(check)!r}; use judge, regex, contains, "
                           f"not_contains, {', '.join(_LENGTH_KEYS)}, math_equal or code_tests")


# ---------------------------------------------------------------------------- text checks


def run_text_check(item: Item, text: str, timeout_s: float = 0.25) -> tuple[bool, str]:
    """(met, detail) of a regex / contains / not_contains / length item on `text`."""
    spec = item.spec
    if item.kind == "regex":
        try:
            found = spec["pattern"].search(text, timeout=timeout_s)
        except TimeoutError:
            return item.pitfall, "regex timed out: counted against the completion"
        return found is not None, "found" if found else "not found"
    if item.kind in ("contains", "not_contains"):
        hay = text if spec["case_sensitive"] else text.casefold()
        present = [t for t in spec["texts"] if (t if spec["case_sensitive"] else t.casefold()) in hay]
        if item.kind == "contains":
            return len(present) == len(spec["texts"]), f"{len(present)}/{len(spec['texts'])} present"
        return not present, f"present: {present[:3]}" if present else "none present"
    if item.kind == "length":
        chars, words = len(text), len(text.split())
        ok = (chars >= spec.get("min_chars", 0) and chars <= spec.get("max_chars", chars)
              and words >= spec.get("min_words", 0) and words <= spec.get("max_words", words))
        return ok, f"{chars} chars, {words} words"
    raise ValueError(f"not a text check: {item.kind}")
