"""The labeling job's typed config and its command line (flags generated from the dataclass).

Every field is a flag (``max_rows`` -> ``--max-rows``; booleans get ``--no-...`` too) whose help is
the field's docstring and its default; ``--config job.yaml`` sets any of them (keys as field
names), and flags on the command line win over the file.

Building the parser imports nothing heavy (no torch, transformers or datasets) so that ``--help``
and flag mistakes answer at once; the VLM's own checks are imported in :meth:`LabelConfig.validate`.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semclip.data.errors import OneLineParser
from semclip.data.grid import MAX_GRID, MIN_GRID, check_grid
from semclip.data.hub import probe_hub
from semclip.data.images import DEFAULT_ALPHA, DEFAULT_MAX_PIXELS
from semclip.data.presets import ColumnMap, parse_columns, resolve_columns
from semclip.data.prompts import DEFAULT_TEMPLATE, LLAVA15_SYSTEM
from semclip.data.scienceqa import DEFAULT_DATASET, check_local_source

#: ``semclip.labeling.hf_evaluator.DEFAULT_VLM``, repeated here because importing that module
#: imports torch (seconds) just to print ``--help``; a test keeps the two equal.
DEFAULT_VLM = "llava-hf/llava-1.5-7b-hf"

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
    model: str = DEFAULT_VLM
    """VLM hub id or local folder (``--evaluator hf``)."""
    revision: str | None = None
    """VLM hub revision."""
    dtype: str = "auto"
    """auto (bf16 on GPU, fp32 on CPU), bfloat16, float16 or float32."""
    mode: str = "logprob"
    """``logprob`` (one forward, letter log-probs) or ``generate`` (greedy, lmms-eval parsing)."""
    prefix_sharing: bool = True
    """Reuse the [prompt start + overview] KV cache across a question's cells."""
    max_new_tokens: int = 16
    """Generation budget per pair with ``--mode generate``."""
    prompt_format: str = "auto"
    """``auto``, ``llava15`` or ``chat_template``."""
    system_prompt: str = LLAVA15_SYSTEM
    """System line of the llava15 format (LLaVA-1.5's own evaluation uses it); "" for none."""
    image_backend: str = "auto"
    """VLM image processor backend: auto (torchvision when installed, else PIL), pil or
    torchvision; the one used is recorded in labelset.json and the resume key."""
    alpha: str = DEFAULT_ALPHA
    """Transparent images: drop (PIL convert("RGB"), as LLaVA's loaders) or white (composite)."""
    trust_remote_code: bool = False
    """Run custom model code from the hub (only for repositories you trust)."""
    batch_size: int = 4
    """Questions per step."""
    max_rows: int = 32
    """Most sequences in one forward (halved on CUDA out-of-memory)."""
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
    template: str = DEFAULT_TEMPLATE
    """Question prompt template with {context}, {question} and {options}."""
    min_visible: float = 0.4
    """Simulated evaluator: smallest legible object side, as a fraction of the view's side."""
    progress: bool = True
    """Show a progress bar."""

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
            self.column_map()
        except ValueError as err:
            flag = "--columns" if self.columns and not str(err).startswith("--") else ""
            raise ValueError(f"{flag}{': ' if flag else ''}{err}") from None
        if self.evaluator == "hf":
            from semclip.labeling.hf_evaluator import HFEvaluatorConfig

            HFEvaluatorConfig(
                model=self.model,
                dtype=self.dtype,
                mode=self.mode,
                prompt_format=self.prompt_format,
                max_rows=self.max_rows,
                image_backend=self.image_backend,
                alpha=self.alpha,
            ).validate()  # before any model is loaded
            local = self.model.startswith((".", "/", "~"))
            if local and not Path(self.model).expanduser().is_dir():
                raise ValueError(f"--model {self.model}: no such folder")


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


def check_model_available(model: str, revision: str | None = None) -> None:
    """Raise ``OSError`` naming ``--model`` when it is a hub id that cannot be had: offline and not
    cached, not on the hub, or the hub unreachable. Seconds, where ``from_pretrained`` retries for
    minutes. A local folder passes (:meth:`LabelConfig.validate` checks it exists).
    """
    if Path(model).expanduser().exists():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        try:
            cached = try_to_load_from_cache(model, "config.json", revision=revision)
        except ValueError:  # not a valid repository id
            cached = None
        if not isinstance(cached, str):
            raise OSError(
                f"--model {model} is neither a folder here nor in the hub cache, and the hub is "
                "off (HF_HUB_OFFLINE is set): pass a local model folder with --model, or unset "
                "HF_HUB_OFFLINE and go online to download it"
            )
        return
    status = probe_hub(model, "model", revision)
    if status == "missing":
        raise OSError(
            f"--model {model} is neither a folder here nor on the Hugging Face Hub (if it is "
            "private, log in with `hf auth login`): check the name"
        )
    if status is not None:
        raise OSError(
            f"--model {model} is not a folder here and the Hugging Face Hub cannot be reached "
            f"({status}): pass a local model folder, set HF_HUB_OFFLINE=1 to use a cached copy, "
            "or go online"
        )


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field, by field name."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def plain_text(doc: str) -> str:
    """A docstring as help text: RST markup (``x``, :class:`x`) reduced to its text."""
    doc = re.sub(r":\w+:`~?([^`]+)`", r"\1", doc)
    return re.sub(r"``([^`]+)``", r"\1", doc)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    if isinstance(value, str) and ("\n" in value or not value):
        return repr(value)
    return str(value)


def _converter(annotation: Any):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    if base is int:
        return int
    if base is float:
        return float
    return str


def build_parser(
    cls: type = LabelConfig, prog: str = "semclip-label", epilog: str | None = EXAMPLES
) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description=inspect.cleandoc(cls.__doc__ or ""),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of field: value (flags win over it)")
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag, annotation = "--" + f.name.replace("_", "-"), hints[f.name]
        help_text = f"{plain_text(docs.get(f.name, ''))} (default: {_shown(_default_of(f))})"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(annotation) is list:
            parser.add_argument(flag, nargs="+", help=help_text)
        else:
            parser.add_argument(flag, type=_converter(annotation), help=help_text)
    parser.set_defaults(**{f.name: None for f in dataclasses.fields(cls)})
    return parser


def parse_config(argv: list[str] | None, cls: type = LabelConfig) -> Any:
    """Defaults < ``--config`` YAML < command-line flags; then validate."""
    args = vars(build_parser(cls).parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config")
    if config_path:
        try:
            loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
        except OSError as err:
            raise ValueError(f"--config {config_path}: {err.strerror or err}") from None
        except yaml.YAMLError as err:
            where = getattr(err, "problem_mark", None)
            line = f" at line {where.line + 1}" if where else ""
            raise ValueError(f"--config {config_path}: not valid YAML{line}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"--config {config_path}: expected field: value pairs")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(k.replace("-", "_") for k in loaded) - names)
        if unknown:
            raise ValueError(f"{config_path}: unknown key(s) {unknown}; known: {sorted(names)}")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in args.items() if v is not None})
    config = cls(**values)
    config.validate()
    return config
