"""The README's first command, end to end: data, labels, training, evaluation, pictures."""

import json

import pytest
import torch

from semclip.demo import main


@pytest.mark.slow
def test_demo_learns_and_beats_the_baselines(tmp_path, capsys):
    """Defaults of the demo (n = 2, chance 0.25): a tiny CLIP from scratch, trained on simulated
    labels, reaches >= 0.8 top-1 hit rate on held-out questions in about two CPU minutes, and beats
    random and zero-shot selection."""
    out = tmp_path / "demo"
    assert main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "[4/4]" in printed and "| trained scorer |" in printed
    for picture in ("synthetic_grids.png", "selections.png", "eval/accuracy.png"):
        assert (out / picture).stat().st_size > 1000, picture
    (best,) = (out / "train" / "checkpoints").glob("best-*.ckpt")
    val = torch.load(best, map_location="cpu", weights_only=False)["semclip_val_metrics"]
    assert val["val/hit_rate"] >= 0.8, val  # held out from training by question id
    results = json.loads((out / "eval" / "results.json").read_text())
    acc, rank = results["accuracy"], results["ranking"]
    assert rank["trained scorer"]["hit_rate"] >= 0.8  # the test split: never seen in training
    assert acc["trained scorer"] > acc["random crop"] + 0.3
    assert acc["trained scorer"] > acc["zero-shot (untrained CLIP)"] + 0.3
    assert acc["trained scorer"] >= acc["oracle"] - 0.15
    assert (out / "train" / "export" / "README.md").exists()


@pytest.mark.slow
def test_demo_real_vlm_code_path(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = [
        "--out",
        str(out),
        "--evaluator",
        "tiny-llava",
        "--train-questions",
        "12",
        "--test-questions",
        "8",
        "--tiny-llava-questions",
        "6",
        "--epochs",
        "1",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "labels from the tiny-llava evaluator" in printed
    rows = json.loads((out / "eval" / "results.json").read_text())
    assert rows["questions"] == 6 and rows["evaluator"].endswith("tiny-llava")
