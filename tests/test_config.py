import pytest

from rlvr.config import Config, build_config, describe, parse_overrides
from rlvr.errors import ConfigError


def test_defaults_are_the_embedded_default_run():
    c = build_config()
    assert c.model.name == "smollm2-135m" and c.task.name == "arithmetic"
    assert c.task.options == {} and c.task.verifier_options == {}


def test_yaml_then_overrides_win_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("steps: 7\ngrpo:\n  beta: 0.1\ntask:\n  options: {level: 2}\n")
    c = build_config(f, ["--grpo.beta=0.04", "--rollout.group_size", "4", "--task.options.test_size=5"])
    assert (c.steps, c.grpo.beta, c.rollout.group_size) == (7, 0.04, 4)
    assert c.task.options == {"level": 2, "test_size": 5}
    assert isinstance(c.grpo.beta, float)


@pytest.mark.parametrize("args,needle", [
    (["--grpo.betta=1"], "grpo.betta"),
    (["--steps=abc"], "steps"),
    (["--grpo.loss_agg=sum"], "grpo.loss_agg"),
    (["--model.lora.r=2.5"], "model.lora.r"),
    (["--rollout.group_size=1"], "group_size"),
    (["--model=3"], "model"),
    (["steps=3"], "--section.key=value"),
])
def test_bad_keys_and_types_are_errors_naming_the_key(args, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        build_config(overrides=args)


def test_missing_and_malformed_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(bad)


def test_override_values_are_read_as_yaml():
    assert parse_overrides(["--a.b=[1, 2]", "--c=true", "--d=x"]) == {"a": {"b": [1, 2]}, "c": True, "d": "x"}


def test_every_key_is_documented():
    lines = describe(Config)
    assert any("--grpo.clip_high=0.28" in line for line in lines)
    undocumented = [line for line in lines if "  " not in line.strip()]
    assert not undocumented
