"""Export a trained scorer checkpoint to a Hugging Face folder with a model card.

The folder holds ``model.safetensors``, ``config.json`` and the processor files, so
``transformers.CLIPModel.from_pretrained(folder)`` (or ``AutoModel``) loads the trained scorer,
plus ``semclip_scorer.json`` (how the scorer was trained to be used: text mode, grid,
transparency convention; ``RelevanceScorer.from_pretrained`` applies it) and ``README.md``: a model
card with base model, label provenance, training config, validation metrics and a usage snippet.

Checkpoints are only ever loaded safely (``torch.load(weights_only=True)``): tensors and plain data;
one that holds any other pickled object is refused.
"""

from __future__ import annotations

import json
import logging
import pathlib
import pickle
import re
import stat
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from huggingface_hub import ModelCard, ModelCardData

from semclip.data.images import ALPHA_MODES
from semclip.data.labels import read_info

logger = logging.getLogger(__name__)

USAGE = """```python
from semclip.models.scorer import RelevanceScorer

scorer = RelevanceScorer.from_pretrained("{repo}")  # its text mode and grid: semclip_scorer.json
scores = scorer.score(["What color is the star?"], crops)  # (1, len(crops)) logit-scaled cosine
best = scores.argmax(dim=1)
```

Plain `transformers` loads it too: `CLIPModel.from_pretrained("{repo}")`."""


def _clean(value: Any) -> Any:
    """JSON-safe copy of hyper-parameters (no tensors, no objects)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _public(hparams: dict[str, Any]) -> dict[str, Any]:
    """The user's hyper-parameters, without internal entries (LightningCLI's ``_instantiator``)."""
    return _clean({k: v for k, v in hparams.items() if not str(k).startswith("_")})


def build_card(
    hparams: dict[str, Any],
    data_hparams: dict[str, Any],
    metrics: dict[str, float],
    repo: str = "path/to/this/folder",
) -> ModelCard:
    """A model card: YAML metadata plus provenance, config, metrics and usage."""
    labels_dir = data_hparams.get("labels_dir")
    info = read_info(labels_dir) if labels_dir else None
    provenance = info.to_dict() if info else {}
    dataset = data_hparams.get("dataset") or provenance.get("dataset")
    card_data = ModelCardData(
        base_model=hparams.get("model"),
        library_name="transformers",
        pipeline_tag="zero-shot-image-classification",
        tags=["semclip", "clip", "visual-selection", "relevance-scorer"],
        datasets=[dataset]
        if dataset and "/" in str(dataset) and not Path(dataset).exists()
        else None,
    )
    label_lines = [
        f"- dataset: `{dataset}`",
        f"- split: `{data_hparams.get('train_split')}`",
    ]
    if info:
        p = info.provenance
        label_lines += [
            f"- evaluator: `{p.evaluator}` (revision `{p.revision}`, dtype `{p.dtype}`, "
            f"mode `{p.mode}`)",
            f"- grid: {p.grid_n} x {p.grid_n}",
            f"- resume key: `{p.resume_key}` (prompt template hash `{p.template_hash}`)",
        ]
    metric_lines = [f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items())]
    config = json.dumps({"model": _public(hparams), "data": _public(data_hparams)}, indent=2)
    content = f"""---
{card_data.to_yaml()}
---

# SemClip relevance scorer

A dual encoder fine-tuned with [semclip](https://arxiv.org/abs/2503.11794) distant supervision to
pick, among the n x n cells of an image, the crop that lets a VLM answer a question.
Base model: `{hparams.get("model")}`.

## Labels

{chr(10).join(label_lines)}

## Training

Loss `{hparams.get("loss")}`, lr {hparams.get("lr")}, text mode `{hparams.get("text_mode")}`
(what the scorer reads; saved in `semclip_scorer.json` with the grid it was trained for).

```json
{config}
```

## Validation

| metric | value |
| --- | --- |
{chr(10).join(metric_lines) or "| (none) | |"}

## Usage

{USAGE.format(repo=repo)}
"""
    return ModelCard(content)


def export_module(
    module: pl.LightningModule,
    out_dir: str | Path,
    data_hparams: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> Path:
    """Save ``module.scorer`` in the HF format with its settings and card."""
    data_hparams = data_hparams or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scorer = module.scorer  # its grid: the label set's, given by the datamodule in training
    if data_hparams.get("alpha") in ALPHA_MODES:  # the images it was trained on
        scorer.alpha = data_hparams["alpha"]
    scorer.save_pretrained(out)
    card = build_card(dict(module.hparams), data_hparams, metrics or {})
    card.save(str(out / "README.md"))
    # safetensors writes the weights 0600 (a temp file renamed); give them the card's mode
    mode = stat.S_IMODE((out / "README.md").stat().st_mode)
    for path in out.glob("*.safetensors"):
        path.chmod(mode)
    return out


#: Classes a checkpoint may hold besides tensors and plain data: hyper-parameters given as paths.
SAFE_GLOBALS = [
    pathlib.PosixPath,
    pathlib.WindowsPath,
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
]


def load_checkpoint(ckpt_path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """A checkpoint's contents, loaded safely (``weights_only=True``) or not at all.

    One that holds any pickled object outside tensors, plain data and :data:`SAFE_GLOBALS` (which
    could run code when unpickled) raises a one-line ``ValueError`` that names the object.
    """
    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(
            f"--ckpt {ckpt_path}: no such file (checkpoints are in "
            "{default_root_dir}/checkpoints, e.g. last.ckpt)"
        )
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            checkpoint = torch.load(
                str(ckpt_path), map_location=map_location, weights_only=True, mmap=True
            )
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL (\S+)", str(err))
        if found:
            raise ValueError(
                f"--ckpt {ckpt_path}: refused: it holds a pickled {found.group(1)}, which is not "
                "tensors or plain data (checkpoints are only loaded with weights_only=True)"
            ) from err
        raise ValueError(f"--ckpt {ckpt_path}: not a readable checkpoint") from err
    except (RuntimeError, ValueError, EOFError, OSError) as err:  # not a torch file, cut off
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"--ckpt {ckpt_path}: not a readable checkpoint ({detail})") from err
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"--ckpt {ckpt_path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path) -> Path:
    """Export a Lightning checkpoint of :class:`ScorerModule` to a HF folder."""
    from semclip.training.module import ScorerModule

    checkpoint = load_checkpoint(ckpt_path)  # refuses unsafe files before Lightning reads them
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        module = ScorerModule.load_from_checkpoint(
            str(ckpt_path), map_location="cpu", weights_only=True
        )
    data_hparams = checkpoint.get("datamodule_hyper_parameters", {})
    metrics = dict(checkpoint.get("semclip_val_metrics", {}))
    for callback in checkpoint.get("callbacks", {}).values():
        score = callback.get("best_model_score") if isinstance(callback, dict) else None
        if score is not None and not metrics:
            metrics[str(callback.get("monitor", "best"))] = float(score)
    return export_module(module, out_dir, data_hparams, metrics)


class ExportBest(pl.Callback):
    """After ``fit``, export the best checkpoint, or the last epoch if none was monitored.

    The best is the file kept by the first checkpoint callback that monitors a metric. Without one
    (no validation: nothing to rank epochs by) the weights as training left them are exported.
    """

    def __init__(self, dirpath: str | None = None) -> None:
        """
        Args:
            dirpath: Where the HF folder goes; default ``{default_root_dir}/export``.
        """
        self.dirpath = dirpath
        self.exported: Path | None = None  # where on_fit_end put the folder

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        out = self.dirpath or str(Path(trainer.default_root_dir) / "export")
        best = _best_checkpoint(trainer)
        if best:
            export_checkpoint(best, out)
        else:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if "val/" in k}
            dm = trainer.datamodule
            export_module(pl_module, out, dict(dm.hparams) if dm else {}, metrics)
        self.exported = Path(out)
        logger.info("exported the scorer to %s", out)


def _best_checkpoint(trainer: pl.Trainer) -> str:
    """The best file of the first monitoring checkpoint callback; ``""`` when there is none (a
    callback without a monitor, such as ``last.ckpt``'s, keeps the latest epoch, not the best)."""
    for callback in trainer.checkpoint_callbacks:
        if getattr(callback, "monitor", None):
            return getattr(callback, "best_model_path", "") or ""
    return ""
