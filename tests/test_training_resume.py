"""``last.ckpt`` is the last finished epoch (a resume redoes nothing), and a run without
validation is refused with one line when the share comes out empty, or quiet when asked for."""

import logging
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch.callbacks import model_checkpoint

from semclip.models.scorer import RelevanceScorer
from semclip.train import main
from semclip.training.export import load_checkpoint
from semclip.training.module import ScorerModule

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "train_demo.yaml")


def fit_args(root, labels, model, *extra) -> list[str]:
    return [
        "fit",
        "--config",
        DEMO_CONFIG,
        f"--trainer.default_root_dir={root}",
        "--trainer.logger=false",
        f"--model.model={model}",
        f"--data.labels_dir={labels}",
        "--data.batch_size=16",  # one batch an epoch
        *extra,
    ]


def epoch_of(path: Path) -> int:
    return int(load_checkpoint(path)["epoch"])


def epoch_lines(out: str) -> list[str]:
    """The ``N/M`` of each line EpochLines printed (stdout is captured: not a terminal)."""
    return [line.split()[1] for line in out.splitlines() if line.startswith("epoch ")]


def test_last_checkpoint_is_the_final_epoch_and_a_resume_redoes_nothing(
    small_labels, tiny_clip_dir, tmp_path, capsys
):
    root = tmp_path / "run"
    checkpoints = root / "checkpoints"
    # lr 0: the weights never move, so no epoch after the first beats its hit rate
    frozen = "--model.lr=0"
    assert main(fit_args(root, small_labels, tiny_clip_dir, frozen, "--trainer.max_epochs=2")) == 0
    assert epoch_lines(capsys.readouterr().out) == ["1/2", "2/2"]
    (best,) = checkpoints.glob("best-*.ckpt")
    assert epoch_of(best) == 0
    assert epoch_of(checkpoints / "last.ckpt") == 1  # Lightning's save_last would say 0

    # the run stopped after a non-improving epoch; the resume runs only the epoch still to do
    resume = f"--ckpt_path={checkpoints / 'last.ckpt'}"
    more = fit_args(root, small_labels, tiny_clip_dir, frozen, "--trainer.max_epochs=3", resume)
    assert main(more) == 0
    assert epoch_lines(capsys.readouterr().out) == ["3/3"]
    assert epoch_of(checkpoints / "last.ckpt") == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == [best.name, "last.ckpt"]
    assert (root / "export" / "model.safetensors").exists()


def test_an_empty_validation_share_is_one_line(small_labels, tiny_clip_dir, tmp_path, capsys):
    root = tmp_path / "run"
    # a share this small holds out none of the split's ten rankable questions (seeded hash)
    argv = fit_args(root, small_labels, tiny_clip_dir, "--data.val_fraction=1e-06")
    start = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - start < 10  # stopped before any epoch
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    line = err[0]
    assert line.startswith("semclip-train: error: --data.val_fraction 1e-06 ")
    assert "--data.val_split" in line and "--data.val_fraction 0" in line
    assert not list(root.rglob("*.ckpt"))


def test_validate_without_validation_is_one_line(small_labels, tiny_clip_dir, tmp_path, capsys):
    argv = fit_args(tmp_path, small_labels, tiny_clip_dir, "--data.val_fraction=0")
    assert main(["validate", *argv[1:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data.val_fraction" in err[0] and "--data.val_split" in err[0], err


def test_without_validation_the_last_epoch_is_kept_and_exported(
    small_labels, tiny_clip_dir, tmp_path, capsys, caplog
):
    root = tmp_path / "run"
    argv = fit_args(
        root, small_labels, tiny_clip_dir, "--trainer.max_epochs=2", "--data.val_fraction=0"
    )
    model_checkpoint.warning_cache.clear()  # a warning given earlier in this process counts too
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        assert main(argv) == 0
    out, err = capsys.readouterr()
    said = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    said += err.splitlines()
    noise = ("monitored key", "Total length", "val_dataloader", "val loop")
    assert not [s for s in said if any(word in s for word in noise)], said
    lines = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert epoch_lines(out) == ["1/2", "2/2"] and not [x for x in lines if "val/" in x], lines

    checkpoints = root / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last.ckpt"]
    assert epoch_of(checkpoints / "last.ckpt") == 1
    # the export is the last epoch's weights
    last = ScorerModule.load_from_checkpoint(checkpoints / "last.ckpt").scorer.model.state_dict()
    exported = RelevanceScorer.from_pretrained(root / "export").model.state_dict()
    assert last.keys() == exported.keys()
    assert all(torch.equal(last[k], exported[k]) for k in last)
