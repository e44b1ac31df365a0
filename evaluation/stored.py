"""Evaluation from a labelled split, with no VLM re-run: the label set already holds, for every
question, whether the evaluator answered right with each cell and with the overview alone.

Rows (accuracy over the labelled questions):

- overview only: the VLM on the overview alone (``base_correct``);
- random crop: the expected accuracy of a uniformly random cell (mean of ``cell_correct``);
- majority vote: the most common predicted letter over the cells (ties: highest summed
  probability), right or wrong;
- oracle: some cell is right (the paper's upper bound);
- each scorer: the cell it scores highest; for k > 1, "top-k any": some of its k best cells is
  right (an upper bound for feeding k crops, which the single-crop labels cannot measure exactly).

Ranking metrics (hit rate, MRR, pairwise accuracy) of each scorer are computed on the questions that
have both a positive and a negative cell. Results go to JSON, a Markdown table laid out like the
paper's Table 2, and a bar chart.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from semclip.data.images import ImageError, load_image
from semclip.data.labels import read_info, read_labels
from semclip.data.scienceqa import labelled_source_args, load_qa_dataset, question_id
from semclip.evaluation.chart import bar_chart
from semclip.evaluation.metrics import RankingMetrics, top1_expected
from semclip.evaluation.protocols import MMBENCH, circular_groups, circular_results, protocol_note
from semclip.evaluation.tables import (
    ROW_MEANINGS,
    check_scorer_names,
    per_subject_accuracy,
    stored_table,
)
from semclip.models.scorer import scorer_text
from semclip.models.selector import Selector

logger = logging.getLogger(__name__)


@dataclass
class EvalConfig:
    """What to evaluate."""

    labels_dir: str
    """Folder of the label set."""
    split: str = "test"
    """Labelled split to evaluate on."""
    scorers: dict[str, str] = field(default_factory=dict)
    """Scorer name -> hub id or folder (e.g. ``zero-shot`` -> a stock CLIP)."""
    ks: list[int] = field(default_factory=lambda: [1])
    """Crops per question to report for each scorer."""
    dataset: str | None = None
    """Source dataset; default: the one in ``labelset.json``."""
    batch_size: int = 32
    """Questions scored per batch."""
    device: str | None = None
    """Device for the scorers."""
    out_dir: str = "eval"
    """Where results.json, table.md and accuracy.png go."""
    force: bool = False
    """Evaluate a scorer trained on another grid than the labels' anyway (the table says so)."""


def majority_correct(row: dict[str, Any]) -> bool:
    """Whether the majority letter over the cells is right (ties: highest summed probability)."""
    letters = row["letters"]
    votes = Counter(p for p in row["cell_pred"] if p in letters)
    if not votes:
        return False
    top = max(votes.values())
    tied = [letter for letter, count in votes.items() if count == top]
    mass = {letter: 0.0 for letter in tied}
    for logprobs in row["cell_logprobs"]:
        norm = math.log(sum(math.exp(v) for v in logprobs))
        for letter in tied:
            mass[letter] += math.exp(logprobs[letters.index(letter)] - norm)
    winner = max(tied, key=lambda letter: (mass[letter], -letters.index(letter)))
    return winner == letters[row["answer"]]


def baseline_rows(rows: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-question correctness (0..1) of the scorer-free rows."""
    return {
        "overview only": [float(r["base_correct"]) for r in rows],
        "random crop": [sum(r["cell_correct"]) / len(r["cell_correct"]) for r in rows],
        "majority vote": [float(majority_correct(r)) for r in rows],
        "oracle": [float(any(r["cell_correct"])) for r in rows],
    }


def scorer_rows(
    name: str, scores: torch.Tensor, rows: Sequence[dict[str, Any]], ks: Sequence[int]
) -> dict[str, list[float]]:
    """Per-question correctness of a scorer's top-1 cell (cells tied for the best score count as
    a uniformly random pick among them, as the hit rate does), and "top-k any" for k > 1."""
    out = {}
    for k in ks:
        if k == 1:
            correct = torch.tensor([r["cell_correct"] for r in rows], dtype=torch.float)
            out[name] = top1_expected(scores, correct).tolist()
            continue
        top = torch.topk(scores, k, dim=1).indices.tolist()
        label = f"{name} top-{k} any"
        out[label] = [float(any(r["cell_correct"][i] for i in t)) for r, t in zip(rows, top)]
    return out


def check_rows(rows: Sequence[dict[str, Any]], source) -> None:
    """A ``ValueError`` when a labelled row is not in ``source`` (another, shorter copy)."""
    last = max((r["row"] for r in rows), default=-1)
    if last >= len(source):
        (r,) = [r for r in rows if r["row"] == last][:1]
        raise ValueError(
            f"label {r['qid']} is row {r['row']} of split {r['split']}, but the source "
            f"dataset's split has {len(source)} rows: were the labels made from another "
            "copy of the dataset? (--dataset)"
        )


def score_split(
    selector: Selector,
    rows: Sequence[dict[str, Any]],
    source,
    batch_size: int,
) -> torch.Tensor:
    """``(Q, n*n)`` scores of every labelled question's cells (cut as the labels recorded); the
    rows must be in ``source`` (:func:`check_rows`)."""
    grid = rows[0]["grid_n"]
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        examples = [source[r["row"]] for r in batch]
        images, texts = [], []
        for row, example in zip(batch, examples):
            qid = question_id(row["split"], row["row"], example["question"], example["choices"])
            if qid != row["qid"]:
                raise ValueError(
                    f"label {row['qid']} does not match row {row['row']} of the source dataset: "
                    "were the labels made from another copy or revision of it? (--dataset)"
                )
            try:
                images.append(load_image(example["image"]))
            except ImageError as err:  # labelled once, unreadable now: the data changed under us
                raise ValueError(f"{row['qid']}: image no longer readable ({err})") from err
            texts.append(
                scorer_text(
                    example["question"],
                    example["hint"],
                    example["choices"],
                    selector.scorer.text_mode,
                )
            )
        scores, cells = selector.cell_scores(images, texts, grid)
        for row, image_cells in zip(batch, cells):
            if [list(c.box) for c in image_cells] != row["cell_boxes"]:
                raise ValueError(f"{row['qid']}: cell boxes differ from the labelled ones")
        out.append(scores)
    return torch.cat(out)


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """Compute every row; write results.json, table.md and accuracy.png to ``config.out_dir``."""
    check_scorer_names(config.scorers)
    info = read_info(config.labels_dir)
    key = info.provenance.resume_key if info else None
    rows = [
        r
        for r in read_labels(config.labels_dir, config.split, key).to_pylist()
        if r["status"] == "labelled"
    ]
    if not rows:
        found = sorted(info.splits) if info else []
        hint = f"splits in the label set: {', '.join(found)}" if found else "no labelset.json there"
        raise ValueError(
            f"no labelled questions in split {config.split!r} of {config.labels_dir} ({hint}; "
            "pick one with --split, or label it first with semclip-label)"
        )
    grid = rows[0]["grid_n"]
    if too_big := [k for k in config.ks if not 1 <= k <= grid * grid]:
        raise ValueError(f"--k {too_big[0]}: a {grid}x{grid} grid has 1..{grid * grid} cells")
    accuracy = baseline_rows(rows)
    ranking: dict[str, dict[str, float]] = {}
    forced: list[str] = []
    rankable = torch.tensor([any(r["cell_correct"]) and not all(r["cell_correct"]) for r in rows])
    labels = torch.tensor([r["cell_correct"] for r in rows])
    source = None
    if config.scorers:
        source_name = config.dataset or (info.dataset if info else None)
        if source_name is None:
            raise ValueError(
                "the label set has no labelset.json naming its source dataset: pass --dataset "
                "(the folder or hub id it was labelled from)"
            )
        source = load_qa_dataset(**labelled_source_args(info, config.split, config.dataset))
        check_rows(rows, source)  # before any scorer loads
        for name, path in config.scorers.items():
            logger.info("scoring %d questions with %s (%s)", len(rows), name, path)
            selector = Selector.from_pretrained(path, device=config.device)
            trained = getattr(getattr(selector, "scorer", None), "grid", None)
            if trained is not None and trained != grid:
                note = f"--scorer {name}: trained on a {trained}x{trained} grid, the labels are on "
                if not config.force:
                    raise ValueError(
                        f"{note}{grid}x{grid}: label a {trained}x{trained} set for it, or pass "
                        "--force to evaluate it anyway (the table says so)"
                    )
                forced.append(f"{note}{grid}x{grid}")
            scores = score_split(selector, rows, source, config.batch_size)
            accuracy.update(scorer_rows(name, scores, rows, config.ks))
            if rankable.any():  # no question with a right and a wrong cell: left blank
                metric = RankingMetrics()
                metric.update(scores[rankable], labels[rankable])
                ranking[name] = {k: float(v) for k, v in metric.compute().items()}
    preset = (info.columns or {}).get("name") if info else None
    subjects = [r["subject"] or "-" for r in rows]
    copies = len(rows)
    if preset == MMBENCH:  # CircularEval: one entry per question, right only if every copy is
        if source is None:
            source = load_qa_dataset(**labelled_source_args(info, config.split, config.dataset))
        texts = source.texts()
        groups = circular_groups([texts[r["row"]]["index"] for r in rows])
        accuracy, subjects = circular_results(accuracy, subjects, groups)
    results = {
        "split": config.split,
        "questions": len(subjects),
        "labelled_copies": copies,
        "circular_eval": preset == MMBENCH,
        "protocol": protocol_note(preset, info.dataset if info else None),
        "rankable_questions": int(rankable.sum()),
        "evaluator": info.provenance.evaluator if info else None,
        "grid_n": rows[0]["grid_n"],
        "accuracy": {m: sum(v) / len(v) for m, v in accuracy.items()},
        "per_subject": per_subject_accuracy(accuracy, subjects),
        "forced": forced,
        "ranking": ranking,
        "scorers": dict(config.scorers),
    }
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "table.md").write_text(stored_table(results), encoding="utf-8")
    title = f"Accuracy on split '{config.split}' ({len(subjects)} questions, grid {grid}x{grid})"
    scored = [m for m in results["accuracy"] if m not in ROW_MEANINGS]
    chart = bar_chart(results["accuracy"], title, scored)
    chart.save(out / "accuracy.png")
    return results
