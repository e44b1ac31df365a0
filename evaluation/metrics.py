"""Ranking metrics of cell scores against positive/negative labels (torchmetrics, DDP-safe).

- pairwise ranking accuracy: share of (positive, negative) pairs of a question ordered right
  (ties count half);
- top-1 hit rate: share of questions whose best-scored cell is a positive;
- MRR: mean over questions of 1 / rank of the best-ranked positive.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def ranking_stats(scores: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums for a batch: ``scores`` (B, C), ``labels`` (B, C) bool; questions need a positive."""
    labels = labels.bool()
    has_pos = labels.any(dim=1)
    scores, labels = scores[has_pos].float(), labels[has_pos]
    top = scores.argmax(dim=1)
    hits = labels.gather(1, top.unsqueeze(1)).squeeze(1).float()
    # rank of a cell = 1 + number of cells scored strictly higher
    ranks = 1 + (scores.unsqueeze(1) > scores.unsqueeze(2)).sum(dim=2)  # (B, C)
    best = torch.where(labels, ranks, torch.full_like(ranks, scores.shape[1] + 1)).min(dim=1).values
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)  # s_p - s_q
    pairs = labels.unsqueeze(2) & ~labels.unsqueeze(1)
    correct = ((diff > 0).float() + 0.5 * (diff == 0).float()) * pairs
    return {
        "questions": torch.tensor(float(len(top)), device=scores.device),
        "hits": hits.sum(),
        "reciprocal_ranks": (1.0 / best.float()).sum(),
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
