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
