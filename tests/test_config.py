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


# ---------------------------------------------------------------- the reward: section


def test_reward_section_defaults_to_no_reward_model():
    c = build_config()
    assert c.reward.model == "" and c.reward.scores == "fallback" and c.reward.clip == (-5.0, 5.0)


@pytest.mark.parametrize("args,needle", [
    (["--reward.clip=[3, -3]"], r"reward\.clip must be \[low, high\]"),
    (["--reward.clip=[1, 2, 3]"], r"reward\.clip"),
    (["--reward.clip=[a, 1]"], r"reward\.clip"),
    (["--reward.batch_size=0"], r"reward\.batch_size"),
    (["--reward.scores=some"], r"reward\.scores"),
    (["--reward.scores=all"], r"reward\.scores=all needs reward\.model"),
    (["--task.verifier=reward_model"], r"task\.verifier=reward_model needs reward\.model"),
    (["--reward.normalise=true"], r"reward\.normalise"),
])
def test_bad_reward_settings_are_errors_naming_the_key(args, needle):
    with pytest.raises(ConfigError, match=needle):
        build_config(overrides=args)


def test_a_learned_reward_without_a_kl_leash_is_refused_unless_opted_out():
    with pytest.raises(ConfigError, match=r"grpo\.beta = 0.*allow_zero_beta"):
        build_config(overrides=["--reward.model=rm/final"])
    c = build_config(overrides=["--reward.model=rm/final", "--grpo.beta=0.04", "--reward.clip=[-2, 2]"])
    assert c.grpo.beta == 0.04 and c.reward.clip == (-2, 2)
    assert build_config(overrides=["--reward.model=rm/final", "--reward.allow_zero_beta=true"]).grpo.beta == 0
