"""Push an exported scorer (a model repo) or a label set (a dataset repo) to the Hugging Face Hub.

The token is never passed around by semclip: ``huggingface_hub`` finds it in ``HF_TOKEN`` or the
user's login, and nothing here prints, logs or writes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from huggingface_hub import DatasetCard, DatasetCardData, HfApi

from semclip.data.labels import SCHEMA, read_info, read_labels, summarize

logger = logging.getLogger(__name__)


def _push(
    folder: str | Path,
    repo_id: str,
    repo_type: str,
    private: bool,
    branch: str | None,
    commit_message: str,
    allow_patterns: list[str] | None = None,
) -> str:
    api = HfApi()
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    if branch:
        api.create_branch(repo_id, branch=branch, repo_type=repo_type, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        revision=branch,
        commit_message=commit_message,
        allow_patterns=allow_patterns,
    )
    logger.info("pushed %s to %s (%s)", folder, repo_id, repo_type)
    return str(getattr(info, "commit_url", info))


def push_model(
    folder: str | Path,
    repo_id: str,
    private: bool = False,
    branch: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload an exported scorer folder (weights, config, processor, model card)."""
    if not (Path(folder) / "config.json").exists():
        raise FileNotFoundError(f"{folder} is not an exported scorer (no config.json)")
    return _push(
        folder, repo_id, "model", private, branch, commit_message or "Upload semclip scorer"
    )


def label_set_card(labels_dir: str | Path) -> DatasetCard:
    """A dataset card for a label set: provenance, schema and per-split summary."""
    info = read_info(labels_dir)
    if info is None:
        raise FileNotFoundError(f"{labels_dir} has no labelset.json")
    splits = info.splits
    data = DatasetCardData(
        tags=["semclip", "distant-supervision", "visual-selection"],
        configs=[
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"{s}-*.parquet"} for s in splits],
            }
        ],
    )
    p = info.provenance
    summary_lines = []
    for split in splits:
        s = summarize(read_labels(labels_dir, split, p.resume_key))
        summary_lines.append(
            f"| {split} | {s['labelled']} | {sum(s['skipped'].values())} | "
            f"{s['baseline_accuracy']:.3f} | {s['oracle_accuracy']:.3f} |"
        )
    columns = ", ".join(f"`{name}`" for name in SCHEMA.names)
    content = f"""---
{data.to_yaml()}
---

# SemClip label set

Per question and grid cell: did the evaluator answer correctly when shown
[overview, cell, question]? Made with `semclip-label`.

- source dataset: `{info.dataset}` (revision `{info.dataset_revision or "main"}`)
- evaluator: `{p.evaluator}` (revision `{p.revision}`, dtype `{p.dtype}`, mode `{p.mode}`)
- grid: {p.grid_n} x {p.grid_n}; resume key `{p.resume_key}`; template hash `{p.template_hash}`

| split | labelled | skipped | overview-only accuracy | oracle accuracy |
| --- | --- | --- | --- | --- |
{chr(10).join(summary_lines)}

Columns: {columns}.
"""
    return DatasetCard(content)


def push_label_set(
    labels_dir: str | Path,
    repo_id: str,
    private: bool = False,
    branch: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a label set (parquet shards, ``labelset.json``) with a dataset card."""
    label_set_card(labels_dir).save(str(Path(labels_dir) / "README.md"))
    return _push(
        labels_dir,
        repo_id,
        "dataset",
        private,
        branch,
        commit_message or "Upload semclip label set",
        allow_patterns=["*.parquet", "labelset.json", "README.md"],
    )
