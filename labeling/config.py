"""The labeling job's typed config; its command line is generated from it
(``semclip.cli.dataclass_args``): every field is a flag, the nested VLM config's fields too.

Light imports only, so that ``--help`` and flag mistakes answer at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semclip.cli.dataclass_args import config_from_values, parse_config
from semclip.data.columns import ColumnMap
from semclip.data.grid import MAX_GRID, MIN_GRID, check_grid
from semclip.data.images import DEFAULT_MAX_PIXELS
from semclip.data.presets import parse_columns, resolve_columns
from semclip.data.scienceqa import DEFAULT_DATASET, check_local_source, check_local_splits
from semclip.vlm.config import DEFAULT_VLM, VLMConfig

PROG = "semclip-label"

EXAMPLES = f"""\
A bare `python label.py` labels the train split of {DEFAULT_DATASET} with
{DEFAULT_VLM}: both are downloaded from the Hugging Face Hub on first use
(the model is about 14 GB; a GPU is advised).

examples:
  # the synthetic demo set on CPU, no model (`python demo.py` writes demo_out/synthetic)
  python label.py --dataset demo_out/synthetic --splits train test \\
      --evaluator simulated --output-dir demo_out/labels
  # ScienceQA with LLaVA-1.5-7B on GPU(s), settings from a YAML file, one flag overriding it
  python label.py --config configs/label_llava15_scienceqa.yaml --limit 100
  # a local parquet copy, 3 x 3 grid, two splits
  python label.py --dataset scienceqa/*.parquet --splits train validation --grid 3
  # another benchmark's local copy through its preset, or any dataset through a mapping
  python label.py --dataset mmbench/ --preset lmms-lab/MMBench --splits dev
  python label.py --dataset my.parquet --columns question=Q,choices=A|B|C,answer=Ans

A mistake is one line; --debug (or SEMCLIP_DEBUG=1) shows its traceback.
"""


@dataclass
class LabelConfig:
    """Label a multiple-choice dataset with a VLM: for every question with an image and every grid
    cell, the VLM is shown [overview, cell, question] and whether it answers correctly is recorded
    (the overview alone gives the baseline); every other row is recorded as skipped, with its
    reason. Every flag can also be set in --config YAML."""

    dataset: str = DEFAULT_DATASET
    """Hub id, ``save_to_disk`` folder or parquet file(s) (columns: --preset)."""
    dataset_revision: str | None = None
    """Hub revision of the dataset."""
    preset: str | None = None
    """Column preset, by hub id: derek-thomas/ScienceQA, lmms-lab/MMBench, lmms-lab/SEED-Bench,
    Lin-Chen/MMStar, lmms-lab/POPE, craigwu/vstar_bench, HuggingFaceM4/A-OKVQA; default: the
    preset of --dataset if it is one of them, else the ScienceQA columns."""
    columns: str | None = None
    """Column mapping over the preset, as field=column pairs, e.g.
    ``question=Question,choices=A|B|C|D,answer=Answer,answer_format=letter,hint=``."""
    splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits to label."""
    grid: int = 2
    """Grid n (1..8): each image is cut into n x n cells."""
    evaluator: str = "hf"
    """``hf`` (a Hugging Face VLM), ``simulated`` (the synthetic set's stand-in; no model), or
    ``package.module:Class``: your evaluator, constructed with this LabelConfig."""
    evaluator_config: str | None = None
    """Your evaluator's own settings: a YAML/JSON file or an inline mapping (``{judge: gpt,
    retries: 3}``), passed as keyword arguments: ``Class(config, **settings)``."""
    vlm: VLMConfig = field(default_factory=VLMConfig, metadata={"hidden": ("device",)})
    """The VLM and what it is shown (``--evaluator hf``): its fields are flags of their own."""
    batch_size: int = 4
    """Questions per step."""
    output_dir: str = "labels"
    """Folder of the label set."""
    limit: int | None = None
    """Label at most this many questions per split (the first ones)."""
    overwrite: bool = False
    """Relabel: delete this evaluator's existing shards for the splits first."""
    flush_every: int = 32
    """Questions buffered before a shard is written (the most a kill can lose)."""
    num_shards: int = 1
    """Job-array size: split the questions into this many disjoint parts."""
    shard_index: int = 0
    """Which part this job labels (0-based)."""
    accelerator: str = "auto"
    """Lightning accelerator: auto, cpu, gpu."""
    devices: str | int = "1"
    """Lightning devices per node: a count, ``auto``, or a list such as ``0,1``."""
    num_nodes: int = 1
    """Nodes (multi-node through Lightning's cluster environments)."""
    strategy: str = "auto"
    """Lightning strategy (``auto`` picks DDP for several devices)."""
    num_workers: int = 0
    """DataLoader workers decoding and cropping images."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Largest image (width * height) accepted; larger ones are skipped."""
    min_visible: float = 0.4
    """Simulated evaluator: smallest legible object side, as a fraction of the view's side."""
    progress: bool = True
    """Show a progress bar."""

    @classmethod
    def from_values(cls, **values: Any) -> LabelConfig:
        """A config from flag names, as the command line and YAML give them: the VLM's own
        (``model``, ``mode``, ...) go to the nested :class:`VLMConfig`."""
        return config_from_values(cls, values)

    def column_map(self) -> ColumnMap:
        """The columns the dataset is read through: ``--preset`` (or the dataset's own preset),
        then ``--columns`` over it (a dict of ColumnMap fields in YAML)."""
        base = resolve_columns(self.preset, self.dataset)
        if isinstance(self.columns, dict):
            return ColumnMap.from_dict({**base.to_dict(), "name": "", **self.columns})
        return parse_columns(self.columns, base) if self.columns else base

    def validate(self) -> None:
        if self.evaluator not in ("hf", "simulated"):
            evaluator_class(self.evaluator)  # a user class: importable, before any work
            evaluator_settings(self.evaluator_config)
        elif self.evaluator_config is not None:
            raise ValueError("--evaluator-config is for your own --evaluator package.module:Class")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(
                f"--shard-index must be in 0..{self.num_shards - 1} "
                f"(--num-shards {self.num_shards})"
            )
        if self.batch_size < 1 or self.flush_every < 1:
            raise ValueError("--batch-size and --flush-every must be >= 1")
        if not self.splits:
            raise ValueError("--splits needs at least one split")
        try:
            check_grid(self.grid)
        except ValueError:
            raise ValueError(
                f"--grid must be an integer in {MIN_GRID}..{MAX_GRID}, got {self.grid!r}"
            ) from None
        check_local_source(self.dataset)  # a mistyped folder, before any hub call
        try:
            columns = self.column_map()
        except ValueError as err:
            flag = "--columns" if self.columns and not str(err).startswith("--") else ""
            raise ValueError(f"{flag}{': ' if flag else ''}{err}") from None
        check_local_splits(self.dataset, self.splits, columns)  # a mistyped --splits, at once
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"--limit must be >= 0 (questions per split), got {self.limit}")
        self.vlm.validate()  # a bad --mode or --alpha is a mistake whatever the evaluator
        if self.evaluator == "hf":
            local = self.vlm.model.startswith((".", "/", "~"))
            if local and not Path(self.vlm.model).expanduser().is_dir():
                raise ValueError(f"--model {self.vlm.model}: no such folder")


def evaluator_settings(value: str | dict | None) -> dict[str, Any]:
    """``--evaluator-config`` as a dict: a mapping (from YAML), a file, or inline YAML/JSON."""
    if value is None or isinstance(value, dict):
        return dict(value or {})
    path = Path(value).expanduser()
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8") if path.is_file() else value)
    except yaml.YAMLError:
        loaded = None
    if not isinstance(loaded, dict):
        raise ValueError(
            f"--evaluator-config {value}: not a file nor a mapping such as '{{judge: gpt}}'"
        )
    return loaded


def evaluator_class(spec: str) -> type:
    """The class ``package.module:Class`` names; a ``ValueError`` naming ``--evaluator`` when it
    is not of that form, cannot be imported, or lacks ``score``."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise ValueError(
            f"--evaluator must be 'hf', 'simulated' or package.module:Class, got {spec!r}"
        )
    import importlib
    import os
    import sys

    if os.getcwd() not in sys.path:  # a module beside the user, as `python -m` would find it
        sys.path.append(os.getcwd())
    try:
        found = importlib.import_module(module_name)
        for part in name.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--evaluator {spec}: cannot import it ({err})") from None
    if not isinstance(found, type) or not callable(getattr(found, "score", None)):
        raise ValueError(f"--evaluator {spec}: not a class with a score(items) method")
    return found


def parse_label_config(argv: list[str] | None) -> LabelConfig:
    """The labeling job's config: defaults < ``--config`` YAML < command-line flags."""
    return parse_config(argv, LabelConfig, PROG, EXAMPLES)
