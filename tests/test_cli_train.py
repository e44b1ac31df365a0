"""semclip-train as a new user meets it: one-line mistakes, epoch lines in logs, help, reruns."""

import json
import stat
import time
from pathlib import Path

import pytest

from semclip.train import main

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "train_demo.yaml")
PAPER_CONFIG = str(ROOT / "configs" / "train_paper.yaml")


def fit_args(root, labels, model, *extra) -> list[str]:
    return [
        "fit",
        "--config",
        DEMO_CONFIG,
        f"--trainer.default_root_dir={root}",
        "--trainer.max_epochs=1",
        f"--model.model={model}",
        f"--data.labels_dir={labels}",
        "--data.batch_size=8",
        *extra,
    ]


def one_line_error(argv, capsys) -> str:
    start = time.monotonic()
    assert main(argv) == 2
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert elapsed < 5, elapsed
    return err[0]


def test_offline_paper_config_names_the_model(small_labels, capsys):
    line = one_line_error(
        ["fit", "--config", PAPER_CONFIG, f"--data.labels_dir={small_labels}"], capsys
    )
    assert "openai/clip-vit-large-patch14" in line and "HF_HUB_OFFLINE" in line


def test_missing_model_folder_is_no_such_folder(small_labels, tmp_path, capsys):
    line = one_line_error(fit_args(tmp_path, small_labels, "demo_out/tiny-clp/"), capsys)
    assert "--model.model" in line and "no such folder" in line


@pytest.mark.parametrize("make", [True, False], ids=["empty", "missing"])
def test_labels_dir_without_shards(make, tiny_clip_dir, tmp_path, capsys):
    labels = tmp_path / "labels"
    if make:
        labels.mkdir()
    line = one_line_error(fit_args(tmp_path / "run", labels, tiny_clip_dir), capsys)
    assert "--data.labels_dir" in line and str(labels) in line and "label.py" in line


def test_export_of_missing_checkpoint(tmp_path, capsys):
    line = one_line_error(["export", "--ckpt", str(tmp_path / "x.ckpt"), "--out", "o"], capsys)
    assert "no such file" in line


def test_fit_logs_a_line_per_epoch_exports_and_refuses_a_silent_rerun(
    small_labels, tiny_clip_dir, tmp_path, capsys
):
    root = tmp_path / "run"
    assert main(fit_args(root, small_labels, tiny_clip_dir, "--trainer.max_epochs=2")) == 0
    out = capsys.readouterr().out  # captured: not a terminal
    epochs = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("train/loss" in line and "val/hit_rate" in line for line in epochs)
    assert f"exported the scorer to {root / 'export'}" in out
    assert "\r" not in out  # no progress-bar frames in a log

    # logs follow --trainer.default_root_dir, also with the demo config
    assert list((root / "logs").rglob("metrics.csv"))
    export = root / "export"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in export.iterdir()}
    assert modes["model.safetensors"] == modes["config.json"], modes
    card = (export / "README.md").read_text()
    config = json.loads(card.split("```json\n")[1].split("```")[0])
    assert not [k for part in config.values() for k in part if k.startswith("_")], config

    # a second fit into the same folder: one line, nothing written
    before = sorted(p.name for p in (root / "checkpoints").iterdir())
    line = one_line_error(fit_args(root, small_labels, tiny_clip_dir), capsys)
    assert "--ckpt_path last" in line and "--overwrite" in line
    assert sorted(p.name for p in (root / "checkpoints").iterdir()) == before

    # --overwrite true: a fresh run, no -v1 beside the old checkpoints
    assert main(fit_args(root, small_labels, tiny_clip_dir, "--overwrite=true")) == 0
    names = sorted(p.name for p in (root / "checkpoints").iterdir())
    assert not [n for n in names if "-v1" in n], names
    assert "last.ckpt" in names and len(names) == 2


def test_help_lists_subcommands_and_is_fast(capsys, heavy_imports_for_help):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "export", "push"):
        assert f"    {name} " in out, name
    assert "predict" not in out
    # in a fresh interpreter: no Lightning, torch or transformers to answer --help
    assert heavy_imports_for_help("semclip.train") == []


def test_no_subcommand_is_one_line(capsys):
    line = one_line_error([], capsys)
    assert "fit" in line and "export" in line and "push" in line


def test_predict_and_typos_are_not_offered(capsys):
    for argv in (["predict", "--help"], ["fitt"]):
        line = one_line_error(argv, capsys)
        assert "unknown subcommand" in line and "fit, validate, test, export, push" in line


@pytest.mark.parametrize(
    "mistake, expected",
    [
        (["--data.batchsize", "4"], "unrecognized arguments: --data.batchsize 4"),
        (["--model.margin", "abc"], 'Parser key "model.margin": Expected a'),
        (["--config", "no/such.yaml"], "File does not exist"),
    ],
)
def test_flag_mistakes_are_one_line_not_the_usage(small_labels, mistake, expected, capsys):
    from semclip.train import main

    assert main(["fit", "--data.labels_dir", small_labels, *mistake]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "seed set to" not in line]
    assert len(lines) == 1 and lines[0].startswith("semclip-train: error:"), err
    assert expected in lines[0] and "fit --help" in lines[0]
