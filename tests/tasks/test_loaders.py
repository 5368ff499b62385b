"""File loaders (GSM8K, MATH, MBPP, generic columns) on small fixtures in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rlvr.errors import ConfigError, DataError
from rlvr.tasks.base import make_task
from rlvr.tasks.files import DataWarning
from rlvr.tasks.loaders import Gsm8kTask, MathTask, MbppTask

FIX = Path(__file__).resolve().parents[1] / "fixtures"
GSM8K = {"train": str(FIX / "gsm8k/train.jsonl"), "test": str(FIX / "gsm8k/test.jsonl")}


def _to_parquet(src: Path, dst: Path) -> Path:
    """The same rows as Parquet (one type per column, as Parquet requires)."""
    rows = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    rows = [{k: str(v) if isinstance(v, int) and k == "gold" else v for k, v in r.items()} for r in rows]
    pq.write_table(pa.Table.from_pylist(rows), dst)
    return dst


def test_gsm8k_reads_final_answers_and_skips_malformed_rows_naming_file_and_line():
    with pytest.warns(DataWarning) as caught:
        task = make_task("gsm8k", {"data_files": GSM8K})
    messages = [str(w.message) for w in caught]
    assert any("train.jsonl:4: not valid JSON" in m for m in messages)
    assert any("train.jsonl:5:" in m and "####" in m for m in messages)
    assert len(task.skipped) == 2
    test, train = task.problems("test"), task.problems("train")
    assert [p.reference["answer"] for p in test] == ["38", "126", "19"]
    # 21 rows - 2 malformed - 2 copies of a test question (one verbatim, one re-worded answer)
    assert len(train) == 17
    assert not {repr(p.prompt) for p in test} & {repr(p.prompt) for p in train}
    bike = next(p for p in train if "bike" in p.prompt[-1]["content"])
    assert bike.reference == {"answer": "1300"} and bike.verifier == "math"
    assert bike.id == "gsm8k-train-3" and "\\boxed{}" in bike.prompt[-1]["content"]


def test_on_error_raise_stops_at_the_first_bad_row():
    with pytest.raises(DataError, match=r"train\.jsonl:4: not valid JSON"):
        Gsm8kTask(GSM8K, on_error="raise")


def test_too_many_bad_rows_mean_a_wrong_format(tmp_path):
    with pytest.raises(DataError, match=r"2 of 3 rows are malformed.*missing field 'question'"), \
            pytest.warns(DataWarning):
        Gsm8kTask({"test": str(_three_rows(tmp_path))})


def _three_rows(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"q": 1}\n{"q": 2}\n{"question": "x", "answer": "#### 1"}\n')
    return path


def test_single_file_is_shuffled_and_cut_with_the_seed():
    kwargs = {"data_files": GSM8K["train"], "test_size": 5}
    with pytest.warns(DataWarning):
        a, b, c = Gsm8kTask(**kwargs, seed=1), Gsm8kTask(**kwargs, seed=1), Gsm8kTask(**kwargs, seed=2)
    assert [p.id for p in a.problems("test")] == [p.id for p in b.problems("test")]
    assert [p.id for p in a.problems("test")] != [p.id for p in c.problems("test")]
    assert len(a.problems("test")) == 5 and len(a.problems("train")) == 14
    assert not {p.id for p in a.problems("test")} & {p.id for p in a.problems("train")}


def test_missing_split_and_missing_file_are_clear_errors():
    task = Gsm8kTask({"test": GSM8K["test"]})
    with pytest.raises(ConfigError, match="no 'train' file"):
        task.problems("train")
    with pytest.raises(DataError, match="nope.jsonl: no such file"):
        Gsm8kTask({"test": "nope.jsonl"})


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_math_takes_the_last_boxed_answer_with_nested_braces(fmt, tmp_path):
    path = FIX / "math/test.jsonl"
    if fmt == "parquet":
        path = _to_parquet(path, tmp_path / "test.parquet")
    with pytest.warns(DataWarning, match=r"(test\.jsonl:5|test\.parquet:row 5):.*boxed"):
        task = MathTask({"test": str(path)})
    answers = {p.id: p.reference["answer"] for p in task.problems("test")}
    assert answers["math-test/prealgebra/1.json"] == "\\frac{3}{4}"
    assert answers["math-test/algebra/3.json"] == "2\\sqrt{3}"
    assert answers["math-test/precalculus/6.json"].startswith("\\begin{pmatrix} 2 & 0")
    assert len(answers) == 10


def test_mbpp_builds_an_assert_script_for_the_code_verifier():
    with pytest.warns(DataWarning, match=r"mbpp\.jsonl:3: field 'test_list' should be list"):
        task = MbppTask({"test": str(FIX / "mbpp/mbpp.jsonl")})
    probs = {p.id: p for p in task.problems("test")}
    p = probs["mbpp-601"]
    assert p.verifier == "code" and p.reference["test_format"] == "assert"
    assert p.reference["entry_point"] == "max_of_three"
    assert p.reference["tests"].count("assert") == 3
    text = p.prompt[-1]["content"]
    assert "assert max_of_three(1, 2, 3) == 3" in text and "max_of_three(9, 2, 3)" not in text
    assert "```python" in text
    assert probs["mbpp-604"].reference["tests"].startswith("import math\n")
    assert probs["mbpp-605"].reference["entry_point"] == "common"
    with pytest.warns(DataWarning):
        shown = MbppTask({"test": str(FIX / "mbpp/mbpp.jsonl")}, show_tests=3)
    assert "max_of_three(9, 2, 3)" in shown.problems("test")[0].prompt[-1]["content"]


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_generic_columns_with_per_row_verifier(fmt, tmp_path):
    path = FIX / "generic/qa.jsonl"
    if fmt == "parquet":
        path = _to_parquet(path, tmp_path / "qa.parquet")
    with pytest.warns(DataWarning, match="field 'query' is empty"):
        task = make_task("file", {
            "data_files": {"test": str(path)},
            "columns": {"prompt": "query", "answer": "gold", "id": "id", "verifier": "check"},
            "reference_values": {"case_sensitive": False}, "prompt": {"chat": False}})
    probs = task.problems("test")
    assert len(probs) == 10
    assert probs[0].id == "file-q1" and probs[0].verifier == "exact"
    assert probs[1].reference == {"case_sensitive": False, "answer": "8"}
    assert probs[1].prompt.startswith("Question: How many legs") and probs[1].prompt.endswith("Answer:")


def test_generic_columns_are_checked():
    with pytest.raises(ConfigError, match="columns must map 'prompt'"):
        make_task("file", {"data_files": str(FIX / "generic/qa.jsonl"), "columns": {"q": "query"}})


def test_gzip_and_non_object_lines(tmp_path):
    import gzip

    path = tmp_path / "t.jsonl.gz"
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(20)]
    with gzip.open(path, "wt") as f:
        f.write("\n".join(json.dumps(r) for r in rows) + "\n[1, 2]\n")
    with pytest.warns(DataWarning, match=r"t\.jsonl\.gz:21: expected a JSON object, got list"):
        task = Gsm8kTask({"test": str(path)})
    assert len(task.problems("test")) == 20


def test_math_keeps_every_box_of_a_solution_and_refuses_boxes_that_are_not_one_answer(tmp_path):
    rows = [
        {"problem": "Roots?", "solution": "So $x = \\boxed{1}$ and $x = \\boxed{-2}$.", "unique_id": "two"},
        {"problem": "Parts?", "solution": "(a) $\\boxed{3}$. Next we find the area. (b) $\\boxed{7}$.",
         "unique_id": "parts"},
        *({"problem": "One?", "solution": f"Thus $\\boxed{{{i}}}$.", "unique_id": f"one{i}"} for i in range(10)),
    ]  # one bad row in twelve: under the 10% that would fail the whole file
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(DataWarning, match=r"test\.jsonl:2: .*different boxes"):
        task = MathTask({"test": str(path)})
    answers = {p.id: p.reference["answer"] for p in task.problems("test")}
    assert "math-parts" not in answers and len(answers) == 11  # the ambiguous row: a reported bad row
    assert "1" in answers["math-two"] and "-2" in answers["math-two"]  # not just the last box
    assert answers["math-one5"] == "5"
