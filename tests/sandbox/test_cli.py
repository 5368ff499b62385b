"""`rlvr sandbox build-image | doctor` through the real command-line entry point."""

import json

import pytest

from rlvr.cli import main


@pytest.mark.docker
def test_build_image_is_a_no_op_when_the_image_exists(docker_ready, capsys):
    assert main(["sandbox", "build-image"]) == 0
    assert "already present" in capsys.readouterr().out


@pytest.mark.docker
def test_doctor_reports_every_check_passing(docker_ready, capsys):
    assert main(["sandbox", "doctor", "--json"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert all(c["ok"] for c in checks.values())
    assert {"engine", "image", "runtime", "no network", "memory limit (swap off)", "pids limit",
            "landlock", "nothing left behind"} <= set(checks)


@pytest.mark.docker
def test_doctor_reports_live_restore_and_the_outage_budget(docker_ready, capsys):
    from rlvr.sandbox import engine

    assert main(["sandbox", "doctor", "--json", "--outage-budget-s", "45"]) == 0
    checks = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    live = engine.connect().info()["LiveRestoreEnabled"]
    assert checks["engine restarts (live-restore)"]["detail"].startswith("on" if live else "off")
    assert checks["outage budget"]["detail"].startswith("45 s (sandbox option outage_budget_s)")


@pytest.mark.docker
def test_doctor_names_the_fix_for_a_missing_image(docker_ready, capsys):
    assert main(["sandbox", "doctor", "--image", "rlvr-no-such-image:0"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  image" in out and "build-image" in out


def test_missing_engine_is_an_error_with_the_fix(tmp_path, capsys):
    url = f"unix://{tmp_path}/none.sock"
    assert main(["sandbox", "build-image", "--docker-host", url]) == 1
    assert "start the Docker engine" in capsys.readouterr().err
    assert main(["sandbox", "doctor", "--docker-host", url]) == 1



def test_doctor_reports_the_landlock_abi_programs_are_confined_with():
    from rlvr.sandbox.doctor import _landlock

    assert _landlock({"landlock": 7}).ok and "signals scoped" in _landlock({"landlock": 7}).detail
    assert _landlock({"landlock": 3}).ok and "not scoped" in _landlock({"landlock": 3}).detail
    assert not _landlock({"landlock": 0}).ok and not _landlock({}).ok
