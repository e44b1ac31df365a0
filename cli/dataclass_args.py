"""A command line generated from a typed config dataclass, and YAML that mirrors it.

Every field is a flag (``max_rows`` -> ``--max-rows``; booleans get ``--no-...`` too) whose help is
the field's docstring and its default. A field whose type is itself a config dataclass (e.g.
``LabelConfig.vlm: VLMConfig``) is nested, not copied: its fields become flags of their own
(``--model``, ``--mode``), except those its ``metadata={"hidden": (...)}`` names. ``--config
job.yaml`` sets any of them, by field name, flat (``model: x``) or nested (``vlm: {model: x}``);
flags on the command line win over the file.

Building the parser imports nothing heavy (no torch, transformers or datasets) so that ``--help``
and flag mistakes answer at once.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from pathlib import Path
from typing import Any

import yaml

from semclip.cli.errors import OneLineParser


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


def nested_fields(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are config dataclasses themselves, by name."""
    hints = typing.get_type_hints(cls)
    return {
        f.name: hints[f.name]
        for f in dataclasses.fields(cls)
        if dataclasses.is_dataclass(hints[f.name])
    }


def flags_of(cls: type) -> list[tuple[str, dataclasses.Field, Any, str, str | None]]:
    """``(name, field, annotation, doc, nested_in)`` of every flag, nested configs flattened."""
    out = []
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    nested = nested_fields(cls)
    for f in dataclasses.fields(cls):
        if f.name in nested:
            inner = nested[f.name]
            hidden = set(f.metadata.get("hidden", ()))
            inner_docs, inner_hints = field_docs(inner), typing.get_type_hints(inner)
            for g in dataclasses.fields(inner):
                if g.name not in hidden:
                    doc = inner_docs.get(g.name, "")
                    out.append((g.name, g, inner_hints[g.name], doc, f.name))
        else:
            out.append((f.name, f, hints[f.name], docs.get(f.name, ""), None))
    return out


def build_parser(cls: type, prog: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """One flag per field of ``cls`` (nested configs flattened), plus ``--config``."""
    parser = OneLineParser(
        prog=prog,
        description=inspect.cleandoc(cls.__doc__ or ""),
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file of field: value (flags win over it)")
    names = []
    for name, f, annotation, doc, _ in flags_of(cls):
        flag = "--" + name.replace("_", "-")
        help_text = f"{plain_text(doc)} (default: {_shown(_default_of(f))})"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif typing.get_origin(annotation) is list:
            parser.add_argument(flag, nargs="+", help=help_text)
        else:
            parser.add_argument(flag, type=_converter(annotation), help=help_text)
        names.append(name)
    parser.set_defaults(**{name: None for name in names})
    return parser


def _read_yaml(config_path: str) -> dict[str, Any]:
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
    return {k.replace("-", "_"): v for k, v in loaded.items()}


def config_from_values(cls: type, values: dict[str, Any], source: str = "config") -> Any:
    """``cls`` built from flat values (nested configs' fields by their own names, or a nested
    mapping under the nested field's name); unknown keys are a ``ValueError`` naming them."""
    nested = nested_fields(cls)
    owner = {name: where for name, _, _, _, where in flags_of(cls)}
    known = set(owner) | set(nested)
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; known: {sorted(known)}")
    top: dict[str, Any] = {}
    inner: dict[str, dict[str, Any]] = {name: {} for name in nested}
    for key, value in values.items():  # nested mappings first: flat keys (flags) win over them
        if key in nested:
            if not isinstance(value, dict):
                raise ValueError(f"{source}: {key} must be a mapping of its fields")
            inner_known = {f.name for f in dataclasses.fields(nested[key])}
            if bad := sorted(set(value) - inner_known):
                raise ValueError(f"{source}: unknown key(s) {bad} under {key}")
            inner[key].update(value)
    for key, value in values.items():
        if key in nested:
            continue
        if owner[key] is None:
            top[key] = value
        else:
            inner[owner[key]][key] = value
    for name, fields_ in inner.items():
        top[name] = nested[name](**fields_)
    return cls(**top)


def parse_config(argv: list[str] | None, cls: type, prog: str, epilog: str | None = None) -> Any:
    """Defaults < ``--config`` YAML < command-line flags; then ``validate()``."""
    args = vars(build_parser(cls, prog, epilog).parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config")
    if config_path:
        values.update(_read_yaml(config_path))
    source = config_path or "config"
    values.update({k: v for k, v in args.items() if v is not None})
    config = config_from_values(cls, values, source)
    config.validate()
    return config
