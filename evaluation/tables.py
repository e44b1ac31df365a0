"""Markdown tables of an evaluation, laid out like the paper's Table 2, each with a legend: from
stored labels (:func:`stored_table`) and with the VLM in the loop (:func:`vlm_table`)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

PLAIN, MAJORITY, ORACLE = "plain VLM (k=0)", "majority vote (k=1)", "oracle (k=1)"

#: Names of the scorer-free rows (both tables): a scorer may not take one, or its row and the
#: baseline's would be one key and one of them silently wrong.
RESERVED = ("overview only", "random crop", "majority vote", "oracle", "plain VLM", "random")
_GENERATED = re.compile(r"\(k=\d+\)| top-\d+ any")


def per_subject_accuracy(
    values: dict[str, list[float]], subjects: list[str]
) -> dict[str, dict[str, float]]:
    """Per row, the mean of its per-question values over each subject's questions."""
    out: dict[str, dict[str, float]] = {}
    for name, row in values.items():
        out[name] = {}
        for subject in sorted(set(subjects)):
            picked = [v for v, s in zip(row, subjects) if s == subject]
            out[name][subject] = sum(picked) / len(picked)
    return out


def check_scorer_names(names: Iterable[str]) -> None:
    """A ``ValueError`` naming ``--scorer`` for a scorer name that would collide with another
    row of the table: a baseline's name (any case) or a suffix the tables add (``(k=2)``,
    ``top-2 any``)."""
    for name in names:
        clash = next((r for r in RESERVED if name.strip().lower() == r.lower()), None)
        if clash is not None or _GENERATED.search(name) or not name.strip():
            raise ValueError(
                f"--scorer {name}=...: {name!r} would collide with a row of the table (reserved: "
                f"{', '.join(RESERVED)}, and the suffixes '(k=N)' and 'top-N any'): give the "
                "scorer another NAME, e.g. rnd=random:1"
            )


ROW_MEANINGS = {
    "overview only": "the VLM on the overview alone, no crop",
    "random crop": "expected accuracy of a uniformly random cell",
    "majority vote": "the answer most cells lead to (ties: the surer one), right or wrong",
    "oracle": "some cell is right: the upper bound of any one-crop selector",
}


def stored_row_meaning(method: str, scorers: dict[str, str]) -> str:
    """What a row of the table measures, in a few words."""
    if method in ROW_MEANINGS:
        return ROW_MEANINGS[method]
    name, _, k = method.partition(" top-")
    source = f" (`{scorers[name]}`)" if name in scorers else ""
    if k:
        return f"some of the {k.split()[0]} cells scorer `{name}`{source} ranks highest is right"
    return f"the cell scorer `{name}`{source} ranks highest"


def stored_table(results: dict[str, Any]) -> str:
    """Rows = methods, columns = overall accuracy, per subject, then ranking metrics; every
    accuracy and hit rate in %, MRR on 0-1; a legend of the rows and columns underneath."""
    subjects = sorted(next(iter(results["per_subject"].values()), {}))
    show_subjects = subjects if len(subjects) > 1 else []
    header = ["Method", "Accuracy (%)", *(f"{s} (%)" for s in show_subjects)]
    header += ["Hit rate (%)", "MRR (0-1)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, acc in results["accuracy"].items():
        rank = results["ranking"].get(method, {})
        cells = [method, f"{100 * acc:.1f}"]
        cells += [f"{100 * results['per_subject'][method][s]:.1f}" for s in show_subjects]
        cells += [
            f"{100 * rank['hit_rate']:.1f}" if rank else "",
            f"{rank['mrr']:.3f}" if rank else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    scorers = results.get("scorers", {})
    legend = [
        f"- {method}: {stored_row_meaning(method, scorers)}" for method in results["accuracy"]
    ]
    note = (
        f"\n{results['questions']} labelled questions of split `{results['split']}` "
        f"(grid {results['grid_n']}x{results['grid_n']}, evaluator `{results['evaluator']}`). "
        "Accuracy: % of questions the evaluator answers right with the row's cell. "
        "Hit rate: % whose top-ranked cell is a right one; MRR: mean of 1 / rank of the first "
        f"right cell (0-1, 1 = always first); both on the {results['rankable_questions']} "
        "questions with both a right and a wrong cell.\n\n" + "\n".join(legend) + "\n"
    )
    note += _protocol_lines(results)
    if results.get("forced"):
        note += "\n**Run with --force:** " + "; ".join(results["forced"]) + ".\n"
    return "\n".join(lines) + "\n" + note


def vlm_row_meaning(name: str, scorers: dict[str, str], draws: int) -> str:
    """What a row of the VLM-in-the-loop table measures."""
    fixed = {
        PLAIN: "the VLM on the overview alone (no crop)",
        "random (k=1)": "expected accuracy with one uniformly random crop (exact: mean over cells)",
        MAJORITY: "the answer most single crops lead to (ties: the surer one), right or wrong",
        ORACLE: "some single crop makes the VLM right: the upper bound of any one-crop selector",
    }
    if name in fixed:
        return fixed[name]
    scorer, _, k = name.rpartition(" (k=")
    k = k.rstrip(")")
    if scorer == "random":
        return f"expected accuracy with {k} random crops (mean of {draws} seeded draws)"
    source = scorers.get(scorer, "")
    return f"the overview plus the {k} crop(s) scorer `{scorer}` (`{source}`) ranks highest"


def vlm_table(results: dict[str, Any]) -> str:
    """Rows = methods; columns: accuracy, per subject (when several), the scorer's ranking
    metrics on the cells; a legend underneath."""
    subjects = sorted(next(iter(results["per_subject"].values()), {}))
    shown = subjects if len(subjects) > 1 else []
    header = ["Method", "Accuracy (%)", *(f"{s} (%)" for s in shown), "Hit rate (%)", "MRR (0-1)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, acc in results["accuracy"].items():
        rank = results["ranking"].get(name.rsplit(" (k=", 1)[0]) if name.endswith("(k=1)") else None
        cells = [name, f"{100 * acc:.1f}"]
        cells += [f"{100 * results['per_subject'][name][s]:.1f}" for s in shown]
        cells += [f"{100 * rank['hit_rate']:.1f}", f"{rank['mrr']:.3f}"] if rank else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    legend = [
        f"- {n}: {vlm_row_meaning(n, results['scorers'], results['random_draws'])}"
        for n in results["accuracy"]
    ]
    left = results["left_out"]
    note = (
        f"\n{results['questions']} questions of split `{results['split']}` of "
        f"`{results['dataset']}`, VLM `{results['vlm']}` ({results['family']}, {results['mode']}), "
        f"grid {results['grid_n']}x{results['grid_n']}"
        + (f"; left out: {left}" if left else "")
        + ". Accuracy: % of questions the VLM answers right with the row's input. Hit rate: % "
        "whose top-ranked cell alone makes the VLM right; MRR: mean of 1 / rank of the first "
        f"such cell (0-1); both on the {results['rankable_questions']} questions with both a "
        "right and a wrong cell.\n\n" + "\n".join(legend) + "\n"
    )
    note += _protocol_lines(results)
    if results.get("forced"):
        note += (
            "\n**Run with --force against the label set or a scorer:** "
            + "; ".join(results["forced"])
            + ". These rows do not measure what the labels or the scorer were made with.\n"
        )
    return "\n".join(lines) + "\n" + note


def _protocol_lines(results: dict[str, Any]) -> str:
    """CircularEval and the benchmark's own protocol, when they apply (one line each)."""
    lines = ""
    if results.get("circular_eval"):
        lines += (
            f"\nMMBench CircularEval: {results['questions']} questions of "
            f"{results['labelled_copies']} copies (grouped by `index % 1e6`); a question counts "
            "only if every copy is right (hit rate and MRR: per copy).\n"
        )
    if results.get("protocol"):
        lines += f"\n{results['protocol']}\n"
    return lines
