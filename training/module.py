"""The LightningModule: scores a batch of questions against their cells and ranks them.

Scores and losses are fp32 even under ``bf16-mixed``: the scorer computes its logit-scaled cosine
outside autocast, and the losses cast what they get.
"""

from __future__ import annotations

import logging
import math

import lightning.pytorch as pl
import torch
from torchmetrics import MeanMetric

from semclip.evaluation.metrics import RankingMetrics
from semclip.models.scorer import DEFAULT_SCORER, RelevanceScorer
from semclip.training.losses import build_loss

logger = logging.getLogger(__name__)


class ScorerModule(pl.LightningModule):
    """Fine-tunes a dual encoder so that positive cells outscore negative ones."""

    def __init__(
        self,
        model: str = DEFAULT_SCORER,
        revision: str | None = None,
        text_mode: str = "question",
        loss: str = "margin",
        margin: float = 1.0,
        lr: float = 5e-6,
        weight_decay: float = 0.1,
        warmup_steps: int = 0,
        freeze_text: bool = False,
        freeze_vision: bool = False,
        gradient_checkpointing: bool = False,
    ) -> None:
        """
        Args:
            model: Hub id or folder of the dual encoder to fine-tune (CLIP, SigLIP).
            revision: Hub revision of ``model``.
            text_mode: What the scorer reads: question, question_hint, question_choices, full.
            loss: margin (the paper's), listwise or soft_kl.
            margin: Margin of the ranking loss, in logit-scaled cosine units.
            lr: Peak learning rate of AdamW (paper: 5e-6).
            weight_decay: AdamW weight decay (not applied to biases, norms, logit scale).
            warmup_steps: Linear warm-up steps before the cosine decay.
            freeze_text: Keep the text tower (and its projection) fixed.
            freeze_vision: Keep the vision tower (and its projection) fixed.
            gradient_checkpointing: Trade compute for memory in both towers.
        """
        super().__init__()
        self.save_hyperparameters()
        self.criterion = build_loss(loss, margin)
        self.val_metrics = RankingMetrics()
        self.val_loss = MeanMetric()
        self.test_metrics = RankingMetrics()
        try:
            self.scorer: RelevanceScorer = RelevanceScorer.from_pretrained(
                model, revision=revision, text_mode=text_mode
            )
        except OSError as err:  # one line that names the flag (a missing folder, offline)
            raise OSError(f"--model.model {str(err).splitlines()[0]}") from err
        self.scorer.model.train()  # from_pretrained returns eval mode; Lightning would keep it
        self._freeze()
        if gradient_checkpointing:
            self.scorer.model.gradient_checkpointing_enable()
        self.truncated_texts = 0
        self.last_val_metrics: dict[str, float] = {}

    def _freeze(self) -> None:
        for name, param in self.scorer.model.named_parameters():
            text = name.startswith(("text_model", "text_projection"))
            vision = name.startswith(("vision_model", "visual_projection"))
            if (text and self.hparams.freeze_text) or (vision and self.hparams.freeze_vision):
                param.requires_grad_(False)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(B, C)`` fp32 logit-scaled cosine of each question against its own cells."""
        scores = self.scorer.grouped_scores(
            batch["input_ids"], batch["attention_mask"], batch["pixel_values"]
        )
        return scores.float()

    def setup(self, stage: str) -> None:
        """The scorer learns for the grid of the label set it is trained on: the datamodule
        says which (Lightning sets the datamodule up first); the export writes it."""
        datamodule = self.trainer.datamodule if self._trainer is not None else None
        grid = getattr(datamodule, "grid", None)
        if grid is not None:
            self.scorer.grid = grid

    def _count_truncated(self, batch) -> None:
        self.truncated_texts += int(batch.get("num_truncated", 0))

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        self._count_truncated(batch)
        scores = self(batch)
        losses = self.criterion(scores, batch["labels"], batch["soft"])
        total = sum(losses.values())
        size = scores.shape[0]
        for name, value in losses.items():
            self.log(f"train/{name}", value, batch_size=size)
        self.log("train/loss", total, prog_bar=True, batch_size=size)
        self.log("train/logit_scale", self.scorer.logit_scale.detach(), batch_size=size)
        return total

    def validation_step(self, batch, batch_idx: int) -> None:
        scores = self(batch)
        losses = self.criterion(scores, batch["labels"], batch["soft"])
        # a metric, synced once at epoch end: ranks may hold different numbers of batches
        self.val_loss.update(sum(losses.values()), weight=scores.shape[0])
        self.val_metrics.update(scores, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        computed = self.val_metrics.compute()
        for name, value in computed.items():
            self.log(f"val/{name}", value, prog_bar=name == "hit_rate")
        self.log("val/loss", self.val_loss.compute())
        self.last_val_metrics = {f"val/{k}": float(v) for k, v in computed.items()}
        self.val_metrics.reset()
        self.val_loss.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # the metrics of the validation that decided this checkpoint, for the model card
        checkpoint["semclip_val_metrics"] = dict(self.last_val_metrics)
        # what the export writes to semclip_scorer.json (the text mode is a hyper-parameter too)
        checkpoint["semclip_scorer"] = self.scorer.settings()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("semclip_scorer") or {}
        if saved.get("grid") is not None:
            self.scorer.grid = int(saved["grid"])
        if saved.get("alpha"):
            self.scorer.alpha = str(saved["alpha"])

    def test_step(self, batch, batch_idx: int) -> None:
        self.test_metrics.update(self(batch), batch["labels"])

    def on_test_epoch_end(self) -> None:
        for name, value in self.test_metrics.compute().items():
            self.log(f"test/{name}", value)
        self.test_metrics.reset()

    def on_train_epoch_end(self) -> None:
        if self.truncated_texts:
            logger.warning("%d training texts were truncated so far", self.truncated_texts)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, param in self.scorer.model.named_parameters():
            if not param.requires_grad:
                continue
            flat = param.ndim < 2 or "logit_scale" in name or "norm" in name
            (no_decay if flat else decay).append(param)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": self.hparams.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=self.hparams.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = min(self.hparams.warmup_steps, total - 1)

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
