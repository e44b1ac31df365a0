"""Ranking losses over a question's cells. Each takes the score matrix of a batch of questions.

Shapes: ``scores`` ``(B, C)`` (question b against its C = n*n cells, e.g. ``logit_scale * cos``),
``labels`` ``(B, C)`` bool (True = positive: the evaluator answered right with that cell),
``soft`` ``(B, C)`` float (the evaluator's p(correct) per cell). Every pair of a question comes
from this one matrix: one text and C image encodings per question, never one forward per triple.
Each ``forward`` returns a dict of named ``*_loss`` terms (open_clip style); the training step sums
them. Every loss is computed in fp32 whatever the scores' dtype: at ``logit_scale`` 100, bf16 scores
move in steps of 0.125, coarse against a margin of 1.
"""

from __future__ import annotations

import torch
from torch import nn


class MarginRankingLoss(nn.Module):
    """The paper's loss over every (positive, negative) pair of each question.

    ``loss = mean over pairs (p, q) of max(0, margin - (s_p - s_q))``

    where ``s_p`` is a positive cell's score and ``s_q`` a negative cell's of the same question.
    ``margin`` is in the units of the scores (``logit_scale * cos``): a pair stops contributing
    once the positive leads by ``margin``. Questions with no pair contribute nothing; a batch with
    no pair gives 0 (with a gradient path).
    Reference: ``torch.nn.MarginRankingLoss``, applied to all pairs.
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, scores: torch.Tensor, labels: torch.Tensor, soft=None):
        scores, labels = scores.float(), labels.bool()
        diff = scores.unsqueeze(2) - scores.unsqueeze(1)  # (B, C, C): s_p - s_q
        pairs = labels.unsqueeze(2) & ~labels.unsqueeze(1)  # p positive, q negative
        hinge = torch.clamp(self.margin - diff, min=0.0)
        count = pairs.sum()
        loss = (hinge * pairs).sum() / count.clamp(min=1)
        return {"margin_loss": loss}


class ListwiseSoftmaxLoss(nn.Module):
    """Softmax cross-entropy over a question's cells with the positives as targets.

    ``loss = mean over questions of -sum_c t_c * log softmax(s)_c``,  ``t = labels / sum(labels)``

    (positives share the target mass evenly). Questions without a positive are left out.
    """

    def forward(self, scores: torch.Tensor, labels: torch.Tensor, soft=None):
        scores, labels = scores.float(), labels.float()
        total = labels.sum(dim=1, keepdim=True)
        valid = total.squeeze(1) > 0
        target = labels / total.clamp(min=1)
        per_question = -(target * torch.log_softmax(scores, dim=1)).sum(dim=1)
        loss = (per_question * valid).sum() / valid.sum().clamp(min=1)
        return {"listwise_loss": loss}


class SoftLabelKLLoss(nn.Module):
    """KL divergence from the evaluator's p(correct) across cells to the scores' distribution.

    ``q = soft / sum(soft)`` (the target over cells), ``p = softmax(s)``,
    ``loss = mean over questions of KL(q || p) = sum_c q_c * (log q_c - log p_c)``.
    """

    def forward(self, scores: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor):
        scores, soft = scores.float(), soft.float().clamp(min=0)
        target = soft / soft.sum(dim=1, keepdim=True).clamp(min=1e-12)
        log_p = torch.log_softmax(scores, dim=1)
        kl = torch.where(target > 0, target * (torch.log(target.clamp(min=1e-12)) - log_p), 0.0)
        return {"kl_loss": kl.sum(dim=1).mean()}


LOSSES = {"margin": MarginRankingLoss, "listwise": ListwiseSoftmaxLoss, "soft_kl": SoftLabelKLLoss}


def build_loss(name: str, margin: float = 1.0) -> nn.Module:
    """The loss named ``name`` (``margin``, ``listwise`` or ``soft_kl``)."""
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return MarginRankingLoss(margin) if name == "margin" else LOSSES[name]()
