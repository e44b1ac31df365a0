"""ScienceQA-schema datasets: loading, stable question ids, filtering to questions with an image.

Any dataset with the ScienceQA columns works: a hub id (``derek-thomas/ScienceQA`` by default), a
``save_to_disk`` folder, or parquet files. Images are kept undecoded (``Image(decode=False)``) so a
single corrupt image is a recorded skip, never the end of an iteration.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ``datasets`` takes seconds to import: loaded only when a dataset is
    import datasets

from semclip.data.hub import looks_local, probe_hub

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "derek-thomas/ScienceQA"
REQUIRED_FIELDS = ("image", "question", "choices", "answer", "hint")


class MissingFieldsError(ValueError):
    """The dataset lacks columns the ScienceQA schema needs."""


class DatasetUnavailableError(OSError):
    """A dataset that is neither on this machine nor reachable; the message says what to do."""


@dataclass
class QARecord:
    """One multiple-choice question, its (undecoded) image and where it came from."""

    qid: str
    split: str
    row: int
    image: Any
    question: str
    choices: list[str]
    answer: int
    hint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    """Every other column of the row (subject, grade, ground truth of the synthetic set, ...)."""


def question_id(split: str, row: int, question: str, choices: Sequence[str]) -> str:
    """A stable id: split, row and a short hash of question + choices (the hub copies have none).

    The hash makes an id from a reordered or edited copy of the data differ from the original.
    """
    payload = "\x1f".join([question, *choices]).encode("utf-8")
    return f"{split}-{row:06d}-{hashlib.sha1(payload).hexdigest()[:8]}"


def _is_parquet_source(source: str) -> bool:
    if source.endswith(".parquet"):
        return True
    return os.path.isdir(source) and bool(
        glob.glob(os.path.join(source, "**", "*.parquet"), recursive=True)
    )


def check_local_source(source: str) -> None:
    """Raise ``FileNotFoundError`` if ``source`` looks like a local path and nothing is there.

    Without this a mistyped folder is taken for a hub id and costs minutes of retries.
    """
    if not looks_local(source):
        return
    path = os.path.expanduser(source)
    found = glob.glob(path) if glob.has_magic(path) else os.path.exists(path)
    if not found:
        raise FileNotFoundError(
            f"no such folder or file: {source} (a dataset is a save_to_disk folder, parquet "
            "file(s) or a hub id such as derek-thomas/ScienceQA)"
        )


def load_qa_dataset(
    source: str = DEFAULT_DATASET,
    split: str = "train",
    revision: str | None = None,
    cache_dir: str | None = None,
) -> datasets.Dataset:
    """Load one split from a hub id, a ``save_to_disk`` folder or parquet file(s).

    Raises :class:`MissingFieldsError` naming the absent columns, ``FileNotFoundError`` for a
    local path that does not exist, and :class:`DatasetUnavailableError` for a hub id that is
    neither cached nor reachable (offline, fast: no retries).
    """
    import datasets

    check_local_source(source)
    if looks_local(source):
        source = os.path.expanduser(source)
    path = Path(source)
    if path.is_dir() and (
        (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
    ):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"split {split!r} not in {source}; it has {list(loaded)}")
            loaded = loaded[split]
        ds = loaded
    elif _is_parquet_source(source):
        if path.is_dir():
            split_files = sorted(
                glob.glob(os.path.join(source, "**", f"{split}*.parquet"), recursive=True)
            )
            files = split_files or sorted(
                glob.glob(os.path.join(source, "**", "*.parquet"), recursive=True)
            )
        else:
            files = sorted(glob.glob(source))
        if not files:
            raise FileNotFoundError(f"no parquet files match {source}")
        ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=cache_dir)
    elif path.exists():  # another local layout (csv, json, ...): ``load_dataset`` reads it
        ds = datasets.load_dataset(source, split=split, revision=revision, cache_dir=cache_dir)
    elif datasets.config.HF_HUB_OFFLINE:
        try:
            ds = datasets.load_dataset(source, split=split, revision=revision, cache_dir=cache_dir)
        except ConnectionError as err:
            raise DatasetUnavailableError(
                f"dataset {source} is neither a folder here nor in the hub cache, and the hub is "
                "off (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set): pass a local save_to_disk "
                f"folder or parquet file(s), or unset it and go online to download {source}"
            ) from err
    else:
        status = probe_hub(source, "dataset", revision)
        if status == "missing":
            raise DatasetUnavailableError(
                f"dataset {source} is neither a folder here nor on the Hugging Face Hub (if it "
                "is private, log in with `hf auth login`): check the name, or pass a local "
                "save_to_disk folder or parquet file(s)"
            )
        if status is not None:
            raise DatasetUnavailableError(
                f"dataset {source} is not a folder here and the Hugging Face Hub cannot be "
                f"reached ({status}): pass a local save_to_disk folder or parquet file(s), set "
                "HF_HUB_OFFLINE=1 to use a cached copy, or go online"
            )
        ds = datasets.load_dataset(source, split=split, revision=revision, cache_dir=cache_dir)
    check_fields(ds.column_names, source)
    if isinstance(ds.features.get("image"), datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    return ds


def check_fields(columns: Sequence[str], source: str = "dataset") -> None:
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    if missing:
        raise MissingFieldsError(
            f"{source} lacks the ScienceQA field(s) {missing}; it has {list(columns)}"
        )


def iter_records(
    ds: datasets.Dataset, split: str, skipped: Counter[str] | None = None
) -> Iterator[QARecord]:
    """Yield the questions that have an image; count the others in ``skipped`` by reason."""
    meta_cols = [c for c in ds.column_names if c not in REQUIRED_FIELDS]
    for row, example in enumerate(ds):
        if example["image"] is None:
            if skipped is not None:
                skipped["no_image"] += 1
            continue
        choices = [str(c) for c in example["choices"]]
        yield QARecord(
            qid=question_id(split, row, example["question"], choices),
            split=split,
            row=row,
            image=example["image"],
            question=example["question"],
            choices=choices,
            answer=int(example["answer"]),
            hint=example["hint"] or "",
            meta={c: example[c] for c in meta_cols},
        )


def records_with_images(
    ds: datasets.Dataset, split: str, limit: int | None = None
) -> tuple[list[QARecord], Counter[str]]:
    """Questions with an image (at most ``limit``) and the count of those left out, by reason."""
    skipped: Counter[str] = Counter()
    records = []
    for record in iter_records(ds, split, skipped):
        records.append(record)
        if limit is not None and len(records) >= limit:
            break
    if skipped:
        logger.info("split %s: left out %s", split, dict(skipped))
    return records, skipped
