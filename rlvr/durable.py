"""Writing directories and files that survive a crash and that other users can read.

- `atomic_write_text(path, text)`: write aside, fsync, rename, fsync the directory.
- `publish_dir(tmp, final)`: make a directory written under a temporary name durable (every file
  and directory fsync'd), give it the usual permissions (`0666`/`0777` less the umask: libraries
  that write through temporary files leave `0600`, and `tempfile.mkdtemp` leaves `0700`, which a
  server running as another user cannot read), then rename it into place and fsync its parent.

This module does not decide what to write or when, and does not lock against concurrent writers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def apply_umask(root: Path) -> None:
    """Give `root` and everything under it 0666/0777 less the umask (symlinks untouched)."""
    mask = umask()
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for p in paths:
        if p.is_symlink():
            continue
        os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root`, then the directories bottom-up (so entries are durable)."""
    dirs = []
    for p in sorted(root.rglob("*")):
        if p.is_symlink():
            continue
        if p.is_dir():
            dirs.append(p)
        else:
            fsync_path(p)
    for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True) + [root]:
        fsync_path(d)


def publish_dir(tmp: Path, final: Path) -> None:
    """Durably move the finished directory `tmp` to `final` (replacing it) with umask permissions."""
    apply_umask(tmp)
    fsync_tree(tmp)
    if final.exists():
        old = final.with_name(f".old-{final.name}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_path(final.parent)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    fsync_path(tmp)
    os.replace(tmp, path)
    fsync_path(path.parent)
