"""A user's mistake is one line and exit code 2 in every entry point; --debug or SEMCLIP_DEBUG=1
adds the traceback; a bug keeps its traceback."""

from __future__ import annotations

import pytest

from semclip.answer import main as answer_main
from semclip.evaluate import main as evaluate_main
from semclip.label import main as label_main
from semclip.train import main as train_main

MISTAKES = {
    "semclip-label": (label_main, ["--dataset", "./no/such/folder", "--evaluator", "simulated"]),
    "semclip-train": (train_main, ["fit", "--data.labels_dir", "./no/such/labels"]),
    "semclip-evaluate": (evaluate_main, ["--labels-dir", "./no/such/labels"]),
    "semclip-answer": (
        answer_main,
        ["--vlm", "x/y", "--image", "./no.png", "--question", "q", "--choices", "a"],
    ),  # fmt: skip
}


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch):
    monkeypatch.delenv("SEMCLIP_DEBUG", raising=False)


@pytest.mark.parametrize("prog", list(MISTAKES))
def test_a_mistake_is_one_line_and_debug_shows_the_traceback(prog, capsys, monkeypatch):
    main, argv = MISTAKES[prog]
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "seed set to" not in line]  # Lightning's note
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error:"), err
    assert "no such" in lines[0]
    assert main([*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and f"{prog}: error:" in err
    monkeypatch.setenv("SEMCLIP_DEBUG", "0")
    assert main(argv) == 2 and "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("SEMCLIP_DEBUG", "1")
    assert main(argv) == 2 and "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(monkeypatch, tmp_path):
    """An error that is not a user's (here a KeyError from inside the job) is not swallowed."""
    import semclip.labeling.run as run

    def broken(config):
        raise KeyError("a bug")

    monkeypatch.setattr(run, "run_labeling", broken)
    from semclip.data.synthetic import SyntheticConfig, save_synthetic

    save_synthetic(str(tmp_path / "syn"), SyntheticConfig(grid=2, image_size=32), {"train": 1})
    with pytest.raises(KeyError, match="a bug"):
        label_main(["--dataset", str(tmp_path / "syn"), "--evaluator", "simulated",
                    "--output-dir", str(tmp_path / "out")])  # fmt: skip


JUDGE = """
from semclip.data.labels import LabelProvenance
from semclip.data.prompts import template_hash
from semclip.labeling.evaluator import ItemScores


class Always:
    def __init__(self, config, letter="A"):
        self.letter = letter
        self.provenance = LabelProvenance(
            f"always-{letter}", "v1", "none", "answers", config.grid,
            template_hash(config.vlm.template),
        )

    def score(self, items):
        return [ItemScores(cell_answers=[self.letter] * len(it.cells), base_answer=self.letter)
                for it in items]
"""


def test_your_own_evaluator_beside_you_with_its_own_settings(synthetic_dir, tmp_path, monkeypatch,
                                                             capsys):  # fmt: skip
    """`--evaluator module:Class` is found in the current folder (as `python -m` would) and gets
    `--evaluator-config` (inline or a file) as keyword arguments."""
    from semclip.data.labels import read_labels

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))  # undo the cwd it adds
    (tmp_path / "semclip_judges_here.py").write_text(JUDGE)
    base = ["--dataset", synthetic_dir, "--splits", "test", "--limit", "3", "--accelerator", "cpu",
            "--evaluator", "semclip_judges_here:Always", "--no-progress"]  # fmt: skip
    assert label_main([*base, "--output-dir", "inline", "--evaluator-config", "{letter: B}"]) == 0
    assert {p for r in read_labels("inline", "test").to_pylist() for p in r["cell_pred"]} == {"B"}
    (tmp_path / "judge.yaml").write_text("letter: C\n")
    assert label_main([*base, "--output-dir", "file", "--evaluator-config", "judge.yaml"]) == 0
    assert {p for r in read_labels("file", "test").to_pylist() for p in r["cell_pred"]} == {"C"}
    capsys.readouterr()
    assert label_main([*base, "--output-dir", "bad", "--evaluator-config", "letter"]) == 2
    assert "--evaluator-config letter: not a file nor a mapping" in capsys.readouterr().err
    hf = ["--dataset", synthetic_dir, "--evaluator-config", "{a: 1}"]
    assert label_main(hf) == 2
    assert "is for your own --evaluator" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module, argv, expected",
    [
        ("semclip.label", ["--splits", "train", "tset", "--evaluator", "simulated"],
         "split 'tset' is not in"),
        ("semclip.train", ["fit", "--data.labels_dir", "no/such/labels"],
         "--data.labels_dir: no such folder: no/such/labels"),
    ],
)  # fmt: skip
def test_a_misspelled_split_or_folder_is_answered_before_heavy_imports(
    module, argv, expected, synthetic_dir
):
    """Counted, not timed: the one line comes before torch, Lightning or datasets load."""
    import subprocess
    import sys

    if module == "semclip.label":
        argv = ["--dataset", synthetic_dir, *argv]
    code = (
        "import sys\n"
        f"from {module} import main\n"
        f"code = main({argv!r})\n"
        "names = ('torch', 'lightning', 'datasets', 'transformers')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "print('HEAVY:' + ','.join(heavy), code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "HEAVY: 2", done.stdout + done.stderr
    assert expected in done.stderr and done.stderr.count("\n") == 1


def test_openmp_threads_sleep_only_on_a_busy_machine(monkeypatch):
    import os

    from semclip.cli import threads

    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "busy_cores", lambda: 0.2)
    assert threads.calm_openmp() is None and "OMP_WAIT_POLICY" not in os.environ
    monkeypatch.setattr(threads, "busy_cores", lambda: 1.6)
    assert threads.calm_openmp() == 1.6 and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    assert threads.calm_openmp() is None and os.environ["OMP_WAIT_POLICY"] == "ACTIVE"
    busy = threads.busy_cores()  # the real reading: a share of this machine's cores
    assert busy is None or 0.0 <= busy <= (os.cpu_count() or 1) + 1e-6


@pytest.mark.parametrize(
    "prog, argv, expected",
    [
        ("semclip-demo", ["--test-questions", "-1"], "--test-questions must be >= 1"),
        ("semclip-demo", ["--epochs", "0"], "--epochs must be >= 1"),
        ("semclip-label", ["--evaluator", "simulated", "--mode", "foo"], "--mode must be"),
        ("semclip-label", ["--evaluator", "simulated", "--limit", "-3"], "--limit must be >= 0"),
    ],
)
def test_values_no_command_may_accept(prog, argv, expected, capsys, tmp_path):
    """Bad values are refused in one line even where the run would not use them."""
    from semclip.demo import main as demo_main

    main = {"semclip-demo": demo_main, "semclip-label": label_main}[prog]
    assert main([*argv, "--out" if prog == "semclip-demo" else "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error:") and expected in err
