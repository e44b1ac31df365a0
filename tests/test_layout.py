"""The house: which room imports which, where family facts live, and module sizes.

Read from the source with ``ast`` (imports inside functions count too), so a lazy import cannot
slip past the rule.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from semclip.vlm.families import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
ROOMS = (
    "cli",
    "data",
    "vlm",
    "models",
    "labeling",
    "training",
    "inference",
    "evaluation",
    "integrations",
)

#: room -> the rooms of ours it may import (besides itself)
ALLOWED = {
    "cli": {"data", "vlm"},
    "data": set(),
    "vlm": {"data"},
    "models": {"data"},
    "labeling": {"cli", "data", "vlm"},
    "training": {"cli", "data", "models", "evaluation.metrics"},
    "inference": {"data", "vlm", "models"},
    "evaluation": {"data", "vlm", "models", "labeling", "inference"},
    "integrations": {"cli", "data", "vlm", "models", "inference", "evaluation"},
}


def modules(room: str) -> list[Path]:
    return sorted((ROOT / room).rglob("*.py"))  # a room not made yet has none


def imported(path: Path) -> set[str]:
    """The ``semclip.*`` modules a file imports, anywhere in it."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("semclip."):
            out.add(node.module.removeprefix("semclip."))
        elif isinstance(node, ast.Import):
            out |= {
                a.name.removeprefix("semclip.") for a in node.names if a.name.startswith("semclip.")
            }
    return out


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_the_rooms_below_them(room):
    allowed = ALLOWED[room] | {room}
    bad = []
    for path in modules(room):
        for name in imported(path):
            if not any(name == a or name.startswith(a + ".") for a in allowed):
                bad.append(f"{path.relative_to(ROOT)} imports semclip.{name}")
    assert not bad, "\n".join(bad)


def test_evaluation_metrics_import_nothing_of_ours():
    assert imported(ROOT / "evaluation" / "metrics.py") == set()


def test_no_family_name_outside_the_family_registry():
    """Family facts live in ``vlm/``: no library module outside it compares or names a
    ``model_type`` of a VLM family (tests and benchmarks pick families by name, as users do)."""
    names = "|".join(re.escape(n) for n in FAMILIES)
    quoted = re.compile(rf"""["']({names})["']""")
    bad = []
    for room in ROOMS:
        if room == "vlm":
            continue
        for path in modules(room):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if quoted.search(line) or "model_type ==" in line:
                    bad.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    for path in ROOT.glob("*.py"):  # the entry points
        text = path.read_text(encoding="utf-8")
        if quoted.search(text) or "model_type ==" in text:
            bad.append(str(path.relative_to(ROOT)))
    assert not bad, "\n".join(bad)


def test_no_module_above_400_lines_without_a_reason():
    long = []
    for path in [p for room in ROOMS for p in modules(room)] + sorted(ROOT.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400 and "Longer than 400 lines on purpose" not in text:
            long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
    assert not long, "\n".join(long)
