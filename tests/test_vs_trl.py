"""benchmarks/vs_trl.py's TRL venv: it sees the packages of the interpreter that runs the benchmark,
also where that interpreter is itself a venv (as a GPU image's torch often is), and a venv that
does not is refused before any trainer runs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vs_trl.py"


def _vs_trl():
    spec = importlib.util.spec_from_file_location("vs_trl", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _venv(python: str, path: Path, *flags: str) -> Path:
    """A venv without pip (fast, offline) made by `python`; its interpreter."""
    subprocess.run([python, "-m", "venv", "--without-pip", *flags, str(path)], check=True)
    return path / "bin" / "python"


def _purelib(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def test_the_trl_venv_sees_the_packages_of_a_venv_that_runs_the_benchmark(tmp_path):
    parent = _venv(sys.executable, tmp_path / "parent", "--system-site-packages")
    site = _purelib(parent)
    (site / "rlvr_marker_installed.py").write_text("")
    editable = tmp_path / "editable"  # a package the parent reaches through a .pth of its own
    editable.mkdir()
    (editable / "rlvr_marker_editable.py").write_text("")
    (site / "marker_editable.pth").write_text(f"{editable}\n")
    child = tmp_path / "trl-venv"
    _venv(str(parent), child, "--system-site-packages")  # as an earlier run of the benchmark left it

    made = subprocess.run([str(parent), "-c", "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
                           "import vs_trl; print(vs_trl.make_venv(Path(sys.argv[2])))", str(SCRIPT.parent), str(child)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    python = made.stdout.strip()
    seen = subprocess.run([python, "-c", "import rlvr_marker_installed, rlvr_marker_editable, sys; "
                           "print(sys.path.index(sys.argv[1]) < sys.path.index(sys.argv[2]))",
                           str(_purelib(Path(python))), str(site)], capture_output=True, text=True)
    assert seen.returncode == 0, seen.stderr
    assert seen.stdout.strip() == "True"  # the TRL venv's own packages (TRL, datasets) come first


def test_a_venv_that_would_run_trl_on_other_packages_is_refused(tmp_path):
    vs_trl = _vs_trl()
    python = _venv(sys.executable, tmp_path / "bare")  # no system site: no torch there
    with pytest.raises(vs_trl.BenchError, match="imports torch from nowhere"):
        vs_trl.same_packages(python)
    vs_trl.same_packages(Path(sys.executable))  # this interpreter against itself: no error
