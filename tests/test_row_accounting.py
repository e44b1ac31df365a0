"""Every source row is accounted for: labelled, or skipped with its reason; bad splits, a second
dataset in the same output folder and a killed run's temp files are handled (through label.main)."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from semclip.data.labels import read_info, read_labels
from semclip.data.scienceqa import SplitNotFoundError, load_qa_dataset, parquet_splits
from semclip.data.synthetic import FEATURES, SyntheticConfig, make_example
from semclip.label import main

SMALL = SyntheticConfig(grid=2, image_size=48)


def rows(n: int, split: str = "train") -> list[dict]:
    return [make_example(SMALL, i, split) for i in range(n)]


def table(examples: list[dict]) -> datasets.Dataset:
    return datasets.Dataset.from_dict(
        {k: [r[k] for r in examples] for k in FEATURES}, features=FEATURES
    )


def label(dataset, out, *extra: str) -> list[str]:
    return ["--dataset", str(dataset), "--evaluator", "simulated", "--output-dir", str(out),
            "--accelerator", "cpu", "--no-progress", *extra]  # fmt: skip


def one_line_error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("semclip-label: error: ")
    return lines[0]


def by_row(out, split: str) -> dict[int, dict]:
    labels = read_labels(out, split).to_pylist()
    assert sorted(Counter(r["row"] for r in labels).values()) == [1] * len(labels)
    return {r["row"]: r for r in labels}


def test_acceptance_every_source_row_appears_exactly_once(tmp_path, capsys):
    """A ScienceQA-schema parquet with text-only rows, null answers, an empty split and bad
    images: every source row is in the label set once, labelled or skipped with its reason."""
    train = rows(8)
    train[1]["image"] = None  # text-only
    train[2]["answer"] = None  # null answer
    train[3]["image"] = {"bytes": b"not an image", "path": None}
    train[4]["image"], train[4]["answer"] = None, None
    train[5]["answer"] = 7  # out of range
    folder = tmp_path / "sqa" / "data"
    folder.mkdir(parents=True)
    table(train).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    table([]).to_parquet(str(folder / "validation-00000-of-00001.parquet"))
    out = tmp_path / "labels"
    assert main(label(tmp_path / "sqa", out, "--splits", "train", "validation")) == 0
    validation = json.loads(capsys.readouterr().out)["splits"]["validation"]
    assert validation["source_rows"] == validation["labelled"] == 0
    recorded = by_row(out, "train")
    assert sorted(recorded) == list(range(8))
    reasons = {i: r["skip_reason"] for i, r in recorded.items() if r["status"] == "skipped"}
    assert reasons == {
        1: "no_image",
        2: "bad_answer",
        3: "bad_image:undecodable",
        4: "no_image",
        5: "bad_answer",
    }
    assert read_labels(out, "validation").num_rows == 0
    # A rerun has nothing left: skips are records too.
    assert main(label(tmp_path / "sqa", out, "--splits", "train", "validation")) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["labelled_this_run"] == 0


def test_limit_counts_rows_of_the_source(tmp_path):
    train = rows(6)
    train[0]["image"] = None
    train[1]["image"] = None
    table(train).save_to_disk(str(tmp_path / "d"))
    assert main(label(tmp_path / "d", tmp_path / "labels", "--limit", "3")) == 0
    recorded = by_row(tmp_path / "labels", "train")
    assert sorted(recorded) == [0, 1, 2]
    assert [recorded[i]["status"] for i in range(3)] == ["skipped", "skipped", "labelled"]


@pytest.mark.parametrize("kind", ["pyarrow_parquet", "datasets_parquet", "save_to_disk_split"])
def test_an_empty_split_gives_zero_rows_and_the_run_goes_on(tmp_path, kind, capsys):
    if kind == "save_to_disk_split":
        datasets.DatasetDict({"train": table(rows(2)), "test": table([])}).save_to_disk(
            str(tmp_path / "d")
        )
        source = tmp_path / "d"
    else:
        source = tmp_path / "pq"
        source.mkdir()
        table(rows(2)).to_parquet(str(source / "train.parquet"))
        if kind == "pyarrow_parquet":
            pq.write_table(table([]).data.table.cast(table([]).features.arrow_schema),
                           str(source / "test.parquet"))  # fmt: skip
        else:
            table([]).to_parquet(str(source / "test.parquet"))
    assert len(load_qa_dataset(str(source), "test")) == 0
    out = tmp_path / "labels"
    assert main(label(source, out, "--splits", "test", "train")) == 0
    summary = json.loads(capsys.readouterr().out)["splits"]
    assert summary["test"]["source_rows"] == 0 and summary["train"]["labelled"] == 2


def test_a_zero_row_parquet_written_by_pyarrow_alone(tmp_path):
    schema = pa.schema([(k, pa.string()) for k in ("question", "hint")])
    schema = schema.append(pa.field("choices", pa.list_(pa.string())))
    schema = schema.append(pa.field("answer", pa.int64()))
    schema = schema.append(pa.field("image", pa.struct([("bytes", pa.binary())])))
    pq.write_table(schema.empty_table(), str(tmp_path / "test.parquet"))
    ds = load_qa_dataset(str(tmp_path / "test.parquet"), "test")
    assert len(ds) == 0 and list(ds) == []


def test_split_names_match_exactly(tmp_path, capsys):
    folder = tmp_path / "pq" / "data"
    folder.mkdir(parents=True)
    table(rows(2)).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    table(rows(3, "validation")).to_parquet(str(folder / "validation-00000-of-00001.parquet"))
    capsys.readouterr()
    assert main(label(tmp_path / "pq", tmp_path / "labels", "--splits", "nosuch")) == 2
    line = one_line_error(capsys)
    assert "'nosuch'" in line and "['train', 'validation']" in line
    with pytest.raises(SplitNotFoundError, match="'val'"):
        load_qa_dataset(str(tmp_path / "pq"), "val")  # no prefix match of validation-*
    assert not (tmp_path / "labels").exists() or not read_labels(tmp_path / "labels").num_rows


def test_parquet_split_layouts(tmp_path):
    layouts = {
        "data/train-00000-of-00002-0123abcd.parquet": "train",
        "data/train-00001-of-00002-0123abcd.parquet": "train",
        "test.parquet": "test",
        "dev/0000.parquet": "dev",
        "validation-00000.parquet": "validation",
    }
    for name in layouts:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        table(rows(1)).to_parquet(str(tmp_path / name))
    found = parquet_splits(tmp_path)
    assert {s: len(f) for s, f in found.items()} == {"train": 2, "test": 1, "dev": 1,
                                                     "validation": 1}  # fmt: skip
    # A single file or a glob given directly is one split, whatever it is called.
    assert len(load_qa_dataset(str(tmp_path / "test.parquet"), "anything")) == 1
    assert len(load_qa_dataset(str(tmp_path / "data" / "train-*.parquet"), "x")) == 2


def test_a_second_dataset_in_the_same_output_folder_is_refused(tmp_path, capsys):
    table(rows(2)).save_to_disk(str(tmp_path / "a"))
    table(rows(3, "other")).save_to_disk(str(tmp_path / "b"))
    out = tmp_path / "labels"
    assert main(label(tmp_path / "a", out)) == 0
    capsys.readouterr()
    assert main(label(tmp_path / "b", out)) == 2
    line = one_line_error(capsys)
    assert str(tmp_path / "a") in line and "--overwrite" in line
    assert read_labels(out, "train").num_rows == 2  # untouched
    assert main(label(tmp_path / "b", out, "--overwrite")) == 0
    assert read_labels(out, "train").num_rows == 3
    assert read_info(out).dataset == str(tmp_path / "b")


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path):
    table(rows(2)).save_to_disk(str(tmp_path / "d"))
    out = tmp_path / "labels"
    out.mkdir()
    mine = out / ".train-0123456789ab-r0-000000.parquet.k1ll3d.tmp"
    old_info = out / ".labelset.json.abc123.tmp"
    fresh_other = out / ".train-0123456789ab-r0s1of2-000000.parquet.xyz789.tmp"
    for path in (mine, old_info, fresh_other):
        path.write_bytes(b"partial")
    hour_ago = time.time() - 7200
    os.utime(old_info, (hour_ago, hour_ago))
    assert main(label(tmp_path / "d", out)) == 0
    assert not mine.exists() and not old_info.exists()
    assert fresh_other.exists()  # another job of an array may still be about to rename it


def test_a_relative_dataset_is_recorded_as_an_absolute_path(tmp_path, monkeypatch, capsys):
    from semclip.training.data import load_groups

    (tmp_path / "work").mkdir()
    table(rows(4)).save_to_disk(str(tmp_path / "work" / "d"))
    monkeypatch.chdir(tmp_path / "work")
    assert main(label("./d", tmp_path / "labels")) == 0
    info = read_info(tmp_path / "labels")
    assert info.dataset == str(tmp_path / "work" / "d")
    assert info.columns["name"] == "derek-thomas/ScienceQA"
    monkeypatch.chdir(tmp_path)  # training from another directory finds it
    groups, left_out, source = load_groups(str(tmp_path / "labels"), "train")
    assert len(source) == 4 and len(groups) + sum(left_out.values()) == 4
    os.rename(tmp_path / "work" / "d", tmp_path / "work" / "moved")
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'work' / 'd'} .*was not found"):
        load_groups(str(tmp_path / "labels"), "train")


def test_an_old_labelset_without_columns_still_reads(tmp_path):
    table(rows(2)).save_to_disk(str(tmp_path / "d"))
    out = tmp_path / "labels"
    assert main(label(tmp_path / "d", out)) == 0
    path = Path(out) / "labelset.json"
    data = json.loads(path.read_text())
    del data["columns"]
    path.write_text(json.dumps(data))
    assert read_info(out).columns is None
    assert main(label(tmp_path / "d", out)) == 0  # same source: resumes, no refusal


def test_only_rank_zero_prints_the_summary(monkeypatch, capsys, tmp_path):
    """Under DDP every rank returns from run_labeling; only global rank 0 prints."""
    from lightning.pytorch.utilities import rank_zero_only

    import semclip.labeling.run as run

    table(rows(1)).save_to_disk(str(tmp_path / "d"))
    monkeypatch.setattr(run, "run_labeling", lambda config: {"splits": {}})
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert main(label(tmp_path / "d", tmp_path / "labels")) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(rank_zero_only, "rank", 0)
    assert main(label(tmp_path / "d", tmp_path / "labels")) == 0
    assert '"splits"' in capsys.readouterr().out
