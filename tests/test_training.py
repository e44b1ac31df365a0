"""Scorer training through the real entry point: learning, resume parity, export round trip."""

from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from torch.testing import assert_close

from semclip.models.scorer import RelevanceScorer, scorer_text
from semclip.training.cli import ScorerCLI
from semclip.training.data import ScorerDataModule, load_groups
from semclip.training.module import ScorerModule

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = str(ROOT / "configs" / "train_demo.yaml")


def cli(root, labels, model, *extra):
    args = [
        "--config",
        DEMO_CONFIG,
        f"--trainer.default_root_dir={root}",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        f"--model.model={model}",
        f"--data.labels_dir={labels}",
        "--data.batch_size=4",
        *extra,
    ]
    return ScorerCLI(ScorerModule, ScorerDataModule, args=args, run=False)


def weights(module):
    return {k: v.detach().clone() for k, v in module.scorer.model.state_dict().items()}


class Killed(RuntimeError):
    pass


class KillAtEpoch(__import__("lightning").pytorch.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch:
            raise Killed("killed mid-run")


@pytest.mark.slow
def test_resume_gives_identical_weights(small_labels, tiny_clip_dir, tmp_path):
    straight = cli(tmp_path / "a", small_labels, tiny_clip_dir, "--trainer.max_epochs=2")
    straight.trainer.fit(straight.model, straight.datamodule)
    expected = weights(straight.model)

    first = cli(tmp_path / "b", small_labels, tiny_clip_dir, "--trainer.max_epochs=2")
    first.trainer.callbacks.append(KillAtEpoch(1))
    with pytest.raises(Killed):
        first.trainer.fit(first.model, first.datamodule)
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").exists()

    resumed = cli(tmp_path / "b", small_labels, tiny_clip_dir, "--trainer.max_epochs=2")
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path="last")
    got = weights(resumed.model)
    assert got.keys() == expected.keys()
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    # and the straight run really trained: weights moved from the random start
    start = weights(ScorerModule(model=tiny_clip_dir))
    assert any(not torch.equal(start[k], expected[k]) for k in expected)


def test_export_round_trip_and_card(small_labels, tiny_clip_dir, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoProcessor, CLIPModel

    run = cli(tmp_path, small_labels, tiny_clip_dir, "--trainer.max_epochs=1")
    run.trainer.fit(run.model, run.datamodule)
    export = tmp_path / "export"
    assert (export / "model.safetensors").exists() and (export / "README.md").exists()

    scorer = RelevanceScorer.from_pretrained(export)
    images = [Image.effect_noise((40, 40), 50 + 10 * i).convert("RGB") for i in range(3)]
    texts = ["What color is the star?", "What color is the ring?"]
    ours = scorer.score(texts, images)
    plain = CLIPModel.from_pretrained(export).eval()
    processor = AutoProcessor.from_pretrained(export, backend="pil")  # the scorer's backend
    with torch.no_grad():
        out = plain(**processor(text=texts, images=images, return_tensors="pt", padding=True))
    assert_close(ours, out.logits_per_text, atol=1e-4, rtol=1e-4)
    # the exported weights are the best checkpoint's, not the random start
    best = ScorerModule.load_from_checkpoint(run.trainer.checkpoint_callback.best_model_path)
    assert_close(best.scorer.score(texts, images), ours)

    card = ModelCard.load(export / "README.md")
    meta = card.data.to_dict()
    assert meta["base_model"] == tiny_clip_dir
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "zero-shot-image-classification"
    text = card.text
    for needle in (
        "semclip/simulated",
        "grid: 2 x 2",
        "resume key",
        '"lr"',
        "val/hit_rate",
        "RelevanceScorer.from_pretrained",
        "CLIPModel.from_pretrained",
    ):
        assert needle in text, needle


def test_saved_config_holds_the_run(small_labels, tiny_clip_dir, tmp_path, monkeypatch):
    from semclip.train import main

    monkeypatch.setenv("HF_TOKEN", "hf_secret_token_never_to_be_written")
    root = tmp_path / "run"
    assert (
        main(
            [
                "fit",
                "--config",
                DEMO_CONFIG,
                f"--trainer.default_root_dir={root}",
                "--trainer.logger.init_args.save_dir",
                str(root),
                "--trainer.max_epochs=1",
                "--trainer.enable_progress_bar=false",
                f"--model.model={tiny_clip_dir}",
                f"--data.labels_dir={small_labels}",
                "--data.batch_size=8",
            ]
        )
        == 0
    )
    (saved,) = root.rglob("config.yaml")
    config = yaml.safe_load(saved.read_text())
    assert config["model"]["model"] == tiny_clip_dir and config["trainer"]["max_epochs"] == 1
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".yaml", ".md", ".json", ".csv"):
            assert "hf_secret_token" not in path.read_text(errors="ignore"), path


def test_groups_leave_out_unrankable_questions(small_labels):
    groups, left_out, _ = load_groups(small_labels, "train")
    assert all(any(g.labels) and not all(g.labels) for g in groups)
    assert len(groups) + sum(left_out.values()) == 24
    assert set(left_out) <= {"no_positive", "no_negative"}


def test_grouped_scores_equal_per_pair_scores(tiny_clip_dir):
    scorer = RelevanceScorer.from_pretrained(tiny_clip_dir)
    texts = ["What color is the star?", "What color is the bar?"]
    cells = [Image.effect_noise((30, 30), 40 + i).convert("RGB") for i in range(8)]
    tokens = scorer.tokenize(texts)
    with torch.no_grad():
        grouped = scorer.grouped_scores(
            tokens["input_ids"], tokens["attention_mask"], scorer.pixel_values(cells)
        )
    per_pair = torch.tensor(
        [[scorer.score([texts[b]], [cells[4 * b + c]]).item() for c in range(4)] for b in range(2)]
    )
    assert_close(grouped, per_pair, atol=1e-5, rtol=1e-5)
    # the grouped margin loss is the mean hinge over the same triples, one at a time
    from semclip.training.losses import MarginRankingLoss

    labels = torch.tensor([[True, False, False, True], [False, True, False, False]])
    triples = [
        (b, p, n)
        for b in range(2)
        for p in range(4)
        for n in range(4)
        if labels[b, p] and not labels[b, n]
    ]
    by_triple = torch.stack(
        [torch.clamp(1.0 - (per_pair[b, p] - per_pair[b, n]), min=0) for b, p, n in triples]
    ).mean()
    assert_close(
        MarginRankingLoss(1.0)(grouped, labels)["margin_loss"], by_triple, atol=1e-5, rtol=1e-5
    )


def test_long_text_is_truncated_and_counted(tiny_clip_dir):
    scorer = RelevanceScorer.from_pretrained(tiny_clip_dir, text_mode="full")
    text = scorer_text(
        "What color is the star?", hint="red " * 100, choices=["a", "b"], mode="full"
    )
    tokens = scorer.tokenize([text, "short"])
    assert tokens["input_ids"].shape[1] == 77
    assert scorer.preprocess.truncated_texts == 1 and int(tokens["num_truncated"]) == 1
    image = Image.new("RGB", (20, 20))
    assert torch.isfinite(scorer.score([text], [image])).all()


def test_freezing_a_tower(tiny_clip_dir):
    module = ScorerModule(model=tiny_clip_dir, freeze_text=True)
    params = dict(module.scorer.model.named_parameters())
    assert not params["text_projection.weight"].requires_grad
    assert params["visual_projection.weight"].requires_grad
    assert module.scorer.model.training  # from_pretrained gave eval mode; training needs train


@pytest.mark.slow
def test_two_processes_validate_every_question_once(small_labels, tiny_clip_dir, tmp_path):
    from semclip.training.data import UnpaddedDistributedSampler

    shards = [list(UnpaddedDistributedSampler(range(7), 2, r)) for r in range(2)]
    assert shards == [[0, 2, 4, 6], [1, 3, 5]]
    run = cli(
        tmp_path,
        small_labels,
        tiny_clip_dir,
        "--trainer.max_epochs=1",
        "--trainer.devices=2",
        "--trainer.strategy=ddp_spawn",
    )
    run.trainer.fit(run.model, run.datamodule)
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "export" / "model.safetensors").exists()


def test_scores_and_loss_stay_fp32_under_bf16_autocast(tiny_clip_dir):
    import math

    module = ScorerModule(model=tiny_clip_dir)
    scorer = module.scorer
    with torch.no_grad():
        scorer.model.logit_scale.fill_(math.log(100.0))
    texts = ["What color is the star?", "What color is the bar?"]
    cells = [Image.effect_noise((30, 30), 40 + i).convert("RGB") for i in range(8)]
    tokens = scorer.tokenize(texts)
    batch = {
        "input_ids": tokens["input_ids"],
        "attention_mask": tokens["attention_mask"],
        "pixel_values": scorer.pixel_values(cells),
    }
    labels = torch.tensor([[True, False, False, True], [False, True, False, False]])
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # as bf16-mixed runs
        scores = module(batch)
        text = scorer.encode_text(batch["input_ids"], batch["attention_mask"])
        images = scorer.encode_images(batch["pixel_values"]).view(2, 4, -1)
        loss = module.criterion(scores, labels, None)["margin_loss"]
    assert text.dtype == images.dtype == scores.dtype == loss.dtype == torch.float32
    expected = scorer.logit_scale * torch.einsum("bd,bcd->bc", text, images)  # fp32, no autocast
    assert_close(scores, expected, atol=1e-5, rtol=1e-6)
    assert (scores != scores.bfloat16().float()).any()  # not on bf16's grid of values
    assert module.scorer.grid is None  # a forward guesses no grid from a shape


def test_the_grid_comes_from_the_label_set(small_labels, tiny_clip_dir):
    """The datamodule gives the module the label set's grid before any batch is seen."""
    import lightning.pytorch as pl

    module = ScorerModule(model=tiny_clip_dir)
    datamodule = ScorerDataModule(labels_dir=small_labels, batch_size=2)
    trainer = pl.Trainer(
        accelerator="cpu", max_epochs=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule)  # no epoch: no batch to guess from
    assert datamodule.grid == module.scorer.grid == 2


def test_export_keeps_the_text_mode_and_grid(small_labels, tiny_clip_dir, tmp_path):
    import json

    from semclip.models.scorer import SCORER_SETTINGS
    from semclip.models.selector import Selector

    run = cli(
        tmp_path, small_labels, tiny_clip_dir, "--trainer.max_epochs=1", "--model.text_mode=full"
    )
    run.trainer.fit(run.model, run.datamodule)
    export = tmp_path / "export"
    saved = json.loads((export / SCORER_SETTINGS).read_text())
    assert saved == {"text_mode": "full", "grid": 2, "alpha": "drop"}
    selector = Selector.from_pretrained(export, device="cpu")
    assert selector.scorer.text_mode == "full" and selector.scorer.grid == selector.grid == 2
    # the checkpoint carries the settings too: a later export gives the same file
    again = tmp_path / "again"
    from semclip.training.export import export_checkpoint

    export_checkpoint(tmp_path / "checkpoints" / "last.ckpt", again)
    assert json.loads((again / SCORER_SETTINGS).read_text()) == saved
    override = Selector.from_pretrained(export, device="cpu", text_mode="question")
    assert override.scorer.text_mode == "question"


def touch_marker(path):
    Path(path).touch()


class Payload:
    """Unpickling this would create ``marker``: what an unsafe load would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (touch_marker, (str(self.marker),))


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path, capsys):
    from semclip.train import main
    from semclip.training.export import export_checkpoint

    marker = tmp_path / "code-ran"
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "extra": Payload(marker)}, ckpt)
    with pytest.raises(ValueError) as err:
        export_checkpoint(ckpt, tmp_path / "out")
    message = str(err.value)
    assert "\n" not in message and "refused" in message and "touch_marker" in message
    assert not marker.exists() and not (tmp_path / "out").exists()
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and str(ckpt) in lines[0]
    assert not marker.exists()
