"""Build the default sandbox image offline: a Debian rootfs made by `debootstrap`, imported.

`build_image()` is what `rlvr sandbox build-image` runs. It needs no image registry, only a Debian
package mirror (default `http://deb.debian.org/debian`, or a local one) and `debootstrap`, run as
root. The result is a minimal Debian (`--variant=minbase`) with `python3` and an empty `/sandbox`
mount point, about 260 MB, imported into the engine as `rlvr-sandbox:bookworm`. It is idempotent:
when the image exists nothing happens unless `force=True`.

Users with a registry can skip this and name any image with `python3` on its PATH in the config
(`sandbox_options: {image: ...}`). This module does not start containers or check the policy
(`rlvr.sandbox.doctor` does).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

from rlvr.errors import SandboxError
from rlvr.sandbox import engine

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
_STAGES = ("Retrieving", "Validating", "Extracting", "Unpacking", "Configuring")

Progress = Callable[[str, str], None]  # (stage, detail)


def image_exists(api, image: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        api.inspect_image(image)
    except ImageNotFound:
        return False
    return True


def _check_tools() -> None:
    if shutil.which("debootstrap") is None:
        raise SandboxError("building the sandbox image needs debootstrap: apt-get install "
                           "debootstrap (or name a ready image in the sandbox options)")
    if shutil.which("tar") is None:
        raise SandboxError("building the sandbox image needs tar")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap must run as root: run 'sudo rlvr sandbox build-image'")


def _debootstrap(rootfs: Path, suite: str, mirror: str, progress: Progress) -> None:
    command = ["debootstrap", "--variant=minbase", "--include=python3", suite, str(rootfs), mirror]
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            tail = (tail + [line])[-20:]
            words = line.split()
            if len(words) >= 2 and words[0] == "I:" and words[1] in _STAGES:
                progress(words[1].lower(), " ".join(words[2:]))
    if proc.returncode != 0:
        raise SandboxError(f"debootstrap failed (exit {proc.returncode}); last output:\n" +
                           "\n".join(tail))


def _trim(rootfs: Path) -> None:
    """Remove package caches; add the work dir mount point."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log"):
        for path in rootfs.glob(pattern):
            if path.is_file():
                path.unlink()
    (rootfs / "sandbox").mkdir(exist_ok=True)


def _import(api, rootfs: Path, image: str) -> None:
    repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "latest")
    changes = ["ENV LANG=C.UTF-8", "WORKDIR /sandbox", "USER 65534:65534",
               "LABEL rlvr.sandbox.image=1", 'CMD ["python3"]']
    with subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                          stdout=subprocess.PIPE) as tar:
        try:
            api.import_image(src=tar.stdout, repository=repository, tag=tag, changes=changes,
                             stream_src=True)
        except engine.engine_errors() as exc:
            tar.kill()
            raise SandboxError(f"importing the rootfs into the Docker engine failed: {exc}") from exc
    if tar.returncode != 0:
        raise SandboxError(f"tar of the rootfs failed (exit {tar.returncode})")


def build_image(image: str = engine.DEFAULT_IMAGE, suite: str = DEFAULT_SUITE,
                mirror: str = DEFAULT_MIRROR, force: bool = False, base_url: str | None = None,
                progress: Progress | None = None) -> bool:
    """Build `image`; False (and nothing done) when it already exists and not `force`."""
    report = progress or (lambda stage, detail: None)
    api = engine.connect(base_url)
    if image_exists(api, image) and not force:
        return False
    _check_tools()
    workdir = Path(tempfile.mkdtemp(prefix="rlvr-rootfs-"))
    try:
        rootfs = workdir / "rootfs"
        report("debootstrap", f"{suite} from {mirror}")
        _debootstrap(rootfs, suite, mirror, report)
        _trim(rootfs)
        report("import", image)
        _import(api, rootfs, image)
    finally:
        report("cleanup", str(workdir))
        shutil.rmtree(workdir, ignore_errors=True)
    if not image_exists(api, image):
        raise SandboxError(f"the engine did not keep the imported image {image!r}")
    return True
