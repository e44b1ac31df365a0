"""Multiple-choice datasets: loading one split through a column mapping, stable question ids, and
the records of every source row.

A dataset is a hub id (``derek-thomas/ScienceQA`` by default), a ``save_to_disk`` folder, parquet
file(s) or a folder of them; its columns are read through a :class:`~semclip.data.columns.ColumnMap`
(a preset by hub id, or one given by hand), so ScienceQA, MMBench, SEED-Bench, MMStar, POPE,
V* Bench, A-OKVQA or any other multiple-choice set reads the same way. Images are kept undecoded
(``Image(decode=False)``) so a single corrupt image is a recorded skip, never the end of a run.

Longer than 400 lines on purpose: it is the one reader of every source form (hub id,
``save_to_disk`` folder, parquet files or folders, a label set's recorded source), and its parts
share one normalised row, one set of errors and the stable question ids.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ``datasets`` takes seconds to import: loaded only when a dataset is
    import datasets

    from semclip.data.labels import LabelSetInfo

from semclip.data.columns import ColumnMap
from semclip.data.hub import looks_local, probe_hub
from semclip.data.presets import SCIENCEQA, resolve_columns

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "derek-thomas/ScienceQA"
REQUIRED_FIELDS = tuple(SCIENCEQA.required_columns())  # image, question, choices, answer, hint


class DatasetError(ValueError):
    """A dataset that cannot be read as asked (columns, splits); the message says what to change."""


class MissingFieldsError(DatasetError):
    """The dataset lacks columns its column mapping reads."""


class SplitNotFoundError(DatasetError):
    """The dataset has no split of that name; the message lists those it has."""


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
    answer: int | None
    """Index of the right choice; ``None`` when the row has none (recorded as ``bad_answer``)."""
    hint: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    """Every other column of the row (subject, grade, ground truth of the synthetic set, ...)."""


def question_id(split: str, row: int, question: str, choices: Sequence[str]) -> str:
    """A stable id: split, row and a short hash of question + choices (the hub copies have none).

    The hash makes an id from a reordered or edited copy of the data differ from the original.
    """
    payload = "\x1f".join([question, *choices]).encode("utf-8")
    return f"{split}-{row:06d}-{hashlib.sha1(payload).hexdigest()[:8]}"


class QADataset:
    """One split read through a column mapping: ``len(ds)``, ``ds[i]`` and iteration give the
    normalised row (:meth:`ColumnMap.normalise`: image, question, choices, answer, hint, subject,
    plus every other raw column), in row order. :meth:`texts` reads no image bytes."""

    def __init__(
        self,
        table: datasets.Dataset,
        columns: ColumnMap,
        source: str = "dataset",
        split: str = "train",
        image_root: str | None = None,
    ) -> None:
        self.table = table
        """The raw ``datasets.Dataset`` (images undecoded)."""
        self.columns = columns
        self.source = source
        self.split = split
        self.image_root = image_root

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.columns.normalise(self.table[index], self.image_root)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for example in self.table:
            yield self.columns.normalise(example, self.image_root)

    @property
    def column_names(self) -> list[str]:
        return list(self.table.column_names)

    def texts(self) -> QADataset:
        """The same rows without the image column (``image`` is ``None``): fast text reads."""
        names = [c for c in self.table.column_names if c != self.columns.image]
        return QADataset(self.table.select_columns(names), self.columns, self.source, self.split)


def as_qa_dataset(ds: QADataset | datasets.Dataset, split: str = "train") -> QADataset:
    """``ds`` itself, or a raw ``datasets.Dataset`` in the ScienceQA schema read through it."""
    if isinstance(ds, QADataset):
        return ds
    columns = resolve_columns(None)
    check_fields(ds.column_names, "dataset", columns)
    return QADataset(ds, columns, split=split)


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


def dataset_identity(source: str) -> str:
    """How a label set records its source: an absolute path for a local dataset (training from
    another directory finds it), the hub id as it is otherwise."""
    if looks_local(source) or os.path.exists(os.path.expanduser(source)):
        return os.path.abspath(os.path.expanduser(source))
    return source


_SHARD = re.compile(r"^(?P<split>.+?)-\d{5}-of-\d{5}(?:-[0-9a-f]+)?$")
_NUMBERED = re.compile(r"^(?P<split>.+?)-\d+$")


def parquet_splits(folder: str | Path, config: str | None = None) -> dict[str, list[str]]:
    """Split name -> parquet files of a folder in the usual hub layouts:
    ``data/<split>-00000-of-00001[-hash].parquet``, ``<split>-00000.parquet``, ``<split>.parquet``
    and ``<split>/*.parquet``; under ``<config>/`` when that sub-folder exists."""
    root = Path(folder)
    if config and (root / config).is_dir():
        root = root / config
    splits: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.parquet")):
        parts = path.relative_to(root).parts
        if any(p.startswith(".") for p in parts):
            continue  # caches and temp files
        stem = path.name[: -len(".parquet")]
        match = _SHARD.match(stem) or _NUMBERED.match(stem)
        if match:
            name = match.group("split")
        elif len(parts) == 1 or (len(parts) == 2 and parts[0] == "data"):
            name = stem
        else:
            name = parts[-2]
        splits.setdefault(name, []).append(str(path))
    return splits


def check_local_splits(source: str, splits: list[str], columns: ColumnMap | None = None) -> None:
    """Raise :class:`SplitNotFoundError` (listing the splits there are) for a split a local
    ``save_to_disk`` or parquet folder does not have: reads file names and ``dataset_dict.json``
    only, so a misspelled ``--splits`` is answered before ``datasets`` is imported. Other
    sources (hub ids, single files) are checked when they are opened."""
    path = Path(source).expanduser()
    if not path.is_dir():
        return
    found: list[str] | None = None
    if (path / "dataset_dict.json").exists():
        found = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
    elif not (path / "dataset_info.json").exists() and not (columns and columns.data_files):
        found = sorted(parquet_splits(path, columns.config if columns else None)) or None
    for split in splits:
        if found is not None and split not in found:
            raise SplitNotFoundError(f"split {split!r} is not in {source}; it has {found}")


def load_qa_dataset(
    source: str = DEFAULT_DATASET,
    split: str = "train",
    revision: str | None = None,
    cache_dir: str | None = None,
    columns: str | ColumnMap | Mapping[str, Any] | None = None,
) -> QADataset:
    """Load one split from a hub id, a ``save_to_disk`` folder or parquet file(s), read through
    ``columns`` (a preset key, a :class:`ColumnMap`, a dict or ``field=column`` pairs; ``None``:
    the preset of ``source`` if there is one, else the ScienceQA columns).

    Split names match exactly (a parquet folder's are named by its files; a single file or glob
    is one split, whatever name is asked); an empty split gives 0 rows. Raises
    :class:`SplitNotFoundError` listing the splits there are, :class:`MissingFieldsError` naming
    the absent columns, ``FileNotFoundError`` for a local path that does not exist, and
    :class:`DatasetUnavailableError` for a hub id that is neither cached nor reachable (offline,
    fast: no retries).
    """
    mapping = resolve_columns(columns, source)
    check_local_source(source)
    local = looks_local(source) or os.path.exists(os.path.expanduser(source))
    if local:
        source = os.path.expanduser(source)
    elif mapping.image_paths:
        raise DatasetError(
            f"{source} keeps its images as files beside the questions: download it first "
            f"(`hf download {source} --repo-type dataset --local-dir <folder>`) and pass the "
            "folder as the dataset"
        )
    ds = _load_split(source, split, revision, cache_dir, mapping)
    check_fields(ds.column_names, source, mapping)
    ds = _undecoded(ds, mapping.image)
    root = None
    if mapping.image_paths:
        root = source if os.path.isdir(source) else os.path.dirname(os.path.abspath(source))
    return QADataset(ds, mapping, source, split, image_root=root)


def _load_split(
    source: str, split: str, revision: str | None, cache_dir: str | None, mapping: ColumnMap
) -> datasets.Dataset:
    import datasets

    path = Path(source)
    if path.is_dir() and (path / "dataset_dict.json").exists():
        names = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
        if split not in names:
            raise SplitNotFoundError(f"split {split!r} is not in {source}; it has {names}")
        return _load_from_disk(path / split)
    if path.is_dir() and (path / "dataset_info.json").exists():
        return _load_from_disk(path)  # one Dataset: the split, whatever its name
    if path.is_dir() and mapping.data_files:
        present = {s: p for s, p in mapping.data_files.items() if glob.glob(str(path / p))}
        if present:
            if split not in present:
                raise SplitNotFoundError(
                    f"split {split!r} is not in {source}; it has {sorted(present)} "
                    f"({mapping.label} reads {mapping.data_files})"
                )
            return _load_files(sorted(glob.glob(str(path / present[split]))), cache_dir)
    if _is_parquet_source(source):
        if path.is_dir():
            found = parquet_splits(path, mapping.config)
            if split not in found:
                raise SplitNotFoundError(
                    f"split {split!r} is not in {source}; it has {sorted(found)}"
                )
            files = found[split]
        else:
            files = sorted(glob.glob(source))
        if not files:
            raise FileNotFoundError(f"no parquet files match {source}")
        return _load_files(files, cache_dir)
    kwargs = dict(split=split, revision=revision, cache_dir=cache_dir)
    if path.exists():  # another local layout (csv, json, ...): ``load_dataset`` reads it
        return _hub_split(source, kwargs)
    kwargs["name"] = mapping.config
    if datasets.config.HF_HUB_OFFLINE:
        try:
            return _hub_split(source, kwargs)
        except ConnectionError as err:
            raise DatasetUnavailableError(
                f"dataset {source} is neither a folder here nor in the hub cache, and the hub is "
                "off (HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set): pass a local save_to_disk "
                f"folder or parquet file(s), or unset it and go online to download {source}"
            ) from err
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
    return _hub_split(source, kwargs)


def _hub_split(source: str, kwargs: dict[str, Any]) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(source, **kwargs)
    except ValueError as err:
        if "Unknown split" in str(err):  # the message lists the splits there are
            raise SplitNotFoundError(f"{source}: {err}") from None
        raise


def _load_from_disk(folder: Path) -> datasets.Dataset:
    """A ``save_to_disk`` Dataset; an empty one (no arrow files: ``load_from_disk`` fails on it)
    is rebuilt from its recorded features."""
    import datasets

    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if state.get("_data_files"):
        return datasets.load_from_disk(str(folder))
    info = json.loads((folder / "dataset_info.json").read_text(encoding="utf-8"))
    features = datasets.Features.from_dict(info["features"])
    return datasets.Dataset.from_dict({name: [] for name in features}, features=features)


def _load_files(files: list[str], cache_dir: str | None) -> datasets.Dataset:
    """Parquet, JSON lines or CSV files as one Dataset; zero-row parquet files (which
    ``load_dataset`` refuses) are left out, and only zero-row files give an empty Dataset."""
    import datasets
    import pyarrow.parquet as pq

    builder = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv"}
    kind = builder.get(Path(files[0]).suffix, "parquet")
    if kind == "parquet":
        rows = {f: pq.ParquetFile(f).metadata.num_rows for f in files}
        if not any(rows.values()):
            return datasets.Dataset(pq.read_table(files[0]))  # features from the schema metadata
        files = [f for f in files if rows[f]]
    return datasets.load_dataset(kind, data_files=files, split="train", cache_dir=cache_dir)


def _undecoded(ds: datasets.Dataset, column: str) -> datasets.Dataset:
    """Images (or lists of images) stay bytes until a reader decodes them."""
    import datasets

    feature = ds.features.get(column)
    if isinstance(feature, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    if isinstance(feature, datasets.List) and isinstance(feature.feature, datasets.Image):
        return ds.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return ds


def check_fields(
    columns: Sequence[str], source: str = "dataset", mapping: ColumnMap = SCIENCEQA
) -> None:
    """One-line :class:`MissingFieldsError` naming the absent columns, the mapping and the
    columns there are."""
    missing = [name for name in mapping.required_columns() if name not in columns]
    if missing:
        raise MissingFieldsError(
            f"{source} lacks the column(s) {missing} that {mapping.label} reads; it has "
            f"{list(columns)} (choose a --preset or map them with --columns field=column,...)"
        )


def _record(split: str, row: int, example: dict[str, Any]) -> QARecord:
    return QARecord(
        qid=question_id(split, row, example["question"], example["choices"]),
        split=split,
        row=row,
        image=example["image"],
        question=example["question"],
        choices=example["choices"],
        answer=example["answer"],
        hint=example["hint"],
        meta={k: v for k, v in example.items() if k not in _QUESTION_FIELDS},
    )


_QUESTION_FIELDS = {"image", "question", "choices", "answer", "hint"}


def source_records(
    ds: QADataset | datasets.Dataset, split: str, limit: int | None = None
) -> list[QARecord]:
    """Every row of the split (the first ``limit`` rows), in order: with or without an image or
    an answer, each becomes one label-set row (labelled, or skipped with its reason)."""
    ds = as_qa_dataset(ds, split)
    records = []
    for row, example in enumerate(ds):
        if limit is not None and row >= limit:
            break
        records.append(_record(split, row, example))
    return records


def iter_records(
    ds: QADataset | datasets.Dataset, split: str, skipped: Counter[str] | None = None
) -> Iterator[QARecord]:
    """Yield the questions that have an image; count the others in ``skipped`` by reason."""
    ds = as_qa_dataset(ds, split)
    for row, example in enumerate(ds):
        if example["image"] is None:
            if skipped is not None:
                skipped["no_image"] += 1
            continue
        yield _record(split, row, example)


def records_with_images(
    ds: QADataset | datasets.Dataset, split: str, limit: int | None = None
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


def labelled_source_args(
    info: LabelSetInfo | None,
    split: str,
    dataset: str | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """The :func:`load_qa_dataset` arguments of a label set's source split: its recorded dataset
    (or ``dataset``), revision and column mapping. A recorded local path that is gone is a
    one-line ``FileNotFoundError`` naming it."""
    source = dataset or (info.dataset if info else None)
    if source is None:
        raise ValueError(
            "the label set has no labelset.json naming its source dataset: pass the dataset "
            "(the folder or hub id it was labelled from)"
        )
    if dataset is None and looks_local(source) and not glob.glob(os.path.expanduser(source)):
        raise FileNotFoundError(
            f"the label set's source dataset {source} (recorded in labelset.json) was not "
            "found: pass the dataset's folder where it is now (--data.dataset / --dataset)"
        )
    recorded = info.columns if info is not None else None
    return {
        "source": source,
        "split": split,
        "revision": revision or (info.dataset_revision if info else None),
        "columns": recorded if recorded is not None else resolve_columns(None, source),
    }


def open_labelled_source(
    info: LabelSetInfo | None,
    split: str,
    dataset: str | None = None,
    revision: str | None = None,
) -> QADataset:
    """The source split of a label set, read through the column mapping it recorded: what
    training, evaluation and inference read a labelled row's image and text from (``ds[row]``).

    ``dataset`` overrides the recorded source (another copy of the same data); label sets made
    before mappings existed are read as their source's preset or the ScienceQA columns.
    """
    return load_qa_dataset(**labelled_source_args(info, split, dataset, revision))
