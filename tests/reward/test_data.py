"""Preference pairs: reading them (errors that name file and line), held-out prompts, batches."""

import json

import pytest

from rlvr.errors import DataError
from rlvr.reward.data import PairBatches, group_by_prompt, load_pairs, split_by_prompt, to_pair
from rlvr.reward.synthetic import make_split


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


GOOD = {"prompt": "What is 2 + 2?", "chosen": "4", "rejected": "5"}


def test_reads_text_and_chat_prompts_and_margins(tmp_path):
    rows = [GOOD, {"prompt": [{"role": "user", "content": "hi"}], "chosen": "hello", "rejected": "go away",
                   "margin": 2}]
    pairs = load_pairs(str(write(tmp_path / "p.jsonl", rows)))
    assert [p.margin for p in pairs] == [0.0, 2.0]
    assert pairs[1].prompt == ({"role": "user", "content": "hi"},)
    assert pairs[0].where.endswith("p.jsonl:1")


@pytest.mark.parametrize("row, needle", [
    ({"prompt": "q", "chosen": "a"}, "p.jsonl:2: missing field 'rejected'"),
    ({"prompt": "q", "chosen": "  ", "rejected": "b"}, "p.jsonl:2: field 'chosen' is empty"),
    ({"prompt": "q", "chosen": "a", "rejected": ""}, "p.jsonl:2: field 'rejected' is empty"),
    ({"chosen": "a", "rejected": "b"}, "p.jsonl:2: missing field 'prompt'"),
    ({"prompt": "q", "chosen": "a", "rejected": "a"}, "p.jsonl:2: 'chosen' and 'rejected' are the same"),
    ({"prompt": "q", "chosen": "a", "rejected": "b", "margin": "big"}, "p.jsonl:2: field 'margin' should be"),
    ({"prompt": [{"role": "user"}], "chosen": "a", "rejected": "b"}, "p.jsonl:2: prompt message 0"),
    ('{"prompt": "q", "chosen": ', "p.jsonl:2: not valid JSON"),
])
def test_a_bad_row_is_a_data_error_naming_file_and_line(tmp_path, row, needle):
    path = write(tmp_path / "p.jsonl", [GOOD, row])
    with pytest.raises(DataError, match=needle.replace("(", r"\(")):
        load_pairs(str(path))


def test_parquet_rows_are_read_and_named_by_row(tmp_path):
    import datasets

    path = tmp_path / "p.parquet"
    datasets.Dataset.from_list([GOOD, {"prompt": "q", "chosen": "a", "rejected": None}]).to_parquet(str(path))
    with pytest.raises(DataError, match="p.parquet:row 2: missing field 'rejected'"):
        load_pairs(str(path))


def test_skip_mode_leaves_out_a_stray_bad_row(tmp_path):
    rows = [GOOD] * 20 + [{"prompt": "q", "chosen": "a"}]
    with pytest.warns(UserWarning, match="missing field 'rejected'"):
        assert len(load_pairs(str(write(tmp_path / "p.jsonl", rows)), on_error="skip")) == 20


def test_held_out_split_takes_whole_prompts():
    train_rows, _ = make_split(30, 0, seed=3)
    pairs = [to_pair(r, f"x:{i}") for i, r in enumerate(train_rows)]
    train, held = split_by_prompt(pairs, 0.2, seed=0)
    assert len({p.key for p in held}) == 6  # 20% of 30 prompts, each with its 2 pairs
    assert len(held) == 12 and len(train) == 48
    assert not {p.key for p in train} & {p.key for p in held}
    assert split_by_prompt(pairs, 0.2, seed=0) == (train, held)  # seeded
    assert split_by_prompt(pairs, 0.0, seed=0) == (pairs, [])


def test_batches_keep_prompts_whole_and_resume_exactly():
    groups = [[0, 1], [2], [3, 4, 5], [6, 7], [8], [9, 10, 11, 12, 13]]  # the last one is bigger than a batch
    batches = PairBatches(groups, batch_pairs=4, seed=1)
    seen = [batches.next() for _ in range(9)]  # runs into the second epoch
    for batch in seen:
        assert len(batch) <= 4 or batch == [9, 10, 11, 12, 13]
        for g in groups:  # a prompt's pairs are all in the batch or none are
            assert set(g) <= set(batch) or not set(g) & set(batch)
    first_epoch = seen[:len(batches.plan(0))]
    assert sorted(i for b in first_epoch for i in b) == list(range(14))
    resumed = PairBatches(groups, batch_pairs=4, seed=1)
    for _ in range(5):
        resumed.next()
    again = PairBatches(groups, batch_pairs=4, seed=1, **resumed.state())
    assert [again.next() for _ in range(4)] == seen[5:9]
    assert batches.plan(0) != batches.plan(1) or batches.plan(1) != batches.plan(2)  # reshuffled by epoch


def test_group_by_prompt_uses_the_prompt_text_or_messages():
    pairs = [to_pair({"prompt": p, "chosen": "a", "rejected": "b"}, "x") for p in
             ["q", [{"role": "user", "content": "q"}], "q", [{"role": "user", "content": "q"}]]]
    assert group_by_prompt(pairs) == [[0, 2], [1, 3]]
