"""How each benchmark's published numbers are scored, where it differs from these tables.

``semclip-evaluate`` is the fast path: every row (random, majority, oracle, hit rate, MRR, from
stored labels or with the VLM in the loop) is scored by one-forward letters on this project's
prompts. Published numbers come from lmms-eval's own task code, which for some benchmarks
prompts, parses or aggregates otherwise; the tables then say so in one line and name the
lmms-eval task to report instead (through the ``semclip`` lmms-eval model).

MMBench is aggregated as lmms-eval and the benchmark's authors do in any case: **CircularEval**.
Its dev and test splits hold each question several times with the options rotated; the copies
share ``index % 1e6``, and a question counts as right only if every copy is. A row's per-copy
values (0/1, or an expectation such as the random crop's) are combined by their product (the
copies' picks are independent), so its number is never a per-copy accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

MMBENCH = "lmms-lab/MMBench"
SCIENCEQA = "derek-thomas/ScienceQA"

#: preset (hub id) -> (lmms-eval task, how lmms-eval scores it otherwise)
LMMS_TASKS: dict[str, tuple[str, str]] = {
    SCIENCEQA: (
        "scienceqa_img",
        "it generates the answer and parses the letter from the text",
    ),
    MMBENCH: (
        "mmbench_en_dev",
        "it prompts '{hint} {question} There are several options:' and parses generated text "
        "(CircularEval as here)",
    ),
    "lmms-lab/POPE": (
        "pope",
        "it asks '{question} Answer the question using a single word or phrase.', parses yes/no "
        "from generated text and reports accuracy, precision, recall, F1 and the yes-ratio",
    ),
    "Lin-Chen/MMStar": (
        "mmstar",
        "it keeps the options inline ('Options: A: x, B: y') and averages the accuracies of the "
        "l2_category groups",
    ),
    "lmms-lab/SEED-Bench": (
        "seedbench",
        "it generates the answer and parses the letter from the text",
    ),
}


def protocol_note(preset: str | None, dataset: str | None = None) -> str:
    """One line for a table of ``preset``'s questions, or ``""`` when lmms-eval has no task.

    The ScienceQA columns are also the mapping of any dataset that names no preset (the demo's
    synthetic set): the note is for ScienceQA itself only (``dataset`` its hub id)."""
    if preset not in LMMS_TASKS or (preset == SCIENCEQA and dataset != SCIENCEQA):
        return ""
    task, differs = LMMS_TASKS[preset]
    return (
        f"Not lmms-eval's protocol: {differs}. To stand next to published numbers, report "
        f"lmms-eval's `{task}` task through the `semclip` lmms-eval model."
    )


def circular_groups(indices: Sequence[Any]) -> list[list[int]]:
    """Positions of the copies of each question, by ``index % 1e6`` (first seen first)."""
    groups: dict[int, list[int]] = {}
    for position, index in enumerate(indices):
        groups.setdefault(int(index) % 1_000_000, []).append(position)
    return list(groups.values())


def circular(values: Sequence[float], groups: Sequence[Sequence[int]]) -> list[float]:
    """Per question: the product of its copies' values (right only if every copy is)."""
    return [math.prod(values[i] for i in group) for group in groups]


def circular_results(
    per_question: dict[str, list[float]],
    subjects: Sequence[str],
    groups: Sequence[Sequence[int]],
) -> tuple[dict[str, list[float]], list[str]]:
    """Every row's values and the subjects, one entry per question instead of per copy."""
    return (
        {name: circular(values, groups) for name, values in per_question.items()},
        [subjects[group[0]] for group in groups],
    )
