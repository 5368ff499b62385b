"""Seeded, disjoint train/test splits for procedural and file-backed tasks.

Procedural tasks draw problems from a seeded generator and keep the first `test_size` *distinct*
ones (by a key such as the numbers and target of a countdown puzzle) for "test"; everything drawn
after that with a key already in "test" is dropped, so the splits never share a problem. File tasks
either get two files (and rows of "train" whose prompt also appears in "test" are dropped) or one
file that is shuffled with the seed and cut.

This module does not build prompts and does not know any task's format.
"""

from __future__ import annotations

import random
from typing import Callable, Hashable, Sequence, TypeVar

from rlvr.errors import ConfigError

T = TypeVar("T")


def check_sizes(task: str, test_size: int, train_size: int) -> None:
    if not isinstance(test_size, int) or not isinstance(train_size, int) or test_size < 1 \
            or train_size < 0:
        raise ConfigError(f"{task}: test_size must be a positive integer and train_size a "
                          f"non-negative one (got {test_size!r}, {train_size!r})")


def draw_distinct(task: str, draw: Callable[[random.Random], T], key: Callable[[T], Hashable],
                  count: int, seed: int | str, max_tries: int | None = None) -> list[T]:
    """`count` items of distinct `key`, in the order a generator seeded with `seed` drew them.

    Raises `ConfigError` when the generator's space is too small to give `count` distinct items
    within `max_tries` draws (default 20 per item).
    """
    rng = random.Random(f"{task}-{seed}")
    seen: dict[Hashable, T] = {}
    tries = max_tries if max_tries is not None else 20 * count + 1000
    for _ in range(tries):
        if len(seen) >= count:
            break
        item = draw(rng)
        seen.setdefault(key(item), item)
    if len(seen) < count:
        raise ConfigError(f"{task}: could only draw {len(seen)} distinct problems of the "
                          f"{count} asked for (test_size + train_size); ask for fewer or widen "
                          "the options")
    return list(seen.values())


def cut(items: Sequence[T], test_size: int) -> dict[str, list[T]]:
    """The first `test_size` items are "test", the rest "train"."""
    return {"test": list(items[:test_size]), "train": list(items[test_size:])}


def shuffle_and_cut(task: str, items: Sequence[T], test_size: int, seed: int) -> dict[str, list[T]]:
    """A seeded shuffle of `items`, then `cut`; at least one item must be left for "train"."""
    if test_size >= len(items):
        raise ConfigError(f"{task}: test_size {test_size} leaves nothing to train on "
                          f"({len(items)} problems); give a smaller test_size or a test file")
    order = list(items)
    random.Random(f"{task}-split-{seed}").shuffle(order)
    return cut(order, test_size)
