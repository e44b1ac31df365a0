"""Evaluation with the VLM in the loop: what SemClip does for a VLM on a multiple-choice split.

For every question the VLM is run on the overview alone and on [overview, cell] for every cell of
the n x n grid (the labeling stage's own scoring, so these rows equal the stored-label evaluation
of ``semclip.evaluation.stored`` on the same questions), and on [overview, top-k crops] for each
scorer and each k >= 2. Rows (accuracy over the questions):

- plain VLM (k=0): the overview alone;
- random (k=1): the expected accuracy of a uniformly random cell (exact: mean over the cells);
- majority vote (k=1): the most common answer over the cells, right or wrong;
- oracle (k=1): some cell is right (the upper bound of any one-crop selector);
- NAME (k=1), NAME (k=2), ...: the VLM fed the overview and scorer NAME's top-k crops, best first;
- random (k=2), ...: the expected accuracy of k random crops (mean over ``random_draws`` seeded
  draws per question).

Per subject too, ranking metrics of each scorer, and the same JSON / Markdown / bar chart outputs
as the stored-label evaluation.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from semclip.data.columns import ColumnMap
from semclip.data.images import DEFAULT_MAX_PIXELS
from semclip.data.scienceqa import dataset_identity, load_qa_dataset, source_records
from semclip.evaluation.chart import bar_chart
from semclip.evaluation.metrics import RankingMetrics, top1_expected
from semclip.evaluation.protocols import MMBENCH, circular_groups, circular_results, protocol_note
from semclip.evaluation.stored import baseline_rows
from semclip.evaluation.tables import (
    MAJORITY,
    ORACLE,
    PLAIN,
    check_scorer_names,
    per_subject_accuracy,
    vlm_table,
)
from semclip.inference.scorers import CellScorer, Query, load_scorer
from semclip.inference.semclip import Prepared, SemClip
from semclip.labeling.evaluator import (
    MODEL_ERROR,
    IsolatedScorer,
    LabelItem,
    Skip,
    device_error,
    label_row,
    prepare_item,
    refuse_upfront,
)
from semclip.labeling.hf_evaluator import HFEvaluator
from semclip.vlm.config import VLMConfig
from semclip.vlm.runtime import VLM

logger = logging.getLogger(__name__)


@dataclass
class VLMEvalConfig:
    """What to evaluate with the VLM in the loop."""

    vlm: VLMConfig
    """The VLM (any family labeling supports) and what it is shown; keep it as the labels were
    made (``labelset.json``'s ``vlm``)."""
    dataset: str
    """Source dataset: hub id, ``save_to_disk`` folder or parquet file(s)."""
    split: str = "test"
    """Split to evaluate on."""
    columns: ColumnMap | str | None = None
    """Column mapping (``semclip.data.columns``) or preset hub id; ``None``: the dataset's own
    preset, else the ScienceQA columns."""
    scorers: dict[str, str] = field(default_factory=dict)
    """Row name -> scorer (exported folder or hub id, ``vlm-psi``)."""
    ks: list[int] = field(default_factory=lambda: [1, 2])
    """Crops fed to the VLM for each scorer (and for random)."""
    grid: int = 2
    """Grid n of the crops."""
    random_draws: int = 4
    """Draws per question for the random rows with k >= 2."""
    seed: int = 0
    """Seed of the random draws."""
    limit: int | None = None
    """Evaluate at most this many questions (the first ones)."""
    batch_size: int = 8
    """Questions per batch."""
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    """Largest image (width * height) accepted; keep the label set's."""
    force: bool = False
    """Run even when a scorer was trained on another grid (the results say so)."""
    forced: list[str] = field(default_factory=list)
    """What was run against the label set's or a scorer's settings (``--force``): in the
    results and under the table."""
    out_dir: str = "eval-vlm"
    """Where results.json, table.md and accuracy.png go."""

    def validate(self) -> None:
        check_scorer_names(self.scorers)
        if any(k < 1 or k > self.grid**2 for k in self.ks):
            raise ValueError(f"--k: a {self.grid}x{self.grid} grid has 1..{self.grid**2} cells")
        if self.random_draws < 1 or self.batch_size < 1:
            raise ValueError("--random-draws and --batch-size must be >= 1")


def _draw(qid: str, seed: int, k: int, draw: int, cells: int) -> list[int]:
    digest = hashlib.sha256(f"{seed}/{qid}/{k}/{draw}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big")).sample(range(cells), k)


class _Tally:
    """Per-question correctness of every row, in row order."""

    def __init__(self) -> None:
        self.rows: dict[str, list[float]] = {}

    def add(self, name: str, values: Sequence[float]) -> None:
        self.rows.setdefault(name, []).extend(float(v) for v in values)


def evaluate_with_vlm(config: VLMEvalConfig, vlm: VLM | None = None) -> dict[str, Any]:
    """Every row of the module docstring on ``config.split``; writes results.json, table.md and
    accuracy.png to ``config.out_dir`` and returns the results."""
    config.validate()
    ds = load_qa_dataset(config.dataset, config.split, columns=config.columns)  # before the VLM
    records = source_records(ds, config.split, limit=config.limit)  # every row: skips counted
    # labeling's own scoring, on the given VLM (then its config is the one used) or config.vlm
    evaluator = HFEvaluator(vlm.config if vlm else config.vlm, grid=config.grid, vlm=vlm)
    vlm = evaluator.vlm
    scorers: dict[str, CellScorer] = {
        name: load_scorer(spec, vlm, device=config.vlm.device)
        for name, spec in config.scorers.items()
    }
    _check_scorer_grids(config, scorers)
    semclip = SemClip(vlm, grid=config.grid, k=0)
    tally, skipped = _Tally(), Counter()
    isolated = IsolatedScorer(evaluator)
    labelled: list[dict[str, Any]] = []
    indices: list[Any] = []
    all_scores: dict[str, list[torch.Tensor]] = defaultdict(list)
    for start in range(0, len(records), config.batch_size):
        batch = records[start : start + config.batch_size]
        prepared = [
            refuse_upfront(
                evaluator,
                prepare_item(
                    r, config.grid, vlm.config.template, config.max_pixels, vlm.config.alpha
                ),
            )
            for r in batch
        ]
        # as labeling does: a question failing inside the VLM is left out with its reason
        candidates = [p for p in prepared if isinstance(p, LabelItem)]
        scored = list(zip(candidates, isolated.score(candidates)))
        if isolated.hopeless:
            raise isolated.error()
        items = [it for it, s in scored if not isinstance(s, Skip)]
        scores = [s for _, s in scored if not isinstance(s, Skip)]
        skipped.update(p.reason for p in prepared if not isinstance(p, LabelItem))
        skipped.update(s.reason for _, s in scored if isinstance(s, Skip))
        if not items:
            continue
        records_of = {r.qid: r for r in batch}
        rows = [label_row(it, s, evaluator.provenance) for it, s in zip(items, scores)]
        for part, part_rows, values, part_scores in _rows_or_skips(
            items,
            rows,
            lambda i, r: _batch_rows(config, semclip, scorers, records_of, i, r),
            skipped,
        ):
            labelled += part_rows
            indices += [records_of[it.qid].meta.get("index") for it in part]  # MMBench's copies
            for name, value in values.items():
                tally.add(name, value)
            for name, value in part_scores.items():
                all_scores[name].append(value)
        logger.info("evaluated %d / %d questions", start + len(batch), len(records))
    if not labelled:
        raise ValueError(
            f"no question of split {config.split!r} of {config.dataset} could be evaluated "
            f"(left out: {dict(skipped) or 'none'}; the split has {len(records)} questions)"
        )
    preset = ds.columns.name
    return _write(config, vlm, tally, labelled, all_scores, skipped, preset, indices)


def _rows_or_skips(items, rows, compute, skipped: Counter):
    """``compute(items, rows)`` for the batch, or question by question when it fails: a question
    whose rows fail (an error inside the VLM or a scorer) is left out of every row and counted
    in ``skipped`` as ``model_error:<type>``, as labeling records it. Device errors stop the run."""
    try:
        return [(items, rows, *compute(items, rows))]
    except Exception as err:
        if device_error(err):
            raise
        logger.warning(
            "a batch failed (%s: %s): evaluating it question by question", type(err).__name__, err
        )
    done = []
    for item, row in zip(items, rows):
        try:
            done.append(([item], [row], *compute([item], [row])))
        except Exception as err:
            if device_error(err):
                raise
            skipped[f"{MODEL_ERROR}:{type(err).__name__}"] += 1
            logger.warning("%s left out: %s: %s", item.qid, type(err).__name__, err)
    return done


def _batch_rows(config, semclip, scorers, records_of, items, rows):
    """Every row's per-question values for ``items`` (whose labelled rows are ``rows``), and
    each scorer's cell scores."""
    values: dict[str, list[float]] = {}
    base = baseline_rows(rows)
    values[PLAIN], values["random (k=1)"] = base["overview only"], base["random crop"]
    values[MAJORITY], values[ORACLE] = base["majority vote"], base["oracle"]
    queries = [
        Query(it.overview, records_of[it.qid].question, records_of[it.qid].hint,
              records_of[it.qid].choices)
        for it in items
    ]  # fmt: skip
    views = [Prepared(it.overview, it.cells, it.prompt, it.letters, q)
             for it, q in zip(items, queries)]  # fmt: skip
    all_scores = {}
    for name, scorer in scorers.items():
        scores = scorer.cell_scores(queries, config.grid)
        all_scores[name] = scores
        for k in config.ks:
            if k == 1:  # the labelled cell rows are exactly these inputs (ties: their mean)
                correct = torch.tensor([r["cell_correct"] for r in rows], dtype=torch.float)
                values[f"{name} (k=1)"] = top1_expected(scores, correct).tolist()
            else:  # ties broken by cell index: the VLM is shown one set of crops
                top = torch.topk(scores, k, dim=1).indices.tolist()
                values[f"{name} (k={k})"] = _correct(semclip, views, top, rows)
    cells = config.grid**2
    for k in (k for k in config.ks if k > 1):
        draws = [
            [_draw(it.qid, config.seed, k, d, cells) for it in items]
            for d in range(config.random_draws)
        ]
        per_draw = [_correct(semclip, views, picks, rows) for picks in draws]
        values[f"random (k={k})"] = [sum(v) / len(v) for v in zip(*per_draw)]
    return values, all_scores


def _check_scorer_grids(config: VLMEvalConfig, scorers: dict[str, CellScorer]) -> None:
    """A scorer trained on another grid than the one evaluated: refused unless ``force``."""
    for name, scorer in scorers.items():
        trained = getattr(scorer, "grid", None)
        note = f"--scorer {name}: trained on a {trained}x{trained} grid, evaluated on " + (
            f"{config.grid}x{config.grid}"
        )
        if trained is None or trained == config.grid or note in config.forced:
            continue
        if not config.force:
            raise ValueError(f"{note}: pass --grid {trained}, or --force to evaluate it anyway")
        config.forced.append(note)


def _correct(semclip: SemClip, views: list[Prepared], picks, rows) -> list[float]:
    """Whether the VLM answers right with [overview, *picked cells] for each question."""
    answers = semclip.answer_prepared(views, picks)
    return [float(letter == r["letters"][r["answer"]]) for (_, letter), r in zip(answers, rows)]


def _order(names: list[str], scorers: Sequence[str], ks: Sequence[int]) -> list[str]:
    ordered = [PLAIN, "random (k=1)", MAJORITY, ORACLE]
    ordered += [f"{s} (k=1)" for s in scorers if 1 in ks]
    for k in sorted(k for k in ks if k > 1):
        ordered += [f"random (k={k})", *(f"{s} (k={k})" for s in scorers)]
    return [n for n in ordered if n in names]


def _write(config, vlm, tally, labelled, all_scores, skipped, preset, indices) -> dict[str, Any]:
    names = _order(list(tally.rows), list(config.scorers), config.ks)
    values = {n: tally.rows[n] for n in names}
    subjects = [r["subject"] or "-" for r in labelled]
    if preset == MMBENCH:  # CircularEval: one entry per question, right only if every copy is
        values, subjects = circular_results(values, subjects, circular_groups(indices))
    accuracy = {n: sum(v) / len(v) for n, v in values.items()}
    per_subject = per_subject_accuracy(values, subjects)
    labels = torch.tensor([r["cell_correct"] for r in labelled])
    rankable = labels.any(dim=1) & ~labels.all(dim=1)
    ranking = {}
    for name, chunks in all_scores.items() if rankable.any() else ():  # none: left blank
        metric = RankingMetrics()
        metric.update(torch.cat(chunks)[rankable], labels[rankable])
        ranking[name] = {k: float(v) for k, v in metric.compute().items()}
    results = {
        "split": config.split,
        "dataset": dataset_identity(config.dataset),
        "vlm": vlm.config.model,
        "mode": vlm.config.mode,
        "family": vlm.family.name,
        "vlm_config": vlm.config.as_used(vlm.prompt_format).to_dict(),
        "grid_n": config.grid,
        "questions": len(subjects),
        "labelled_copies": len(labelled),
        "circular_eval": preset == MMBENCH,
        "protocol": protocol_note(preset, dataset_identity(config.dataset)),
        "left_out": dict(skipped),
        "rankable_questions": int(rankable.sum()),
        "scorers": dict(config.scorers),
        "random_draws": config.random_draws,
        "max_pixels": config.max_pixels,
        "forced": list(config.forced),
        "seed": config.seed,
        "accuracy": accuracy,
        "per_subject": per_subject,
        "ranking": ranking,
    }
    out = Path(config.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    (out / "table.md").write_text(vlm_table(results), encoding="utf-8")
    title = (
        f"VLM in the loop on '{config.split}' ({len(subjects)} questions, "
        f"grid {config.grid}x{config.grid})"
    )
    scored = [n for n in names if n.rsplit(" (k=", 1)[0] in config.scorers]
    bar_chart(accuracy, title, scored).save(out / "accuracy.png")
    return results
