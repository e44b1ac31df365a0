"""Evaluation rows on a hand-built label set whose answers are known."""

import json
import math

import pytest
import torch

from semclip.data.labels import LabelProvenance, LabelSetInfo, ShardWriter, write_info
from semclip.evaluation import stored as ev

LETTERS = ["A", "B", "C", "D"]


def logprobs(pred, sure=2.0):
    raw = [sure if letter == pred else 0.0 for letter in LETTERS]
    norm = math.log(sum(math.exp(v) for v in raw))
    return [v - norm for v in raw]


def row(qid, subject, answer, preds, base, sureness=None):
    truth = LETTERS[answer]
    sureness = sureness or [2.0] * 4
    return {
        "qid": qid,
        "split": "test",
        "row": int(qid[-1]),
        "status": "labelled",
        "skip_reason": None,
        "grid_n": 2,
        "subject": subject,
        "letters": LETTERS,
        "answer": answer,
        "cell_boxes": [[0, 0, 1, 1]] * 4,
        "cell_logprobs": [logprobs(p, s) for p, s in zip(preds, sureness)],
        "cell_pred": preds,
        "cell_correct": [p == truth for p in preds],
        "cell_p_correct": [0.5] * 4,
        "base_logprobs": logprobs(base),
        "base_pred": base,
        "base_correct": base == truth,
        "base_p_correct": 0.5,
    }


ROWS = [
    row("q0", "bio", 0, ["A", "B", "B", "C"], "B"),  # majority B: wrong
    row("q1", "bio", 1, ["B", "B", "A", "C"], "B"),  # majority B: right; overview right
    row("q2", "geo", 2, ["A", "A", "C", "C"], "A", [1.0, 1.0, 4.0, 4.0]),  # tie A/C; C surer
    row("q3", "geo", 2, ["D", "A", "C", "C"], "D"),  # majority C: right
]
SCORES = torch.tensor([[4, 3, 2, 1], [1, 2, 4, 3], [4, 3, 2, 1], [1, 2, 3, 4]], dtype=torch.float)


@pytest.fixture
def label_set(tmp_path):
    prov = LabelProvenance("hand", "main", "none", "logprob", 2, "t")
    extra = {
        "evaluator": "hand",
        "revision": "main",
        "dtype": "none",
        "mode": "logprob",
        "template_hash": "t",
        "resume_key": prov.resume_key,
    }
    writer = ShardWriter(tmp_path / "labels", prov.resume_key)
    writer.add([{**r, **extra} for r in ROWS])
    writer.flush()
    write_info(tmp_path / "labels", LabelSetInfo(prov, dataset="unused", splits=["test"]))
    return tmp_path / "labels"


def test_every_row_exact(label_set, tmp_path, monkeypatch):
    monkeypatch.setattr(ev, "load_qa_dataset", lambda *a, **k: [None] * len(ROWS))  # rows exist
    monkeypatch.setattr(ev.Selector, "from_pretrained", staticmethod(lambda *a, **k: None))
    monkeypatch.setattr(ev, "score_split", lambda *a, **k: SCORES)
    config = ev.EvalConfig(
        labels_dir=str(label_set),
        split="test",
        scorers={"trained": "x"},
        ks=[1, 2],
        out_dir=str(tmp_path / "eval"),
    )
    results = ev.evaluate(config)
    acc = results["accuracy"]
    assert acc["overview only"] == 0.25
    assert acc["random crop"] == (0.25 + 0.5 + 0.5 + 0.5) / 4
    assert acc["majority vote"] == 0.75
    assert acc["oracle"] == 1.0
    assert acc["trained"] == 0.5  # picks cells 0 (right), 2 (wrong), 0 (wrong), 3 (right)
    assert acc["trained top-2 any"] == 0.5
    rank = results["ranking"]["trained"]
    assert rank["hit_rate"] == pytest.approx(0.5)
    assert rank["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 3 + 1) / 4)
    assert results["per_subject"]["overview only"] == {"bio": 0.5, "geo": 0.0}
    assert results["per_subject"]["majority vote"] == {"bio": 0.5, "geo": 1.0}
    out = tmp_path / "eval"
    assert json.loads((out / "results.json").read_text())["accuracy"] == acc
    table = (out / "table.md").read_text()
    assert "| trained | 50.0 | 50.0 | 50.0 | 50.0 | 0.667 |" in table
    assert (out / "accuracy.png").stat().st_size > 0


def test_majority_tie_goes_to_the_surer_letter():
    assert ev.majority_correct(ROWS[2])
    flipped = row("q9", "geo", 2, ["A", "A", "C", "C"], "A", [4.0, 4.0, 1.0, 1.0])
    assert not ev.majority_correct(flipped)
    unparsed = row("q8", "geo", 0, ["unparsed"] * 4, "A")
    assert not ev.majority_correct(unparsed)
