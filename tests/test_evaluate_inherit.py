"""`semclip-evaluate --vlm --labels-dir`: the VLM is shown what the labels were made with.

Everything that defines the VLM's input (mode, prompt, system line, backend, transparency, grid,
template, image limit) comes from the label set; a flag that contradicts it is refused in one line
unless --force, and then the table says so. A scorer trained on another grid is refused the same
way.
"""

from __future__ import annotations

import json
import shutil

import pytest

from semclip.evaluate import main as evaluate_main
from semclip.labeling.config import LabelConfig
from semclip.labeling.run import run_labeling


@pytest.fixture(scope="module")
def generate_labels(tiny_llava_dir, synthetic_dir, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("generate-labels")
    config = LabelConfig.from_values(
        dataset=synthetic_dir, splits=["test"], model=tiny_llava_dir, mode="generate",
        max_new_tokens=2, limit=3, max_pixels=1_000_000, output_dir=str(out), accelerator="cpu",
        progress=False,
    )  # fmt: skip
    run_labeling(config)
    return str(out)


def run(argv, capsys) -> tuple[int, str]:
    code = evaluate_main(argv)
    return code, capsys.readouterr().err


def test_the_label_sets_mode_is_inherited_and_k1_equals_the_labels(
    tiny_llava_dir, generate_labels, tmp_path, capsys
):
    out = tmp_path / "eval"
    argv = ["--vlm", tiny_llava_dir, "--labels-dir", generate_labels, "--split", "test",
            "--k", "1", "--limit", "3", "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 0, err
    live = json.loads((out / "results.json").read_text())
    assert live["mode"] == "generate" and live["forced"] == []
    assert live["max_pixels"] == 1_000_000  # the label set's image limit
    stored = tmp_path / "stored"
    code, err = run(["--labels-dir", generate_labels, "--out-dir", str(stored)], capsys)
    assert code == 0, err
    ref = json.loads((stored / "results.json").read_text())["accuracy"]
    assert live["accuracy"]["plain VLM (k=0)"] == ref["overview only"]
    assert live["accuracy"]["oracle (k=1)"] == ref["oracle"]
    assert live["accuracy"]["random (k=1)"] == pytest.approx(ref["random crop"])


def test_a_contradicting_flag_needs_force_and_the_table_says_so(
    tiny_llava_dir, generate_labels, tmp_path, capsys
):
    out = tmp_path / "eval"
    argv = ["--vlm", tiny_llava_dir, "--labels-dir", generate_labels, "--split", "test",
            "--k", "1", "--limit", "2", "--device", "cpu", "--out-dir", str(out),
            "--mode", "logprob"]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 2 and err.count("\n") == 1
    assert "--mode 'logprob' (label set: 'generate')" in err and "--force" in err
    code, err = run([*argv, "--force"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "logprob"
    assert results["forced"] == ["--mode 'logprob' (label set: 'generate')"]
    assert "Run with --force" in (out / "table.md").read_text()
    code, err = run([*argv[:-2], "--max-pixels", "5000"], capsys)
    assert code == 2 and "--max-pixels 5000 (label set: 1000000)" in err
    # a flag that agrees with the label set is no contradiction
    code, err = run([*argv[:-1], "generate"], capsys)
    assert code == 0, err


def test_a_scorer_trained_on_another_grid_needs_force(
    tiny_llava_dir, tiny_clip_dir, synthetic_dir, tmp_path, capsys
):
    scorer = tmp_path / "scorer"
    shutil.copytree(tiny_clip_dir, scorer)
    (scorer / "semclip_scorer.json").write_text(
        json.dumps({"text_mode": "question", "grid": 3, "alpha": "drop"})
    )
    out = tmp_path / "eval"
    base = ["--vlm", tiny_llava_dir, "--dataset", synthetic_dir, "--split", "test", "--k", "1",
            "--limit", "2", "--device", "cpu", "--out-dir", str(out),
            "--scorer", f"trained={scorer}"]  # fmt: skip
    # no --grid: the scorer's own grid is used
    code, err = run(base, capsys)
    assert code == 0, err
    assert json.loads((out / "results.json").read_text())["grid_n"] == 3
    code, err = run([*base, "--grid", "2"], capsys)
    assert code == 2 and "trained on a 3x3 grid, evaluated on 2x2" in err
    code, err = run([*base, "--grid", "2", "--force"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["grid_n"] == 2 and "trained on a 3x3 grid" in results["forced"][0]


def test_another_vlm_than_the_label_sets_needs_force(
    tiny_llava_dir, generate_labels, tmp_path, capsys
):
    other = tmp_path / "other-vlm"
    shutil.copytree(tiny_llava_dir, other)
    out = tmp_path / "eval"
    argv = ["--labels-dir", generate_labels, "--split", "test", "--k", "1", "--limit", "2",
            "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    code, err = run(["--vlm", str(other), *argv], capsys)
    assert code == 2 and f"--vlm {other} (label set: {tiny_llava_dir})" in err
    code, err = run(["--vlm", str(other), *argv, "--force"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["mode"] == "generate"  # what the pipeline showed is still the label set's
    assert results["forced"] == [f"--vlm {other} (label set: {tiny_llava_dir})"]
    # the label set's own VLM with --prompt-format auto: its own format, no contradiction
    code, err = run(["--vlm", tiny_llava_dir, *argv, "--prompt-format", "auto"], capsys)
    assert code == 0, err


def test_stored_evaluation_refuses_a_scorer_of_another_grid(
    small_labels, tiny_clip_dir, tmp_path, capsys
):
    scorer = tmp_path / "scorer"
    shutil.copytree(tiny_clip_dir, scorer)
    (scorer / "semclip_scorer.json").write_text(
        json.dumps({"text_mode": "question", "grid": 3, "alpha": "drop"})
    )
    out = tmp_path / "eval"
    argv = ["--labels-dir", small_labels, "--scorer", f"s3={scorer}", "--device", "cpu",
            "--out-dir", str(out)]  # fmt: skip
    code, err = run(argv, capsys)
    assert code == 2 and "trained on a 3x3 grid, the labels are on 2x2" in err
    code, err = run([*argv, "--force"], capsys)
    assert code == 0, err
    assert "trained on a 3x3 grid" in json.loads((out / "results.json").read_text())["forced"][0]
    assert "Run with --force" in (out / "table.md").read_text()
