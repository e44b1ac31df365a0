"""Benchmarks' own protocols in semclip-evaluate: MMBench's CircularEval, and the one-line note
that names the lmms-eval task to report instead."""

from __future__ import annotations

import io
import math
from pathlib import Path

import datasets
import pytest
from PIL import Image

from semclip.data.labels import read_labels
from semclip.evaluation.protocols import circular, circular_groups, protocol_note
from semclip.evaluation.stored import EvalConfig, evaluate
from semclip.labeling.config import LabelConfig
from semclip.labeling.run import run_labeling

TEXT = datasets.Value("string")


def png(shade: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (shade, 90, 255 - shade)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def circular_mmbench(root: Path) -> None:
    """Two questions in MMBench's dev layout, each with its options rotated into copies that share
    ``index % 1e6`` (as the real dev split holds them)."""
    features = {"index": datasets.Value("int64"), "question": TEXT, "hint": TEXT, "answer": TEXT,
                "A": TEXT, "B": TEXT, "C": TEXT, "D": TEXT, "category": TEXT,
                "image": datasets.Image(), "source": TEXT, "L2-category": TEXT, "comment": TEXT,
                "split": TEXT}  # fmt: skip
    colours = ["red", "green", "blue"]
    rows = []
    for copy in range(3):  # question 0: the answer rotates with the options
        options = colours[copy:] + colours[:copy]
        rows.append(dict(index=copy * 1_000_000, question="What is the main colour?", hint="nan",
                         answer="ABC"[options.index("blue")], A=options[0], B=options[1],
                         C=options[2], category="attribute", image=png(30)))  # fmt: skip
    for copy in range(2):  # question 1
        options = ["left box", "right box"][copy:] + ["left box", "right box"][:copy]
        rows.append(dict(index=1 + copy * 1_000_000, question="Which is larger?", hint=None,
                         answer="AB"[options.index("right box")], A=options[0], B=options[1],
                         category="spatial", image=png(60)))  # fmt: skip
    columns = {name: [r.get(name) for r in rows] for name in features}
    path = root / "en" / "dev-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))


def test_circular_groups_and_products_by_hand():
    indices = [0, 1_000_000, 1, 2_000_000, 1_000_001]
    groups = circular_groups(indices)
    assert groups == [[0, 1, 3], [2, 4]]
    assert circular([1.0, 1.0, 0.0, 1.0, 1.0], groups) == [1.0, 0.0]
    assert circular([0.5, 0.5, 1.0, 0.5, 1.0], groups) == [0.125, 1.0]


def test_notes_name_the_lmms_eval_task():
    assert "`mmbench_en_dev`" in protocol_note("lmms-lab/MMBench")
    assert "`pope`" in protocol_note("lmms-lab/POPE") and "F1" in protocol_note("lmms-lab/POPE")
    assert protocol_note("craigwu/vstar_bench") == "" and protocol_note(None) == ""
    # the ScienceQA columns read any dataset that names no preset: no note for those
    scienceqa = "derek-thomas/ScienceQA"
    assert "`scienceqa_img`" in protocol_note(scienceqa, scienceqa)
    assert protocol_note(scienceqa, "/data/my_synthetic_set") == ""


@pytest.fixture(scope="module")
def mmbench_labels(tiny_llava_dir, tmp_path_factory) -> tuple[str, str]:
    folder = tmp_path_factory.mktemp("mmbench")
    circular_mmbench(folder)
    out = folder / "labels"
    config = LabelConfig.from_values(
        dataset=str(folder), preset="lmms-lab/MMBench", splits=["dev"], grid=2,
        model=tiny_llava_dir, dtype="float32", output_dir=str(out), accelerator="cpu",
        progress=False,
    )  # fmt: skip
    run_labeling(config)
    return str(folder), str(out)


def expected_rows(labels_dir: str) -> dict[str, float]:
    """CircularEval by hand from the stored rows: question 0 = rows 0-2, question 1 = rows 3-4."""
    rows = sorted(read_labels(labels_dir, "dev").to_pylist(), key=lambda r: r["row"])
    groups = [[0, 1, 2], [3, 4]]
    plain = [math.prod(float(rows[i]["base_correct"]) for i in g) for g in groups]
    oracle = [math.prod(float(any(rows[i]["cell_correct"])) for i in g) for g in groups]
    random = [math.prod(sum(rows[i]["cell_correct"]) / 4 for i in g) for g in groups]
    return {"plain": sum(plain) / 2, "oracle": sum(oracle) / 2, "random": sum(random) / 2}


def test_stored_mmbench_is_circular_and_says_which_task_to_report(mmbench_labels, tmp_path):
    _, labels = mmbench_labels
    results = evaluate(EvalConfig(labels_dir=labels, split="dev", out_dir=str(tmp_path)))
    assert results["circular_eval"] and (results["questions"], results["labelled_copies"]) == (2, 5)
    want = expected_rows(labels)
    acc = results["accuracy"]
    assert acc["overview only"] == pytest.approx(want["plain"])
    assert acc["oracle"] == pytest.approx(want["oracle"])
    assert acc["random crop"] == pytest.approx(want["random"])
    table = (tmp_path / "table.md").read_text()
    assert "MMBench CircularEval: 2 questions of 5 copies" in table
    assert "report lmms-eval's `mmbench_en_dev` task" in table


def test_vlm_in_the_loop_mmbench_is_circular_too(mmbench_labels, tiny_llava_dir, tmp_path):
    from semclip.evaluation.vlm_loop import VLMEvalConfig, evaluate_with_vlm
    from semclip.vlm.config import VLMConfig

    folder, labels = mmbench_labels
    results = evaluate_with_vlm(
        VLMEvalConfig(
            vlm=VLMConfig(model=tiny_llava_dir, device="cpu"), dataset=folder, split="dev",
            columns="lmms-lab/MMBench", ks=[1], out_dir=str(tmp_path),
        )
    )  # fmt: skip
    assert (results["questions"], results["labelled_copies"]) == (2, 5)
    want = expected_rows(labels)
    assert results["accuracy"]["plain VLM (k=0)"] == pytest.approx(want["plain"])
    assert results["accuracy"]["oracle (k=1)"] == pytest.approx(want["oracle"])
    assert "report lmms-eval's `mmbench_en_dev` task" in (tmp_path / "table.md").read_text()
