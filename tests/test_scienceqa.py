from collections import Counter

import datasets
import pytest

from semclip.data.scienceqa import (
    MissingFieldsError,
    load_qa_dataset,
    question_id,
    records_with_images,
)
from semclip.data.synthetic import FEATURES, SyntheticConfig, make_example


def small_set(tmp_path, with_missing_image=True):
    rows = [make_example(SyntheticConfig(grid=2, image_size=32), i) for i in range(4)]
    if with_missing_image:
        rows[1]["image"] = None
    return datasets.Dataset.from_dict(
        {k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES
    )


def test_question_id_stable_and_distinct():
    a = question_id("train", 3, "What?", ["x", "y"])
    assert a == question_id("train", 3, "What?", ["x", "y"])
    assert a.startswith("train-000003-")
    assert (
        len(
            {
                a,
                question_id("train", 4, "What?", ["x", "y"]),
                question_id("train", 3, "What?", ["y", "x"]),
                question_id("test", 3, "What?", ["x", "y"]),
            }
        )
        == 4
    )


def test_same_ids_on_two_loads(tmp_path):
    small_set(tmp_path).save_to_disk(str(tmp_path / "disk"))
    first, _ = records_with_images(load_qa_dataset(str(tmp_path / "disk")), "train")
    second, _ = records_with_images(load_qa_dataset(str(tmp_path / "disk")), "train")
    assert [r.qid for r in first] == [r.qid for r in second]
    assert len({r.qid for r in first}) == len(first)


def test_filter_counts_questions_without_image(tmp_path):
    ds = small_set(tmp_path)
    records, skipped = records_with_images(ds, "train")
    assert [r.row for r in records] == [0, 2, 3]
    assert skipped == Counter(no_image=1)
    assert records[0].meta["subject"] == "synthetic"


@pytest.mark.parametrize("kind", ["disk", "dict", "parquet_file", "parquet_dir"])
def test_loads_every_source_kind(tmp_path, kind):
    ds = small_set(tmp_path, with_missing_image=False)
    if kind == "disk":
        ds.save_to_disk(str(tmp_path / "d"))
        source = str(tmp_path / "d")
    elif kind == "dict":
        datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "d"))
        source = str(tmp_path / "d")
    elif kind == "parquet_file":
        ds.to_parquet(str(tmp_path / "validation.parquet"))
        source = str(tmp_path / "validation.parquet")
    else:
        (tmp_path / "pq").mkdir()
        ds.to_parquet(str(tmp_path / "pq" / "validation-00000.parquet"))
        source = str(tmp_path / "pq")
    loaded = load_qa_dataset(source, split="validation", cache_dir=str(tmp_path / "cache"))
    records, _ = records_with_images(loaded, "validation")
    assert len(records) == 4
    assert isinstance(records[0].image, dict) and records[0].image["bytes"]


def test_missing_fields_named(tmp_path):
    ds = datasets.Dataset.from_dict({"question": ["q"], "image": [None]})
    ds.save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(MissingFieldsError, match=r"\['choices', 'answer', 'hint'\]"):
        load_qa_dataset(str(tmp_path / "bad"))
