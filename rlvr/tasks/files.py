"""Reading rows of local data files, with malformed rows named by file and line.

Formats: JSON Lines (`.jsonl`, `.jsonl.gz`, and `.json` holding one object per line) and Parquet
(`.parquet`, read through `datasets`). JSON Lines are read one line at a time with the standard
`json` parser, so that a broken line is reported as `file:line` and the lines around it are kept
(`datasets`' JSON builder rejects a whole file for one bad line and cannot say which). A Parquet
row is named by its 1-based row number.

Error policy (the `on_error` option of every file task):
- `"skip"` (default): a malformed row is left out with a `DataWarning` that names file and line,
  and the task keeps the list in `.skipped`. If more than `max_bad_fraction` of a file's rows are
  malformed, that is not a stray row but a wrong format or column mapping: `DataError`.
- `"raise"`: the first malformed row raises its `DataError`.

This module does not download anything and does not know what a row means: the loaders do.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from rlvr.errors import ConfigError, DataError

T = TypeVar("T")
ON_ERROR = ("skip", "raise")


class DataWarning(UserWarning):
    """A malformed row was skipped (the message names file and line)."""


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | DataError]]:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
            for lineno, line in enumerate(f, 1):
                where = f"{path}:{lineno}"
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield where, DataError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
                    continue
                if not isinstance(row, dict):
                    yield where, DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
                    continue
                yield where, row
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from exc


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any] | DataError]]:
    import datasets
    import pyarrow

    try:
        table = datasets.Dataset.from_parquet(str(path), keep_in_memory=True)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from exc
    for i, row in enumerate(table, 1):
        yield f"{path}:row {i}", dict(row)


def iter_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any] | DataError]]:
    """(location, row or the DataError of that row) for every row of a local file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")):
        return _jsonl_rows(path)
    if name.endswith(".parquet"):
        return _parquet_rows(path)
    raise DataError(f"{path}: unsupported file type; use .jsonl, .jsonl.gz or .parquet")


def load_file(path: str | Path, convert: Callable[[dict[str, Any], str], T], *,
              on_error: str = "skip", max_bad_fraction: float = 0.1,
              skipped: list[DataError] | None = None) -> list[T]:
    """Convert every row of `path` with `convert(row, location)`, which raises `DataError` for a
    malformed row; apply the error policy of the module docstring."""
    if on_error not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}, not {on_error!r}")
    out: list[T] = []
    bad: list[DataError] = []
    for where, row in iter_rows(path):
        try:
            if isinstance(row, DataError):
                raise row
            out.append(convert(row, where))
        except DataError as exc:
            if on_error == "raise":
                raise
            bad.append(exc)
            warnings.warn(str(exc), DataWarning, stacklevel=2)
    total = len(out) + len(bad)
    if total == 0:
        raise DataError(f"{path}: no rows")
    if len(bad) > max_bad_fraction * total:
        raise DataError(f"{path}: {len(bad)} of {total} rows are malformed (more than "
                        f"{max_bad_fraction:.0%}); wrong format or column mapping? First: {bad[0]}")
    if skipped is not None:
        skipped.extend(bad)
    return out


def field(row: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = str) -> Any:
    """`row[key]`, which must exist, be of `kind` and (for text) not be blank; else `DataError`."""
    if key not in row or row[key] is None:
        raise DataError(f"{where}: missing field {key!r} (has: {', '.join(sorted(row)) or 'none'})")
    value = row[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise DataError(f"{where}: field {key!r} should be {names}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value
