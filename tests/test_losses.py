"""Losses against values computed by hand, the zero-loss case and the gradient's sign."""

import math

import torch
from torch.testing import assert_close

from semclip.evaluation.metrics import RankingMetrics, ranking_stats
from semclip.training.losses import (
    ListwiseSoftmaxLoss,
    MarginRankingLoss,
    SoftLabelKLLoss,
    build_loss,
)


def test_margin_ranking_by_hand():
    scores = torch.tensor([[3.0, 1.0, 2.5, 0.0], [0.0, 1.0, 0.0, 0.0]])
    labels = torch.tensor([[True, False, True, False], [False, True, False, False]])
    # question 0, margin 1: pairs (p, q) = (0,1): 1-(3-1)=-1->0; (0,3): 1-3->0;
    #   (2,1): 1-(2.5-1)=-0.5->0; (2,3): 1-2.5->0.   question 1: (1,0),(1,2),(1,3): 1-1=0 each.
    loss = MarginRankingLoss(margin=1.0)(scores, labels)["margin_loss"]
    assert_close(loss, torch.tensor(0.0))
    # margin 2: q0: (0,1) 0, (0,3) 0, (2,1) 2-1.5=0.5, (2,3) 0; q1: 1, 1, 1 -> (0.5 + 3) / 7
    loss = MarginRankingLoss(margin=2.0)(scores, labels)["margin_loss"]
    assert_close(loss, torch.tensor(3.5 / 7))


def test_margin_zero_once_met_and_gradient_sign():
    scores = torch.tensor([[0.2, 0.0]], requires_grad=True)
    labels = torch.tensor([[True, False]])
    loss = MarginRankingLoss(margin=1.0)(scores, labels)["margin_loss"]
    assert_close(loss, torch.tensor(0.8))
    loss.backward()
    assert (
        scores.grad[0, 0] < 0 < scores.grad[0, 1]
    )  # descent raises the positive, lowers the negative
    assert_close(scores.grad, torch.tensor([[-1.0, 1.0]]))
    met = torch.tensor([[1.5, 0.2]], requires_grad=True)
    loss = MarginRankingLoss(margin=1.0)(met, labels)["margin_loss"]
    loss.backward()
    assert loss.item() == 0.0 and torch.all(met.grad == 0)


def test_margin_no_pairs_is_zero_with_a_graph():
    scores = torch.zeros(2, 4, requires_grad=True)
    loss = MarginRankingLoss()(scores, torch.ones(2, 4, dtype=torch.bool))["margin_loss"]
    loss.backward()
    assert loss.item() == 0.0


def test_listwise_by_hand():
    scores = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 1.0]])
    labels = torch.tensor([[True, False, False], [True, False, True]])
    z0 = math.log(math.e + 2)
    q0 = -(1 - z0)
    z1 = math.log(math.exp(2) + 1 + math.e)
    q1 = -(0.5 * (2 - z1) + 0.5 * (1 - z1))
    got = ListwiseSoftmaxLoss()(scores, labels)["listwise_loss"]
    assert_close(got, torch.tensor((q0 + q1) / 2))
    no_positive = ListwiseSoftmaxLoss()(scores, torch.zeros_like(labels))["listwise_loss"]
    assert no_positive.item() == 0.0


def test_soft_label_kl_by_hand():
    scores = torch.tensor([[0.0, math.log(3.0)]])  # softmax = (0.25, 0.75)
    soft = torch.tensor([[0.9, 0.3]])  # target = (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    got = SoftLabelKLLoss()(scores, soft > 0.5, soft)["kl_loss"]
    assert_close(got, torch.tensor(expected))
    # equal distributions: zero; a zero target cell contributes nothing
    same = SoftLabelKLLoss()(torch.tensor([[math.log(3.0), 0.0]]), None, soft)["kl_loss"]
    assert_close(same, torch.tensor(0.0), atol=1e-6, rtol=0)
    one_hot = SoftLabelKLLoss()(torch.tensor([[0.0, 0.0]]), None, torch.tensor([[1.0, 0.0]]))
    assert_close(one_hot["kl_loss"], torch.tensor(math.log(2.0)))


def test_build_loss_names():
    assert isinstance(build_loss("margin", 0.5), MarginRankingLoss)
    assert build_loss("margin", 0.5).margin == 0.5
    try:
        build_loss("hinge")
    except ValueError as err:
        assert "margin" in str(err)
    else:
        raise AssertionError("unknown loss accepted")


def test_ranking_metrics_by_hand():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3], [0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor(
        [[True, False, False, False], [True, False, True, False], [False, False, False, False]]
    )
    stats = ranking_stats(scores, labels)  # the third question has no positive: not counted
    assert stats["questions"].item() == 2
    assert stats["hits"].item() == 1  # q0: top cell 0 is a positive; q1: top cell 3 is not
    metric = RankingMetrics()
    metric.update(scores, labels)
    out = metric.compute()
    # q0: rank of best positive 1; q1: positives at ranks 4 (0.1) and 2 (0.3) -> 1/2
    assert_close(out["mrr"], torch.tensor((1 + 0.5) / 2))
    assert_close(out["hit_rate"], torch.tensor(0.5))
    # q0 pairs: (0,1),(0,2),(0,3) all right; q1: (0,1) wrong,(0,3) wrong,(2,1) right,(2,3) wrong
    assert_close(out["pairwise_accuracy"], torch.tensor(4 / 7))


def test_ties_count_as_a_random_order_in_every_metric():
    """One rule for ties: the expected value over uniformly random orders of the tied cells."""
    import itertools

    from semclip.evaluation.metrics import top1_expected

    cases = [
        ([0.0, 0.0, 0.0, 0.0], [True, False, False, False]),  # a constant scorer
        ([1.0, 1.0, 0.0, 0.0], [False, True, True, False]),
        ([0.5, 0.2, 0.2, 0.2], [False, True, False, True]),
        ([0.2, 0.2, 0.9, 0.2], [True, True, False, True]),
    ]
    for raw, flags in cases:
        scores, labels = torch.tensor([raw]), torch.tensor([flags])
        # by brute force: every order of the cells consistent with the scores, equally likely
        orders = [o for o in itertools.permutations(range(4))
                  if all(raw[a] >= raw[b] for a, b in zip(o, o[1:]))]  # fmt: skip
        hit = sum(flags[o[0]] for o in orders) / len(orders)
        mrr = sum(1 / (1 + next(i for i, c in enumerate(o) if flags[c])) for o in orders)
        metric = RankingMetrics()
        metric.update(scores, labels)
        out = metric.compute()
        assert_close(out["hit_rate"], torch.tensor(float(hit)))
        assert_close(out["mrr"], torch.tensor(mrr / len(orders)))
        assert_close(top1_expected(scores, labels.float()), torch.tensor([float(hit)]))
    # the constant scorer is a random pick: hit rate 1/4, MRR (1 + 1/2 + 1/3 + 1/4) / 4
    metric = RankingMetrics()
    metric.update(torch.zeros(1, 4), torch.tensor([[True, False, False, False]]))
    out = metric.compute()
    assert_close(out["hit_rate"], torch.tensor(0.25))
    assert_close(out["mrr"], torch.tensor((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4))


def test_losses_are_fp32_on_bf16_scores():
    # bf16 holds these scores exactly (steps of 0.0625 between 8 and 16, 0.5 between 64 and 128),
    # but a bf16 loss would round its result to 8 bits of mantissa (2 / 3 -> 0.66796875)
    scores = torch.tensor([[10.0, 9.5, 9.75, 9.75]], dtype=torch.bfloat16)
    labels = torch.tensor([[True, False, False, False]])
    # hinges 1 - 0.5, 1 - 0.25, 1 - 0.25 over 3 pairs
    margin = MarginRankingLoss(1.0)(scores, labels)["margin_loss"]
    assert margin.dtype == torch.float32
    assert_close(margin, torch.tensor(2.0 / 3.0), atol=1e-7, rtol=0)

    wide = torch.tensor([[96.0, 95.5, 90.0]], dtype=torch.bfloat16)
    # -log softmax at the positive (95.5): 96 + log(1 + e^-0.5 + e^-6) - 95.5
    expected = 0.5 + math.log(1 + math.exp(-0.5) + math.exp(-6.0))
    listwise = ListwiseSoftmaxLoss()(wide, torch.tensor([[False, True, False]]))["listwise_loss"]
    assert listwise.dtype == torch.float32
    assert_close(listwise, torch.tensor(expected), atol=1e-6, rtol=0)

    pair = torch.tensor([[96.0, 95.5]], dtype=torch.bfloat16)
    p0 = 1 / (1 + math.exp(-0.5))  # softmax of (96, 95.5)
    kl_expected = 0.75 * math.log(0.75 / p0) + 0.25 * math.log(0.25 / (1 - p0))
    kl = SoftLabelKLLoss()(pair, None, torch.tensor([[0.75, 0.25]]))["kl_loss"]
    assert kl.dtype == torch.float32
    assert_close(kl, torch.tensor(kl_expected), atol=1e-6, rtol=0)
