"""Ranking metrics of cell scores against positive/negative labels (torchmetrics, DDP-safe).

- pairwise ranking accuracy: share of (positive, negative) pairs of a question ordered right;
- top-1 hit rate: share of questions whose best-scored cell is a positive;
- MRR: mean over questions of 1 / rank of the best-ranked positive.

**Ties** follow one rule in all three: the expected value when tied cells are put in a uniformly
random order. A tied (positive, negative) pair counts half; a question whose best score is shared
by g cells, p of them positive, counts p / g as a hit; and its reciprocal rank is the exact
expectation of 1 / (b + j), b the cells scored strictly higher and j the position of the first
positive among the tied ones. A scorer that gives every cell the same score is thus scored as a
random pick (hit rate 1/4 with one positive among four cells), never as a perfect one.

Imports nothing of ours: training validates with the same metrics.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def top_tied(scores: torch.Tensor) -> torch.Tensor:
    """``(B, C)`` bool: the cells that share each question's best score."""
    return scores == scores.max(dim=1, keepdim=True).values


def top1_expected(scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``(B,)`` the mean of ``values`` (B, C) over each question's best-scored cells: what one
    crop picked by these scores gives, ties broken uniformly at random (the hit rate's rule)."""
    tied = top_tied(scores.float()).float()
    return (tied * values.float()).sum(dim=1) / tied.sum(dim=1)


def _log_choose(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    return torch.lgamma(n + 1) - torch.lgamma(k + 1) - torch.lgamma(n - k + 1)


def expected_reciprocal_rank(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` E[1 / rank of the first positive] with ties in a uniformly random order; every
    question needs a positive. With b cells above the best positive's score and g cells at it,
    p of them positive, the first positive is j-th among them with probability
    C(g - j, p - 1) / C(g, p), j = 1 .. g - p + 1."""
    best = torch.where(labels, scores, torch.full_like(scores, -torch.inf)).max(dim=1).values
    above = (scores > best[:, None]).sum(dim=1).double()  # b
    level = scores == best[:, None]
    g = level.sum(dim=1).double()
    p = (level & labels).sum(dim=1).double()
    out = torch.zeros_like(g)
    for j in range(1, scores.shape[1] + 1):
        jj = torch.full_like(g, float(j))
        possible = jj <= g - p + 1
        log_prob = _log_choose((g - jj).clamp(min=0), (p - 1).clamp(min=0)) - _log_choose(g, p)
        out += torch.where(possible, torch.exp(log_prob) / (above + jj), torch.zeros_like(g))
    return out.float()


def ranking_stats(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums for a batch: ``scores`` (B, C), ``labels`` (B, C) bool; questions need a positive."""
    labels = labels.bool()
    has_pos = labels.any(dim=1)
    scores, labels = scores[has_pos].float(), labels[has_pos]
    tied = top_tied(scores)
    hits = (tied & labels).sum(dim=1).float() / tied.sum(dim=1).float()
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)  # s_p - s_q
    pairs = labels.unsqueeze(2) & ~labels.unsqueeze(1)
    correct = ((diff > 0).float() + 0.5 * (diff == 0).float()) * pairs
    return {
        "questions": torch.tensor(float(len(scores)), device=scores.device),
        "hits": hits.sum(),
        "reciprocal_ranks": expected_reciprocal_rank(scores, labels).sum(),
        "pairs_correct": correct.sum(),
        "pairs": pairs.sum().float(),
    }


class RankingMetrics(Metric):
    """Accumulates :func:`ranking_stats`; ``compute()`` gives pairwise_accuracy, hit_rate, mrr."""

    full_state_update = False

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        for name in ("questions", "hits", "reciprocal_ranks", "pairs_correct", "pairs"):
            self.add_state(name, default=torch.tensor(0.0), dist_reduce_fx="sum")

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        for name, value in ranking_stats(scores, labels).items():
            setattr(self, name, getattr(self, name) + value.to(self.device))

    def compute(self) -> dict[str, torch.Tensor]:
        questions = self.questions.clamp(min=1)
        return {
            "pairwise_accuracy": self.pairs_correct / self.pairs.clamp(min=1),
            "hit_rate": self.hits / questions,
            "mrr": self.reciprocal_ranks / questions,
        }
