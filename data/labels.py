"""The label set: schema, atomic shard writer, resume bookkeeping and reader.

A label set is a folder of parquet shards, one row per question, readable with
``datasets.load_dataset("parquet", data_dir=folder)`` (files are named ``{split}-....parquet`` so
``datasets`` infers the splits). Labelling stages write it, training and evaluation read it.

Rows carry a ``resume_key`` (a hash of evaluator id, revision, dtype, mode, grid n and prompt
template): a rerun with the same key skips the question ids already present.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

#: Column -> arrow type. ``None`` in every per-cell column for skipped questions.
SCHEMA = pa.schema(
    [
        ("qid", pa.string()),
        ("split", pa.string()),
        ("row", pa.int64()),
        ("status", pa.string()),  # "labelled" | "skipped"
        ("skip_reason", pa.string()),
        ("grid_n", pa.int64()),
        ("subject", pa.string()),
        ("letters", pa.list_(pa.string())),
        ("answer", pa.int64()),
        ("cell_boxes", pa.list_(pa.list_(pa.int64()))),  # (n*n, 4) left, top, right, bottom
        ("cell_logprobs", pa.list_(pa.list_(pa.float32()))),  # (n*n, k)
        ("cell_pred", pa.list_(pa.string())),  # letter or "unparsed"
        ("cell_correct", pa.list_(pa.bool_())),
        ("cell_p_correct", pa.list_(pa.float32())),
        ("base_logprobs", pa.list_(pa.float32())),  # overview only, (k,)
        ("base_pred", pa.string()),
        ("base_correct", pa.bool_()),
        ("base_p_correct", pa.float32()),
        ("evaluator", pa.string()),
        ("revision", pa.string()),
        ("dtype", pa.string()),
        ("mode", pa.string()),
        ("template_hash", pa.string()),
        ("resume_key", pa.string()),
    ]
)

UNPARSED = "unparsed"
METADATA_FILE = "labelset.json"


class LabelSetMismatchError(ValueError):
    """The output folder holds labels of another dataset, revision or column mapping."""


@dataclass(frozen=True)
class LabelProvenance:
    """Who produced the labels and how: the part of every row that makes up the resume key."""

    evaluator: str
    revision: str
    dtype: str
    mode: str
    grid_n: int
    template_hash: str
    image_backend: str = ""
    """The VLM processor's image backend (``pil``, ``torchvision``); empty for a non-VLM one."""
    alpha: str = ""
    """How transparency was flattened for the VLM (``drop`` or ``white``); empty if not recorded."""

    @property
    def resume_key(self) -> str:
        # fields left empty stay out of the key, so label sets made before they existed resume
        fields = {k: v for k, v in asdict(self).items() if v != ""}
        payload = json.dumps(fields, sort_keys=True).encode("utf-8")
        return hashlib.sha256(payload).hexdigest()[:12]


@dataclass
class LabelSetInfo:
    """``labelset.json``: the provenance of a label set, for cards and for readers."""

    provenance: LabelProvenance
    dataset: str
    dataset_revision: str | None = None
    prompt_template: str = ""
    splits: list[str] = field(default_factory=list)
    family: str = ""
    """The evaluator's VLM family (``semclip.vlm.families``); empty for a non-VLM one."""
    prefix_sharing: bool | None = None
    """Whether one-forward scoring shared the [prompt start + overview] prefix (exact either
    way; questions whose prefix could not be shared exactly were scored whole)."""
    columns: dict[str, Any] | None = None
    """The column mapping the source was read through (``ColumnMap.to_dict()``); ``None`` in label
    sets made before mappings existed (read as the source's preset or the ScienceQA columns)."""
    max_pixels: int | None = None
    """The largest image (width * height) the labeling accepted (larger ones were skipped);
    ``None`` in label sets that did not record it."""
    vlm: dict[str, Any] | None = None
    """The VLM config the labels were made with (``semclip.vlm.config.VLMConfig.to_dict()``:
    model, revision, mode, prompt format, system line, image backend, transparency, template,
    ...); read back with ``VLMConfig.from_dict``. ``None`` for an evaluator that is not a VLM."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resume_key"] = self.provenance.resume_key
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelSetInfo:
        known = {f.name for f in fields(cls)} - {"provenance"}
        rest = {k: v for k, v in data.items() if k in known}  # a newer writer's extras: ignored
        return cls(provenance=LabelProvenance(**data["provenance"]), **rest)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace``: never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_TEMP = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temp_files(
    out_dir: str | Path, own_tag: str | None = None, older_than_s: float = 3600.0
) -> list[str]:
    """Delete the temp files :func:`write_atomic` leaves when a process is killed between write
    and rename: those of shards whose writer tag matches the regular expression ``own_tag`` (this
    job's ranks: no other job writes them), and any older than ``older_than_s`` seconds (another
    job running beside this one may still be about to rename a fresh one). Returns the paths."""
    removed = []
    now = time.time()
    for path in Path(out_dir).glob(".*.tmp"):
        match = _TEMP.match(path.name)
        if match is None:
            continue
        target = match.group("target")
        parts = target[: -len(".parquet")].split("-") if target.endswith(".parquet") else []
        mine = own_tag is not None and len(parts) >= 4 and re.fullmatch(own_tag, parts[-2])
        try:
            stale = now - path.stat().st_mtime > older_than_s
            if mine or stale:
                path.unlink()
                removed.append(str(path))
        except FileNotFoundError:  # renamed or removed meanwhile
            continue
    return removed


def write_info(out_dir: str | Path, info: LabelSetInfo) -> None:
    payload = json.dumps(info.to_dict(), indent=2, sort_keys=True).encode("utf-8")
    write_atomic(Path(out_dir) / METADATA_FILE, payload)


def read_info(out_dir: str | Path) -> LabelSetInfo | None:
    path = Path(out_dir) / METADATA_FILE
    if not path.exists():
        return None
    return LabelSetInfo.from_dict(json.loads(path.read_text(encoding="utf-8")))


def shard_files(out_dir: str | Path, split: str | None = None, resume_key: str | None = None):
    """Shard paths in ``out_dir``, optionally only of one split and resume key, sorted."""
    pattern = f"{split or '*'}-{resume_key or '*'}-*.parquet"
    return sorted(glob.glob(os.path.join(str(out_dir), pattern)))


def labels_dir_error(labels_dir: str, flag: str = "--data.labels_dir") -> FileNotFoundError | None:
    """The one-line error for a folder that holds no label shards (``None`` when it holds some)."""
    if shard_files(labels_dir):
        return None
    what = "no label shards were found in" if Path(labels_dir).is_dir() else "no such folder:"
    return FileNotFoundError(
        f"{flag}: {what} {labels_dir}; make label shards with `python label.py --output-dir "
        f"{labels_dir}` (see `python label.py --help`) or pass the folder it wrote"
    )


class ShardWriter:
    """Buffers label rows and writes them as atomic parquet shards.

    A shard is named ``{split}-{resume_key}-{tag}-{seq:06d}.parquet``; ``tag`` tells writers apart
    (rank and job-array shard), and ``seq`` continues after the highest one on disk, so a rerun
    never overwrites earlier work. Killing the process loses at most the rows not yet flushed.
    """

    def __init__(
        self, out_dir: str | Path, resume_key: str, tag: str = "r0", flush_every: int = 32
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.]+", tag):
            raise ValueError(f"shard tag must be alphanumeric, got {tag!r}")
        self.out_dir = Path(out_dir)
        self.resume_key = resume_key
        self.tag = tag
        self.flush_every = max(1, flush_every)
        self._rows: dict[str, list[dict[str, Any]]] = {}
        self._seq: dict[str, int] = {}
        self.written: Counter[str] = Counter()

    def _next_seq(self, split: str) -> int:
        if split not in self._seq:
            existing = shard_files(self.out_dir, split, self.resume_key)
            mine = [p for p in existing if Path(p).stem.split("-")[-2] == self.tag]
            self._seq[split] = 1 + max((int(Path(p).stem.split("-")[-1]) for p in mine), default=-1)
        seq = self._seq[split]
        self._seq[split] += 1
        return seq

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            if row["resume_key"] != self.resume_key:
                raise ValueError("row resume_key does not match the writer's")
            self._rows.setdefault(row["split"], []).append(row)
        if sum(len(v) for v in self._rows.values()) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        for split, rows in list(self._rows.items()):
            if not rows:
                continue
            table = pa.Table.from_pylist(rows, schema=SCHEMA)
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            name = f"{split}-{self.resume_key}-{self.tag}-{self._next_seq(split):06d}.parquet"
            write_atomic(self.out_dir / name, sink.getvalue().to_pybytes())
            self.written[split] += len(rows)
            self._rows[split] = []


def read_labels(
    out_dir: str | Path,
    split: str | None = None,
    resume_key: str | None = None,
    columns: Sequence[str] | None = None,
) -> pa.Table:
    """All rows of the label set (one split / key if given) as one arrow table."""
    files = shard_files(out_dir, split, resume_key)
    if not files:
        return SCHEMA.empty_table() if columns is None else SCHEMA.empty_table().select(columns)
    return pa.concat_tables(pq.read_table(f, columns=columns, schema=SCHEMA) for f in files)


def done_qids(out_dir: str | Path, split: str, resume_key: str) -> set[str]:
    """Question ids already recorded (labelled or skipped) under ``resume_key``."""
    table = read_labels(out_dir, split, resume_key, columns=["qid"])
    return set(table.column("qid").to_pylist())


def remove_shards(out_dir: str | Path, splits: Sequence[str], resume_key: str) -> int:
    """Delete the shards of ``splits`` under ``resume_key`` (``--overwrite``); return how many."""
    files = [f for s in splits for f in shard_files(out_dir, s, resume_key)]
    for path in files:
        os.remove(path)
    return len(files)


def remove_all_shards(out_dir: str | Path) -> int:
    """Delete every shard in ``out_dir`` (``--overwrite`` of a label set of another dataset)."""
    files = shard_files(out_dir)
    for path in files:
        os.remove(path)
    return len(files)


def summarize(table: pa.Table) -> dict[str, Any]:
    """Counts and accuracies of a label table: the end-of-run summary and the evaluation base."""
    rows = table.to_pylist()
    labelled = [r for r in rows if r["status"] == "labelled"]
    skipped = Counter(r["skip_reason"] for r in rows if r["status"] == "skipped")
    n = len(labelled)

    def share(predicate) -> float:
        return sum(1 for r in labelled if predicate(r)) / n if n else 0.0

    return {
        "labelled": n,
        "skipped": dict(sorted(skipped.items())),
        "with_positive": share(lambda r: any(r["cell_correct"])),
        "with_positive_and_negative": share(
            lambda r: any(r["cell_correct"]) and not all(r["cell_correct"])
        ),
        "baseline_accuracy": share(lambda r: r["base_correct"]),
        # The paper's upper bound: some cell lets the evaluator answer.
        "oracle_accuracy": share(lambda r: any(r["cell_correct"])),
    }
