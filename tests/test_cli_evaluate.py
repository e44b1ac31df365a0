"""semclip-evaluate as a user meets it: mistakes are one line at once, --help explains, fast."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semclip.data.labels import LabelProvenance, LabelSetInfo, ShardWriter, write_info
from semclip.evaluate import main


def one_line_error(capsys, argv: list[str]) -> str:
    start = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("semclip-evaluate: error:"), err
    assert "Traceback" not in err
    assert elapsed < 5, elapsed
    return err


@pytest.fixture
def label_set(tmp_path: Path) -> Path:
    """One labelled test question on a 2x2 grid."""
    prov = LabelProvenance("hand", "main", "none", "logprob", 2, "t")
    row = {
        "qid": "q0",
        "split": "test",
        "row": 0,
        "status": "labelled",
        "skip_reason": None,
        "grid_n": 2,
        "subject": "bio",
        "letters": ["A", "B"],
        "answer": 0,
        "cell_boxes": [[0, 0, 1, 1]] * 4,
        "cell_logprobs": [[-0.1, -2.0]] * 4,
        "cell_pred": ["A", "B", "B", "B"],
        "cell_correct": [True, False, False, False],
        "cell_p_correct": [0.5] * 4,
        "base_logprobs": [-2.0, -0.1],
        "base_pred": "B",
        "base_correct": False,
        "base_p_correct": 0.5,
        "evaluator": "hand",
        "revision": "main",
        "dtype": "none",
        "mode": "logprob",
        "template_hash": "t",
        "resume_key": prov.resume_key,
    }
    writer = ShardWriter(tmp_path / "labels", prov.resume_key)
    writer.add([row])
    writer.flush()
    write_info(tmp_path / "labels", LabelSetInfo(prov, dataset="unused", splits=["test"]))
    return tmp_path / "labels"


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--scorer", "trained=./runs/no-such/export"], "no such folder"),
        (["--scorer", "trained=runs/no-such/export"], "no such folder"),  # 2 '/': not a hub id
        (["--scorer", "trained"], "NAME=PATH"),
        (["--dataset", "./demo_out/synthtic"], "--dataset ./demo_out/synthtic: no such folder"),
        (["--k", "0"], "--k"),
        (["--k", "9"], "--k 9: a 2x2 grid"),  # known once the label set's grid is read
        (["--split", "validation"], "pick one with --split"),
        (["--batch-size", "x"], "--batch-size"),  # argparse's own error, also one line
    ],
)
def test_mistakes_are_one_line(capsys, label_set, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, ["--labels-dir", str(label_set), *argv])
    assert says in err, err
    assert not (tmp_path / "eval").exists()


def test_a_mistyped_labels_dir_says_so(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, ["--labels-dir", "demo_out/lables"])
    assert "--labels-dir demo_out/lables: no such folder" in err
    assert "semclip-label" in err  # what to do next
    err = one_line_error(capsys, [])
    assert "--labels-dir" in err and "required" in err


def test_scorer_free_rows_run(capsys, label_set, tmp_path):
    assert main(["--labels-dir", str(label_set), "--out-dir", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "| oracle | 100.0 |" in printed and "- random crop: expected accuracy" in printed


def test_help_shows_defaults_and_examples_fast(heavy_imports_for_help):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, "-m", "semclip.evaluate", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    text = done.stdout
    for expected in (
        "(default: test)",
        "(default: 32)",
        "(default: eval)",
        "(default: 1)",
        "examples:",
        "--scorer zero-shot=openai/clip-vit-large-patch14",
        "random crop     expected accuracy of a uniformly random cell",
    ):
        assert expected in text, expected
    assert heavy_imports_for_help("semclip.evaluate") == []


@pytest.mark.parametrize("name", ["bench_labeling", "bench_selector", "bench_training"])
def test_benchmark_help_says_what_the_ways_are(name):
    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    )
    if name == "bench_labeling":
        assert "(a) per-pair generate()" in done.stdout
        assert "(c) one-forward letter scoring with prefix sharing" in done.stdout
    else:
        assert "one at a time" in done.stdout or "per triple" in done.stdout
    assert "``" not in done.stdout


def test_table_has_one_unit_a_column_and_a_legend():
    from semclip.evaluation.tables import stored_table

    results = {
        "split": "test",
        "questions": 4,
        "rankable_questions": 2,
        "evaluator": "hand",
        "grid_n": 2,
        "accuracy": {"random crop": 0.25, "oracle": 1.0, "trained": 0.5, "trained top-2 any": 0.75},
        "per_subject": {m: {"bio": 0.5} for m in ("random crop", "oracle", "trained")}
        | {"trained top-2 any": {"bio": 0.75}},
        "ranking": {"trained": {"hit_rate": 0.5, "mrr": 0.75}},
        "scorers": {"trained": "runs/x/export"},
    }
    table = stored_table(results)
    assert "| Method | Accuracy (%) | Hit rate (%) | MRR (0-1) |" in table
    assert "| trained | 50.0 | 50.0 | 0.750 |" in table
    assert "- random crop: expected accuracy of a uniformly random cell" in table
    assert "- oracle: some cell is right" in table
    assert "- trained: the cell scorer `trained` (`runs/x/export`) ranks highest" in table
    assert "- trained top-2 any: some of the 2 cells" in table


@pytest.mark.parametrize(
    "scorer", ["oracle=openai/clip", "Random Crop=openai/clip", "x top-2 any=openai/clip"]
)
def test_a_scorer_named_like_a_row_is_refused(capsys, label_set, scorer):
    """A scorer called like a baseline row would share its key in the table: refused."""
    err = one_line_error(capsys, ["--labels-dir", str(label_set), "--scorer", scorer])
    assert "collide" in err and "another NAME" in err


def test_a_vlm_scorer_named_random_is_refused(capsys, tmp_path):
    err = one_line_error(
        capsys, ["--vlm", str(tmp_path), "--dataset", str(tmp_path), "--scorer", "random=random:1"]
    )
    assert "--scorer random=...: 'random' would collide" in err


def test_library_configs_refuse_colliding_names_too(label_set):
    from semclip.evaluation.stored import EvalConfig, evaluate
    from semclip.evaluation.vlm_loop import VLMEvalConfig
    from semclip.vlm.config import VLMConfig

    with pytest.raises(ValueError, match="collide"):
        evaluate(EvalConfig(labels_dir=str(label_set), scorers={"oracle": "x"}))
    with pytest.raises(ValueError, match="collide"):
        VLMEvalConfig(VLMConfig(), dataset="d", scorers={"random": "random:1"}).validate()
