"""`rlvr rm pairs`: principles and prompts read, the critique-and-revise conversation against a
scripted chat-completions server on loopback, judge failures counted and never written, and a
resumed run that only does what is missing."""

from __future__ import annotations

import json

import pytest

from pairs_server import PairsServer, revise
from rlvr.cli import main
from rlvr.errors import ConfigError, DataError, JudgeError
from rlvr.reward.data import load_pairs
from rlvr.reward.pairs import (ChatClient, Principle, critique_and_revise, draw_principle,
                               load_principles, load_prompts)

PRINCIPLES = ["Be concise.", "Be polite.", "Show the working.", "Do not guess."]


def _client(url, **options):
    return ChatClient(base_url=url, max_retries=0, timeout_s=0.5, deadline_s=5, **options)


# ---------------------------------------------------------------- inputs


def test_principles_from_text_lines_and_from_a_yaml_list(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("# our constitution\nBe concise.\n\n  Be polite.  \n")
    assert [p.text for p in load_principles(txt)] == ["Be concise.", "Be polite."]
    assert "Principle: Be polite." in load_principles(txt)[1].critique
    yml = tmp_path / "p.yaml"
    yml.write_text("- Be concise.\n- {name: harmless, critique: 'Is it harmful?', revision: 'Make it harmless.'}\n")
    custom = load_principles(yml)[1]
    assert custom == Principle("harmless", "Is it harmful?", "Make it harmless.")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {critique: 'only one half'}\n")
    with pytest.raises(DataError, match="item 1"):
        load_principles(bad)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DataError, match="no principles"):
        load_principles(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="no such file"):
        load_principles(tmp_path / "missing.txt")


def test_prompt_ids_are_given_or_a_stable_hash_made_unique(tmp_path):
    f = tmp_path / "prompts.jsonl"
    f.write_text('{"prompt": "hi"}\n{"id": "q7", "prompt": [{"role": "user", "content": "yo"}]}\n'
                 '{"prompt": "hi"}\n')
    rows = load_prompts(f)
    assert rows[1] == ("q7", ({"role": "user", "content": "yo"},))
    assert rows[0][0].startswith("p-") and rows[2][0] == rows[0][0] + "#2"
    assert load_prompts(f) == rows
    f.write_text('{"question": "no prompt field"}\n')
    with pytest.raises(DataError, match="prompt"):
        load_prompts(f)


def test_the_principle_of_a_prompt_is_seeded_by_its_id_alone():
    ps = [Principle(t, t, t) for t in PRINCIPLES]
    draws = [draw_principle(ps, 0, f"p{i}").text for i in range(40)]
    assert draws == [draw_principle(ps, 0, f"p{i}").text for i in range(40)]
    assert set(draws) == set(PRINCIPLES)  # every principle gets drawn
    assert draws != [draw_principle(ps, 1, f"p{i}").text for i in range(40)]


# ---------------------------------------------------------------- the conversation


def test_critique_then_revision_in_one_conversation():
    principle = load_principles_from(PRINCIPLES)[0]
    with PairsServer() as server:
        critique, revision = critique_and_revise(_client(server.url), "What is 2+2?", "4 I think", principle)
        first, second = server.requests
    assert critique == "Critique: the response does not yet follow: Be concise."
    assert revision == revise("4 I think", "Be concise.")
    assert [m["role"] for m in second["messages"]] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert second["messages"][:4] == first["messages"] and second["messages"][4]["content"] == critique


@pytest.mark.parametrize("stage,fault,reason", [
    ("critique", "500", "http_status"), ("critique", "hang", "timeout"), ("revision", "empty", "empty"),
    ("revision", "malformed", "malformed"), ("critique", "refusal", "refusal"),
    ("critique", "truncated", "truncated"), ("revision", "same", "unchanged"),
])
def test_each_judge_failure_is_an_error_with_its_reason(stage, fault, reason):
    principle = load_principles_from(PRINCIPLES)[1]
    with PairsServer(script={"q": (stage, fault)}) as server:
        with pytest.raises(JudgeError) as info:
            critique_and_revise(_client(server.url), "q", "an answer", principle)
    assert info.value.reason == reason


def load_principles_from(texts):
    from rlvr.reward.pairs import _principle

    return [_principle(t, "test") for t in texts]


# ---------------------------------------------------------------- the command on 50 prompts

FAULTS = {3: ("critique", "500"), 7: ("revision", "500"), 11: ("critique", "hang"),
          15: ("revision", "malformed"), 19: ("critique", "not-json"), 23: ("revision", "empty"),
          27: ("critique", "refusal"), 31: ("critique", "truncated"), 35: ("revision", "same"),
          39: ("revision", "same")}
EXPECTED_FAILURES = {"http_status": 2, "timeout": 1, "malformed": 2, "empty": 1, "refusal": 1,
                     "truncated": 1, "unchanged": 2}


def _inputs(tmp_path, n=50):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i:02d}", "prompt": f"Question {i}: say something kind."}) + "\n"
                               for i in range(n)))
    principles = tmp_path / "principles.txt"
    principles.write_text("\n".join(PRINCIPLES) + "\n")
    return prompts, principles


def _pairs_cmd(tiny, prompts, principles, out, url, *extra):
    return main(["rm", "pairs", "--prompts", str(prompts), "--principles", str(principles),
                 "--out", str(out), "--judge-url", url, "--model", str(tiny), "--max-new-tokens", "6",
                 "--judge-options", "{max_retries: 0, timeout_s: 0.5, deadline_s: 5}",
                 "--batch-size", "16", "--no-progress", "--device", "cpu", *extra])


@pytest.mark.slow
def test_fifty_prompts_write_the_expected_pairs_and_count_the_failures(tiny_model_dir, tmp_path):
    prompts, principles = _inputs(tmp_path)
    out = tmp_path / "pairs.jsonl"
    script = {f"Question {i}: say something kind.": f for i, f in FAULTS.items()}
    with PairsServer(script=script) as server:
        assert _pairs_cmd(tiny_model_dir, prompts, principles, out, server.url) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    report = json.loads((tmp_path / "pairs.jsonl.report.json").read_text())
    assert report["failures"] == EXPECTED_FAILURES and report["written"] == 40 == len(rows)
    failed = {f"q{i:02d}" for i in FAULTS}
    assert {r["id"] for r in rows} == {f"q{i:02d}" for i in range(50)} - failed
    ps = load_principles(principles)
    for r in rows:
        assert r["principle"] == draw_principle(ps, 0, r["id"]).text
        assert r["chosen"] == revise(r["rejected"], r["principle"]) and r["rejected"].strip()
        assert r["prompt"] == f"Question {int(r['id'][1:])}: say something kind."
    assert len(load_pairs(str(out))) == 40  # what `rlvr rm train` reads

    # interrupted mid-line, then resumed with a healthy judge: only the missing prompts are done,
    # and each samples the response the first run would have
    first = {r["id"]: r["rejected"] for r in rows}
    with out.open("a") as f:
        f.write('{"id": "q03", "prompt": "Quest')
    with PairsServer() as server:
        assert _pairs_cmd(tiny_model_dir, prompts, principles, out, server.url) == 0
        asked = {PairsServer.read(b)[1] for b in server.requests}
    assert asked == {f"Question {i}: say something kind." for i in FAULTS}  # the 10 failed ones
    final = [json.loads(x) for x in out.read_text().splitlines() if x.endswith("}")]
    assert sorted(r["id"] for r in final) == [f"q{i:02d}" for i in range(50)]
    again = json.loads((tmp_path / "pairs.jsonl.report.json").read_text())
    assert again["written"] == 10 and again["skipped"] == 0 and again["pairs_in_file"] == 50
    with PairsServer() as server:  # a fresh run redraws exactly the same responses
        assert _pairs_cmd(tiny_model_dir, prompts, principles, tmp_path / "fresh.jsonl", server.url,
                          "--limit", "8") == 0
    fresh = {json.loads(x)["id"]: json.loads(x)["rejected"] for x in (tmp_path / "fresh.jsonl").read_text().splitlines()}
    assert all(first[k] == v for k, v in fresh.items() if k in first) and len(fresh) == 8


@pytest.mark.slow
def test_a_judge_that_is_down_writes_nothing_and_fails(tiny_model_dir, tmp_path):
    prompts, principles = _inputs(tmp_path, n=4)
    out = tmp_path / "pairs.jsonl"
    with PairsServer(fail_fraction=1.0) as server:
        assert _pairs_cmd(tiny_model_dir, prompts, principles, out, server.url) == 1
    assert not out.exists() or out.read_text() == ""
    assert json.loads((tmp_path / "pairs.jsonl.report.json").read_text())["failures"] == {"http_status": 4}
