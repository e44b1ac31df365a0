"""Training data: label shards plus the source dataset, grouped by question.

A sample is one question: the scorer's text and its n*n cell crops (cut at the boxes the label set
recorded) with their labels (positive = the evaluator answered right with that cell) and p(correct).
Questions with no positive or no negative cannot teach a ranking: they are left out and counted.
Train/validation are split by question id with a seeded hash, unless a labelled validation split
is given. ``val_fraction=0`` without a validation split trains with no validation at all; a share
that holds out no question (a label set too small for it) is refused with one line instead.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from semclip.data.images import load_image
from semclip.data.labels import labels_dir_error, read_info, read_labels
from semclip.data.scienceqa import open_labelled_source, question_id
from semclip.models.scorer import scorer_text

logger = logging.getLogger(__name__)


@dataclass
class Group:
    """One question's training sample (before images are decoded)."""

    qid: str
    split: str
    row: int
    text: str
    boxes: list[list[int]]
    labels: list[bool]
    soft: list[float]
    grid: int
    """The n of the n x n grid the question was labelled on."""


def load_groups(
    labels_dir: str,
    split: str,
    dataset: str | None = None,
    dataset_revision: str | None = None,
    text_mode: str = "question",
    resume_key: str | None = None,
) -> tuple[list[Group], Counter[str], object]:
    """Rankable questions of ``split``, the count of those left out by reason, and the source split.

    The source dataset defaults to the one recorded in ``labelset.json``, read through the column
    mapping recorded there (:func:`~semclip.data.scienceqa.open_labelled_source`).
    """
    check_labels_dir(labels_dir)
    info = read_info(labels_dir)
    source = dataset or (info.dataset if info else None)
    if source is None:
        raise ValueError(
            f"--data.labels_dir {labels_dir} has no labelset.json: pass --data.dataset, the "
            "dataset the labels were made from"
        )
    key = resume_key or (info.provenance.resume_key if info else None)
    table = read_labels(labels_dir, split, key).to_pylist()
    if not table:
        raise ValueError(
            f"no labels for split {split!r} (resume key {key}) in {labels_dir}: label it with "
            f"`python label.py --splits {split}` or choose another --data.*_split"
        )
    ds = open_labelled_source(info, split, dataset, dataset_revision)
    groups, left_out = [], Counter()
    grids = {r["grid_n"] for r in table}
    if len(grids) > 1:
        raise ValueError(f"{labels_dir} mixes grid sizes {sorted(grids)}: use one resume key")
    texts = ds.texts()  # no image bytes read for text
    for r in table:
        if r["status"] != "labelled":
            left_out[f"skipped:{r['skip_reason']}"] += 1
            continue
        if not any(r["cell_correct"]):
            left_out["no_positive"] += 1
            continue
        if all(r["cell_correct"]):
            left_out["no_negative"] += 1
            continue
        example = texts[r["row"]]
        choices = example["choices"]
        if question_id(split, r["row"], example["question"], choices) != r["qid"]:
            raise ValueError(
                f"label {r['qid']} does not match row {r['row']} of {source}:{split}; "
                "were the labels made from another copy or revision of the dataset?"
            )
        text = scorer_text(example["question"], example["hint"], choices, text_mode)
        groups.append(
            Group(
                r["qid"],
                split,
                r["row"],
                text,
                r["cell_boxes"],
                r["cell_correct"],
                r["cell_p_correct"],
                r["grid_n"],
            )
        )
    groups.sort(key=lambda g: g.qid)
    return groups, left_out, ds


def check_labels_dir(labels_dir: str) -> None:
    """A one-line ``FileNotFoundError`` when ``labels_dir`` holds no label shards."""
    error = labels_dir_error(labels_dir)
    if error is not None:
        raise error


def has_validation(val_split: str | None, val_fraction: float) -> bool:
    """Whether a run validates: on a labelled split, or on a share of the training split (the CLI
    asks before it builds the trainer, to set up a run without validation)."""
    return bool(val_split) or val_fraction > 0


def is_validation(qid: str, fraction: float, seed: int) -> bool:
    """Seeded, stable assignment of a question id to the validation part."""
    digest = hashlib.sha256(f"{seed}/{qid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


class GroupDataset(Dataset):
    """Decodes a question's image, cuts its cells at the recorded boxes and preprocesses them.

    ``cache=True`` keeps each question's pixel tensor after its first use (small sets, e.g. the
    demo: decoding and resizing then happen once, not every epoch).
    """

    def __init__(self, groups: list[Group], source, preprocess, cache: bool = False) -> None:
        self.groups = groups
        self.source = source
        self.preprocess = preprocess  # a ScorerPreprocessor: no weights travel to workers
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, index: int) -> dict:
        group = self.groups[index]
        pixels = None if self.cache is None else self.cache.get(index)
        if pixels is None:
            image = load_image(self.source[group.row]["image"])
            cells = [image.crop(tuple(box)) for box in group.boxes]
            pixels = self.preprocess.pixel_values(cells)  # (C, 3, H, W)
            if self.cache is not None:
                self.cache[index] = pixels
        return {"group": group, "pixels": pixels}


class GroupCollate:
    """Tokenises the texts and stacks every cell of the batch into one pixel tensor."""

    def __init__(self, preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        tokens = self.preprocess.tokenize([s["group"].text for s in samples])
        return {
            "input_ids": tokens["input_ids"],
            "attention_mask": tokens["attention_mask"],
            "num_truncated": tokens["num_truncated"],
            "pixel_values": torch.cat([s["pixels"] for s in samples]),  # (B * C, 3, H, W)
            "labels": torch.tensor([s["group"].labels for s in samples]),  # (B, C)
            "soft": torch.tensor([s["group"].soft for s in samples]),  # (B, C)
        }


class EpochShuffleSampler(Sampler[int]):
    """A seeded shuffle that depends only on (seed, epoch): resumed runs see the same order."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


class UnpaddedDistributedSampler(DistributedSampler):
    """Each rank takes every world-th question, in order, with no padding: every validation or test
    question counts exactly once (Lightning's default sampler repeats some to even the ranks out).
    Being a ``DistributedSampler``, Lightning leaves it in place."""

    def __init__(self, dataset, num_replicas: int, rank: int) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
        self.indices = list(range(rank, len(dataset), num_replicas))
        self.num_samples = len(self.indices)

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return self.num_samples


class ScorerDataModule(pl.LightningDataModule):
    """Label shards + source dataset -> batches of questions with their cells."""

    def __init__(
        self,
        labels_dir: str,
        dataset: str | None = None,
        dataset_revision: str | None = None,
        train_split: str = "train",
        val_split: str | None = None,
        test_split: str | None = None,
        val_fraction: float = 0.1,
        batch_size: int = 64,
        num_workers: int = 0,
        cache_pixels: bool = False,
        seed: int = 0,
    ) -> None:
        """
        Args:
            labels_dir: Folder of the label set (``label.py --output-dir``).
            dataset: Source dataset of the labels; default: the one in ``labelset.json``.
            dataset_revision: Hub revision of the source dataset.
            train_split: Labelled split to train on.
            val_split: Labelled split to validate on; default: ``val_fraction`` of ``train_split``.
            test_split: Labelled split for ``semclip-train test``.
            val_fraction: Share of train questions held out (by seeded hash of the question id);
                0: no validation (checkpoints and the export then keep the last epoch).
            batch_size: Questions per batch (each brings its n*n cells).
            num_workers: DataLoader workers (decode, crop, preprocess).
            cache_pixels: Keep preprocessed cells in memory after the first epoch (small sets).
            seed: Seed of the validation split and of the shuffle.
        """
        super().__init__()
        if not 0 <= val_fraction < 1:
            raise ValueError("--data.val_fraction must be in [0, 1)")
        self.save_hyperparameters()
        self.scorer = None  # set by the LightningModule (it owns tokenizer and processor)
        self.grid: int | None = None
        """The label set's grid, known after ``setup``: the module's scorer learns for it."""
        self.left_out: dict[str, Counter[str]] = {}
        self._sets: dict[str, GroupDataset] = {}

    @property
    def validates(self) -> bool:
        return has_validation(self.hparams.val_split, self.hparams.val_fraction)

    def _load(self, split: str, text_mode: str):
        hp = self.hparams
        groups, left_out, ds = load_groups(
            hp.labels_dir, split, hp.dataset, hp.dataset_revision, text_mode
        )
        self.left_out[split] = left_out
        self._note_grid(split, {g.grid for g in groups})
        logger.info(
            "split %s: %d rankable questions; left out %s", split, len(groups), dict(left_out)
        )
        return groups, ds

    def _note_grid(self, split: str, grids: set[int]) -> None:
        for grid in grids:  # load_groups refuses a split with several grids
            if self.grid is not None and grid != self.grid:
                raise ValueError(
                    f"split {split} was labelled on a {grid}x{grid} grid, the others on "
                    f"{self.grid}x{self.grid}: train and evaluate on one grid"
                )
            self.grid = grid

    def _dataset(self, groups: list[Group], source) -> GroupDataset:
        return GroupDataset(groups, source, self.scorer.preprocess, self.hparams.cache_pixels)

    def setup(self, stage: str) -> None:
        if self.scorer is None:
            self.scorer = self.trainer.lightning_module.scorer
        hp = self.hparams
        if stage == "validate" and not self.validates:
            raise ValueError(
                "nothing to validate on: --data.val_fraction is 0 and there is no "
                "--data.val_split; set one of them"
            )
        if stage in ("fit", "validate") and "train" not in self._sets:
            self._setup_fit()
        if stage == "test" and "test" not in self._sets:
            if not hp.test_split:
                raise ValueError("set --data.test_split to test")
            groups, ds = self._load(hp.test_split, self.scorer.text_mode)
            self._sets["test"] = self._dataset(groups, ds)

    def _setup_fit(self) -> None:
        """Train and validation sets: a labelled validation split, or a seeded share of the
        training split (no validation set at all when that share is 0)."""
        hp, mode = self.hparams, self.scorer.text_mode
        groups, ds = self._load(hp.train_split, mode)
        if hp.val_split:
            train = groups
            val, val_ds = self._load(hp.val_split, mode)
        else:
            val = [g for g in groups if is_validation(g.qid, hp.val_fraction, hp.seed)]
            train = [g for g in groups if not is_validation(g.qid, hp.val_fraction, hp.seed)]
            val_ds = ds
        if self.validates:
            self._check_validation(val, len(groups))
            self._sets["val"] = self._dataset(val, val_ds)
        self._sets["train"] = self._dataset(train, ds)

    def _check_validation(self, val: list[Group], rankable: int) -> None:
        """An empty validation set would monitor nothing (Lightning only warns, then keeps no
        best checkpoint): stop before the first epoch with what to change instead."""
        if val:
            return
        hp = self.hparams
        if hp.val_split:
            raise ValueError(
                f"--data.val_split {hp.val_split} has no rankable questions (each needs a "
                "positive and a negative cell): label more of it or choose another split"
            )
        raise ValueError(
            f"--data.val_fraction {hp.val_fraction} holds out none of the {rankable} rankable "
            f"questions of split {hp.train_split}: raise it, name a labelled --data.val_split, "
            "or pass --data.val_fraction 0 to train without validation (the last epoch is kept)"
        )

    def _loader(self, name: str, sampler=None) -> DataLoader:
        return DataLoader(
            self._sets[name],
            batch_size=self.hparams.batch_size,
            sampler=sampler,
            num_workers=self.hparams.num_workers,
            collate_fn=GroupCollate(self.scorer.preprocess),
            persistent_workers=self.hparams.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        size = len(self._sets["train"])
        if size == 0:
            raise ValueError(
                "no rankable training questions (each needs a positive and a negative)"
            )
        return self._loader("train", EpochShuffleSampler(size, self.hparams.seed))

    def _eval_sampler(self, name: str):
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return None
        if len(self._sets[name]) < trainer.world_size:
            return None  # a rank would get nothing: let Lightning's padding sampler do it
        return UnpaddedDistributedSampler(self._sets[name], trainer.world_size, trainer.global_rank)

    def val_dataloader(self) -> DataLoader | list:
        if "val" not in self._sets:  # no validation (the CLI sets limit_val_batches 0 then)
            return []
        return self._loader("val", self._eval_sampler("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self._eval_sampler("test"))
