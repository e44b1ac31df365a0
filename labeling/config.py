"""The labeling job's typed config and its command line (flags generated from the dataclass).

Every field is a flag (``max_rows`` -> ``--max-rows``; booleans get ``--no-...`` too) whose help is
the field's docstring; ``--config job.yaml`` sets any of them (keys as field names), and flags on
the command line win over the file.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from semclip.data.images import DEFAULT_MAX_PIXELS
from semclip.data.prompts import DEFAULT_TEMPLATE
from semclip.data.scienceqa import DEFAULT_DATASET
from semclip.labeling.hf_evaluator import DEFAULT_VLM, HFEvaluatorConfig


@dataclass
class LabelConfig:
    """Everything a labeling run needs."""

    dataset: str = DEFAULT_DATASET
    """Hub id, ``save_to_disk`` folder or parquet file(s) in the ScienceQA schema."""
    dataset_revision: str | None = None
    """Hub revision of the dataset."""
    splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits to label."""
    grid: int = 2
    """Grid n: each image is cut into n x n cells."""
    evaluator: str = "hf"
    """``hf`` (a Hugging Face VLM) or ``simulated`` (the synthetic set's stand-in; no model)."""
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

    def validate(self) -> None:
        if self.evaluator not in ("hf", "simulated"):
            raise ValueError(f"--evaluator must be 'hf' or 'simulated', got {self.evaluator!r}")
        if not 0 <= self.shard_index < self.num_shards:
            raise ValueError(
                f"--shard-index must be in 0..{self.num_shards - 1} "
                f"(--num-shards {self.num_shards})"
            )
        if self.batch_size < 1 or self.flush_every < 1:
            raise ValueError("--batch-size and --flush-every must be >= 1")
        if not self.splits:
            raise ValueError("--splits needs at least one split")
        if self.evaluator == "hf":
            HFEvaluatorConfig(
                model=self.model,
                dtype=self.dtype,
                mode=self.mode,
                prompt_format=self.prompt_format,
                max_rows=self.max_rows,
            ).validate()  # before any model is loaded
            local = self.model.startswith((".", "/", "~"))
            if local and not Path(self.model).expanduser().is_dir():
                raise ValueError(f"--model {self.model}: no such folder")


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


def _converter(annotation: Any):
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    base = args[0] if args else annotation
    if base is int:
        return int
    if base is float:
        return float
    return str


def build_parser(cls: type = LabelConfig, prog: str = "semclip-label") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(cls.__doc__ or "").strip())
    parser.add_argument("--config", help="YAML file of field: value (flags win over it)")
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag, annotation = "--" + f.name.replace("_", "-"), hints[f.name]
        help_text = docs.get(f.name, "")
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
        loaded = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(k.replace("-", "_") for k in loaded) - names)
        if unknown:
            raise ValueError(f"{config_path}: unknown key(s) {unknown}; known: {sorted(names)}")
        values.update({k.replace("-", "_"): v for k, v in loaded.items()})
    values.update({k: v for k, v in args.items() if v is not None})
    config = cls(**values)
    config.validate()
    return config
