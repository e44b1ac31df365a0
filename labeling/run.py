"""The labeling job: plan what is left, score it on Lightning's ``Trainer.predict``, write shards.

Scale comes from Lightning: ``--devices`` / ``--num-nodes`` / ``--strategy`` run one process per
device, each labelling a disjoint slice (no sampler padding, so no duplicate predictions) and
writing its own shards; ``--num-shards`` / ``--shard-index`` split the work across a job array.
Resume: questions already recorded under the same resume key are skipped.

A question the evaluator refuses (an image smaller than its model can encode) or that fails inside
it is recorded as skipped with its reason and the run goes on; when every question so far failed,
the run stops (``ScoringError``) keeping what was written.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from semclip.data.labels import (
    LabelProvenance,
    LabelSetInfo,
    LabelSetMismatchError,
    ShardWriter,
    done_qids,
    read_info,
    read_labels,
    remove_all_shards,
    remove_shards,
    remove_stale_temp_files,
    summarize,
    write_info,
)
from semclip.data.presets import resolve_columns
from semclip.data.scienceqa import (
    QADataset,
    QARecord,
    dataset_identity,
    load_qa_dataset,
    source_records,
)
from semclip.labeling.config import LabelConfig, evaluator_class, evaluator_settings
from semclip.labeling.evaluator import (
    MODEL_ERROR,
    Evaluator,
    IsolatedScorer,
    ItemScores,
    LabelItem,
    Skip,
    label_row,
    prepare_item,
    refuse_upfront,
    skip_row,
)
from semclip.labeling.hf_evaluator import HFEvaluator, provenance_for
from semclip.labeling.simulated import SimulatedConfig, SimulatedEvaluator
from semclip.vlm.config import VLMConfig
from semclip.vlm.families import family_for, require_packages, resolve_prompt_format
from semclip.vlm.loading import load_processor, model_type
from semclip.vlm.shared_prefix import shares_prefix

logger = logging.getLogger(__name__)


def hf_config(config: LabelConfig, device: str | None = None) -> VLMConfig:
    """The label config's VLM config, on ``device``."""
    return dataclasses.replace(config.vlm, device=device)


def build_evaluator(config: LabelConfig, device: str | None = None) -> Evaluator:
    """The evaluator named by ``config.evaluator``, loaded on ``device``; a user class
    (``package.module:Class``) is constructed with the config and picks its own device."""
    if config.evaluator == "simulated":
        sim = SimulatedConfig(min_visible=config.min_visible)
        return SimulatedEvaluator(sim, grid=config.grid, template=config.vlm.template)
    if config.evaluator != "hf":
        settings = evaluator_settings(config.evaluator_config)
        return evaluator_class(config.evaluator)(config, **settings)
    return HFEvaluator(hf_config(config, device), grid=config.grid)


@dataclass
class Plan:
    """What this job will label: records still to do, and how many rows were done or not ours."""

    todo: list[QARecord]
    already_done: int
    not_mine: int
    rows: int
    """Source rows considered (the first ``--limit`` ones): each is labelled or skipped."""


def open_source(config: LabelConfig, split: str) -> QADataset:
    """One split of the dataset, read through the config's column mapping."""
    return load_qa_dataset(
        config.dataset, split, revision=config.dataset_revision, columns=config.column_map()
    )


def plan_split(
    config: LabelConfig, split: str, resume_key: str, source: QADataset | None = None
) -> Plan:
    """Rows of ``split`` for this job-array shard that are not yet recorded. Every source row is a
    record: one without an image or an answer becomes a skipped row with its reason."""
    ds = source if source is not None else open_source(config, split)
    records = source_records(ds, split, limit=config.limit)
    mine = [r for i, r in enumerate(records) if i % config.num_shards == config.shard_index]
    done = set() if config.overwrite else done_qids(config.output_dir, split, resume_key)
    todo = [r for r in mine if r.qid not in done]
    return Plan(todo, len(mine) - len(todo), len(records) - len(mine), len(records))


def check_same_source(config: LabelConfig, previous: LabelSetInfo | None) -> bool:
    """Whether the label set in ``--output-dir`` (if any) was made from this dataset, revision
    and column mapping; the resume key does not include them, so mixing two is refused unless
    ``--overwrite`` (then it is started afresh). Returns whether its shards must go."""
    if previous is None:
        return False
    before = previous.columns
    if before is None:  # written before column mappings: the dataset's default mapping
        before = resolve_columns(None, previous.dataset).to_dict()
    here = (
        dataset_identity(config.dataset),
        config.dataset_revision,
        config.column_map().to_dict(),
    )
    there = (dataset_identity(previous.dataset), previous.dataset_revision, before)
    if here == there:
        return False
    if not config.overwrite:
        if here[0] != there[0]:
            reason = f"labels of {there[0]}, not {here[0]}"
        elif here[1] != there[1]:
            reason = f"labels of {there[0]} at revision {there[1]}, not {here[1]}"
        else:
            mapping = there[2]["name"] or "a mapping by hand"
            reason = f"labels of {there[0]} read through other columns ({mapping})"
        raise LabelSetMismatchError(
            f"--output-dir {config.output_dir} holds {reason}: choose another --output-dir, "
            "or pass --overwrite to replace them"
        )
    return True


class _Records(Dataset):
    def __init__(self, records: list[QARecord]) -> None:
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> QARecord:
        return self.records[index]


class _Prepare:
    """Collate: decode and crop in the DataLoader workers; bad images become skips."""

    def __init__(self, config: LabelConfig) -> None:
        self.grid, self.template = config.grid, config.vlm.template
        self.max_pixels, self.alpha = config.max_pixels, config.vlm.alpha

    def __call__(self, records: list[QARecord]) -> list[LabelItem | Skip]:
        return [
            prepare_item(r, self.grid, self.template, self.max_pixels, self.alpha) for r in records
        ]


class LabelingModule(pl.LightningModule):
    """Scores batches of questions and hands label rows to this rank's shard writer; a question
    that fails inside the evaluator costs only itself (:class:`IsolatedScorer`)."""

    def __init__(
        self, config: LabelConfig, todo: list[QARecord], resume_key: str, evaluator=None
    ) -> None:
        super().__init__()
        self.config = config
        self.resume_key = resume_key
        self.todo = todo
        self.evaluator = evaluator
        self.writer: ShardWriter | None = None
        self.scorer: IsolatedScorer | None = None
        self._bar = None

    def setup(self, stage: str) -> None:
        if self.evaluator is None:
            device = str(self.trainer.strategy.root_device)
            self.evaluator = build_evaluator(self.config, device=device)

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        mine = self.todo[rank::world]  # a slice per rank: disjoint, no padding duplicates
        return DataLoader(
            _Records(mine),
            batch_size=self.config.batch_size,
            shuffle=False,
            num_workers=self.config.num_workers,
            collate_fn=_Prepare(self.config),
        )

    def on_predict_start(self) -> None:
        tag = f"r{self.trainer.global_rank}"
        if self.config.num_shards > 1:
            tag += f"s{self.config.shard_index}of{self.config.num_shards}"
        key = self.evaluator.provenance.resume_key
        if key != self.resume_key:
            raise RuntimeError(
                f"the loaded evaluator's resume key {key} differs from the planned "
                f"{self.resume_key} (dtype or prompt format resolved differently on this device)"
            )
        self.writer = ShardWriter(self.config.output_dir, key, tag, self.config.flush_every)
        self.scorer = IsolatedScorer(self.evaluator)
        if self.config.progress and self.trainer.is_global_zero:
            from tqdm.auto import tqdm

            total = len(self.todo[:: self.trainer.world_size])
            self._bar = tqdm(total=total, unit="q", desc="labeling", dynamic_ncols=True)

    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        return batch  # PIL images and records: the evaluator moves its own tensors

    def predict_step(self, batch: list[LabelItem | Skip], batch_idx: int) -> None:
        batch = [refuse_upfront(self.evaluator, b) for b in batch]
        results = iter(self.scorer.score([b for b in batch if isinstance(b, LabelItem)]))
        rows = [self._row(b, next(results) if isinstance(b, LabelItem) else b) for b in batch]
        if self.scorer.hopeless:
            self._stop(rows)
        self.writer.add(rows)
        if self._bar is not None:
            self._bar.update(len(batch))

    def _row(self, entry: LabelItem | Skip, result: ItemScores | Skip) -> dict[str, Any]:
        """The row of one entry of the batch: labelled from its scores, or skipped with a reason
        (the collate's, the evaluator's refusal, or a failure inside the evaluator)."""
        provenance = self.evaluator.provenance
        if isinstance(result, Skip):
            return skip_row(result, provenance)
        return label_row(entry, result, provenance)

    def _stop(self, rows: list[dict[str, Any]]) -> None:
        """Every question so far failed: keep what was recorded (this batch's other skips
        included) but not the failures, so a rerun after the fix labels them; then stop."""
        failure = f"{MODEL_ERROR}:"
        self.writer.add([r for r in rows if not (r["skip_reason"] or "").startswith(failure)])
        self.on_predict_end()
        raise self.scorer.error() from self.scorer.first[1]

    def on_predict_end(self) -> None:
        self.writer.flush()
        if self._bar is not None:
            self._bar.close()


def _devices(value: Any) -> Any:
    """``--devices`` as Lightning takes it: ``auto``, a count, or a list of indices."""
    if isinstance(value, (int, list)):
        return value
    value = str(value).strip()
    if value in ("auto", "-1"):
        return "auto" if value == "auto" else -1
    if "," in value:
        return [int(v) for v in value.split(",") if v.strip()]
    return int(value)


def run_labeling(config: LabelConfig, evaluator: Evaluator | None = None) -> dict[str, Any]:
    """Label every split of ``config``; return the summary of the whole label set per split.

    Every split is opened first, so a missing split or column fails before any model loads; a
    label set of another dataset in ``--output-dir`` is refused unless ``--overwrite``.
    """
    config.validate()
    sources = {split: open_source(config, split) for split in config.splits}
    previous = read_info(config.output_dir)
    replace_all = check_same_source(config, previous)
    trainer = pl.Trainer(
        accelerator=config.accelerator,
        devices=_devices(config.devices),
        num_nodes=config.num_nodes,
        strategy=config.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
    )
    if evaluator is None and config.evaluator != "hf":  # no weights to place per device
        evaluator = build_evaluator(config)
    # The resume key needs the evaluator's provenance; the HF one is built in setup() on the
    # right device, so here a provenance-only probe is made without loading weights.
    sharing: dict[str, Any] = {}
    if evaluator is not None:
        provenance = evaluator.provenance
        if isinstance(evaluator, HFEvaluator):
            sharing = {
                "family": evaluator.family.name,
                "prefix_sharing": evaluator.prefix_sharing,
                "vlm": evaluator.config.as_used(evaluator.vlm.prompt_format).to_dict(),
            }
    else:
        provenance, sharing = _hf_provenance(config)
    key = provenance.resume_key
    if trainer.is_global_zero:
        _prepare_output(config, provenance, sharing, previous, replace_all)
    summary: dict[str, Any] = {"resume_key": key, "splits": {}}
    for split in config.splits:
        plan = plan_split(config, split, key, sources[split])
        logger.info(
            "split %s: %d source rows, %d to label or record as skipped, %d already done, "
            "%d for other job shards",
            split,
            plan.rows,
            len(plan.todo),
            plan.already_done,
            plan.not_mine,
        )
        if plan.todo:
            module = LabelingModule(config, plan.todo, key, evaluator)
            trainer.predict(module, return_predictions=False)
            evaluator = module.evaluator  # keep the loaded model for the next split
            if getattr(evaluator, "whole_rows", 0):
                logger.info(
                    "%d question(s) had no exact shared prefix and were scored whole",
                    evaluator.whole_rows,
                )
        if trainer.world_size > 1:
            trainer.strategy.barrier()
        table = read_labels(config.output_dir, split, key)
        split_summary = summarize(table)
        split_summary["source_rows"] = plan.rows
        split_summary["labelled_this_run"] = len(plan.todo)
        summary["splits"][split] = split_summary
    return summary


def _prepare_output(
    config: LabelConfig,
    provenance: LabelProvenance,
    sharing: dict[str, Any],
    previous: LabelSetInfo | None,
    replace_all: bool,
) -> None:
    """Rank 0, before labelling: clear what a killed run or ``--overwrite`` leaves, then record
    the label set's provenance, source (absolute path for a local one) and column mapping."""
    key = provenance.resume_key
    shard_suffix = f"s{config.shard_index}of{config.num_shards}" if config.num_shards > 1 else ""
    stale = remove_stale_temp_files(config.output_dir, own_tag=rf"r\d+{shard_suffix}")
    if stale:
        logger.info("removed %d temp file(s) a killed run left", len(stale))
    if replace_all:
        removed = remove_all_shards(config.output_dir)
        logger.info("--overwrite: removed %d shard(s) of another dataset", removed)
        previous = None
    splits = sorted(set(config.splits) | set(previous.splits if previous else []))
    info = LabelSetInfo(
        provenance=provenance,
        dataset=dataset_identity(config.dataset),
        dataset_revision=config.dataset_revision,
        prompt_template=config.vlm.template,
        splits=splits,
        columns=config.column_map().to_dict(),
        max_pixels=config.max_pixels,
        **sharing,
    )
    if previous is not None and previous.provenance.resume_key != key:
        logger.warning(
            "%s already holds labels of another evaluator setting (resume key %s); "
            "this run adds %s beside them",
            config.output_dir,
            previous.provenance.resume_key,
            key,
        )
    write_info(config.output_dir, info)
    if config.overwrite:
        removed = remove_shards(config.output_dir, config.splits, key)
        logger.info("--overwrite: removed %d shard(s)", removed)


def _hf_provenance(config: LabelConfig) -> tuple[LabelProvenance, dict[str, Any]]:
    """The HF evaluator's provenance (resume key) from its config and processor, no weights, and
    the label set's record of its VLM family, whether prefixes are shared, and its VLM config."""
    vlm = hf_config(config)
    family = family_for(model_type(vlm))
    require_packages(family, vlm.model)
    processor = load_processor(vlm)
    device = "cuda" if torch.cuda.is_available() and config.accelerator != "cpu" else "cpu"
    provenance = provenance_for(vlm, config.grid, processor, family, device)
    return provenance, {
        "family": family.name,
        "prefix_sharing": shares_prefix(vlm, family),
        "vlm": vlm.as_used(resolve_prompt_format(vlm.prompt_format, family)).to_dict(),
    }
