import pytest

from rlvr.errors import ConfigError
from rlvr.types import Completion, Problem
from rlvr.verifiers.integer import IntegerVerifier

P = Problem(id="p", prompt="What is 7 + 8?", verifier="integer", reference={"answer": "15"})


@pytest.mark.parametrize("text,strict,lenient", [
    (r"The answer is \boxed{15}.", True, True),
    (r"7 + 8 = 15", False, True),
    (r"\boxed{16} but actually 15", False, False),  # the box is the answer when there is one
    (r"\boxed{ 15 }", True, True),
    (r"I think 15 or \boxed{14}", False, False),
    (r"$\boxed{-15}$", False, False),
    (r"7 + 8 is 150", False, False),
    ("", False, False),
    (r"\boxed{15.0}", False, False),
    (r"The sum is 15. \boxed{x}", False, True),  # unusable box: lenient falls back to the text
])
def test_strict_and_lenient_modes(text, strict, lenient):
    c = Completion(text=text)
    assert IntegerVerifier("strict").verify(P, c).passed is strict
    assert IntegerVerifier("lenient").verify(P, c).passed is lenient


def test_format_reward_is_separate_from_correctness():
    v = IntegerVerifier("lenient", format_weight=0.2)
    assert v.verify(P, Completion(r"\boxed{15}")).reward == pytest.approx(1.0)
    assert v.verify(P, Completion("15")).reward == pytest.approx(0.8)
    assert v.verify(P, Completion(r"\boxed{3}")).reward == pytest.approx(0.2)
    assert v.verify(P, Completion(r"\boxed{3}")).passed is False


def test_hostile_input_is_bounded():
    v = IntegerVerifier()
    assert v.verify(P, Completion("9" * 200_000)).passed is False
    assert v.verify(P, Completion(r"\boxed{" * 50_000 + "15")).status in ("correct", "wrong", "no_answer")


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError):
        IntegerVerifier("fuzzy")
    with pytest.raises(ConfigError):
        IntegerVerifier(format_weight=2)
