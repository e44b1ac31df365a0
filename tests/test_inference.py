"""SemClip inference with the VLM in the loop, on the tiny LLaVA and a tiny CLIP scorer."""

from __future__ import annotations

import json

import pytest
import torch
from torch.testing import assert_close

from semclip.data.images import load_image
from semclip.data.labels import read_info, read_labels
from semclip.data.scienceqa import load_qa_dataset
from semclip.evaluation.stored import EvalConfig, evaluate
from semclip.evaluation.vlm_loop import VLMEvalConfig, evaluate_with_vlm
from semclip.inference.scorers import DualEncoderScorer, Query, RandomScorer, load_scorer
from semclip.inference.semclip import SemClip
from semclip.labeling.config import LabelConfig
from semclip.labeling.run import run_labeling
from semclip.vlm.config import VLMConfig
from semclip.vlm.runtime import VLM

QUESTIONS = 6


@pytest.fixture(scope="module")
def vlm(tiny_llava_dir) -> VLM:
    return VLM(VLMConfig(model=tiny_llava_dir, device="cpu"))


@pytest.fixture(scope="module")
def llava_labels(tiny_llava_dir, synthetic_dir, tmp_path_factory) -> str:
    """The first test questions labelled by the tiny LLaVA (shared prefixes, the default)."""
    out = tmp_path_factory.mktemp("llava-labels")
    config = LabelConfig.from_values(
        dataset=synthetic_dir,
        splits=["test"],
        model=tiny_llava_dir,
        limit=QUESTIONS,
        output_dir=str(out),
        accelerator="cpu",
        progress=False,
    )
    run_labeling(config)
    return str(out)


def _labelled(labels_dir: str) -> list[dict]:
    key = read_info(labels_dir).provenance.resume_key
    return [
        r for r in read_labels(labels_dir, "test", key).to_pylist() if r["status"] == "labelled"
    ]


def test_k1_and_k0_answers_equal_the_label_set(vlm, llava_labels, synthetic_dir, tiny_clip_dir):
    rows = _labelled(llava_labels)
    source = load_qa_dataset(synthetic_dir, "test")
    examples = [source[r["row"]] for r in rows]
    semclip = SemClip(vlm, DualEncoderScorer.load(tiny_clip_dir, device="cpu"), grid=2, k=1)
    args = (
        [load_image(e["image"]) for e in examples],
        [e["question"] for e in examples],
        [e["choices"] for e in examples],
        [e["hint"] for e in examples],
    )
    with_crop = semclip.answer(*args)
    plain = semclip.answer(*args, k=0)
    for row, one, zero in zip(rows, with_crop, plain, strict=True):
        (cell,) = one.indices
        assert one.letter == row["cell_pred"][cell]
        assert_close(torch.tensor(one.logprobs), torch.tensor(row["cell_logprobs"][cell]),
                     atol=1e-4, rtol=0)  # fmt: skip
        assert [list(b) for b in one.boxes] == [row["cell_boxes"][cell]]
        assert zero.letter == row["base_pred"] and zero.indices == []
        assert_close(torch.tensor(zero.logprobs), torch.tensor(row["base_logprobs"]),
                     atol=1e-4, rtol=0)  # fmt: skip


def test_crops_reach_the_vlm_best_first_after_the_overview(vlm, synthetic_dir, monkeypatch):
    source = load_qa_dataset(synthetic_dir, "test")
    example = source[0]
    image = load_image(example["image"])
    semclip = SemClip(vlm, RandomScorer(seed=3), grid=2, k=3)
    seen = []
    original = vlm.score_views

    def spy(prompts, views, letters):
        seen.append(views)
        return original(prompts, views, letters)

    monkeypatch.setattr(vlm, "score_views", spy)
    [answer] = semclip.answer([image], [example["question"]], [example["choices"]])
    order = sorted(range(4), key=lambda i: -answer.scores[i])
    assert answer.indices == order[:3]
    cells = semclip.prepare(image, example["question"], example["choices"]).cells
    [[overview, *crops]] = seen[0]
    assert overview.tobytes() == image.tobytes()
    assert [c.tobytes() for c in crops] == [cells[i].image.tobytes() for i in order[:3]]


def test_vlm_in_the_loop_k1_rows_equal_the_stored_label_evaluation(
    vlm, llava_labels, synthetic_dir, tiny_clip_dir, tmp_path
):
    stored = evaluate(
        EvalConfig(
            labels_dir=llava_labels,
            split="test",
            scorers={"zs": tiny_clip_dir},
            device="cpu",
            out_dir=str(tmp_path / "stored"),
        )
    )
    live = evaluate_with_vlm(
        VLMEvalConfig(
            vlm=VLMConfig(model="tiny", device="cpu"),
            dataset=synthetic_dir,
            split="test",
            scorers={"zs": tiny_clip_dir, "rnd": "random:1"},
            ks=[1, 2],
            limit=QUESTIONS,
            random_draws=2,
            batch_size=4,
            out_dir=str(tmp_path / "live"),
        ),
        vlm=vlm,
    )
    assert live["questions"] == stored["questions"] == QUESTIONS
    acc, ref = live["accuracy"], stored["accuracy"]
    assert acc["plain VLM (k=0)"] == ref["overview only"]
    assert acc["random (k=1)"] == pytest.approx(ref["random crop"])
    assert acc["majority vote (k=1)"] == ref["majority vote"]
    assert acc["oracle (k=1)"] == ref["oracle"]
    assert acc["zs (k=1)"] == ref["zs"]
    assert live["ranking"].get("zs") == pytest.approx(stored["ranking"].get("zs"))
    assert list(acc) == [
        "plain VLM (k=0)", "random (k=1)", "majority vote (k=1)", "oracle (k=1)",
        "zs (k=1)", "rnd (k=1)", "random (k=2)", "zs (k=2)", "rnd (k=2)",
    ]  # fmt: skip
    assert all(0.0 <= v <= 1.0 for v in acc.values())
    written = json.loads((tmp_path / "live" / "results.json").read_text())
    assert written["accuracy"] == acc
    table = (tmp_path / "live" / "table.md").read_text()
    assert "| zs (k=2) |" in table and "- random (k=2): expected accuracy" in table
    assert (tmp_path / "live" / "accuracy.png").stat().st_size > 0


def test_k2_rows_feed_the_top_two_crops(vlm, synthetic_dir, tiny_clip_dir, tmp_path):
    """The k=2 row of the evaluation is SemClip.answer with k=2, question by question."""
    scorer = DualEncoderScorer.load(tiny_clip_dir, device="cpu")
    live = evaluate_with_vlm(
        VLMEvalConfig(
            vlm=VLMConfig(model="tiny", device="cpu"), dataset=synthetic_dir, split="test",
            scorers={"zs": tiny_clip_dir}, ks=[2], limit=4, out_dir=str(tmp_path),
        ),
        vlm=vlm,
    )  # fmt: skip
    source = load_qa_dataset(synthetic_dir, "test")
    examples = [source[i] for i in range(4)]
    answers = SemClip(vlm, scorer, grid=2, k=2).answer(
        [load_image(e["image"]) for e in examples],
        [e["question"] for e in examples],
        [e["choices"] for e in examples],
        [e["hint"] for e in examples],
    )
    right = [a.choice_index == e["answer"] for a, e in zip(answers, examples)]
    assert live["accuracy"]["zs (k=2)"] == pytest.approx(sum(right) / len(right))


def test_vlm_psi_is_the_cosine_of_projected_cls_and_last_hidden_state(vlm, synthetic_dir):
    source = load_qa_dataset(synthetic_dir, "test")
    image = load_image(source[0]["image"])
    question = source[0]["question"]
    psi = load_scorer("vlm-psi", vlm)
    scores = psi.cell_scores([Query(image, question)], grid=2)
    assert scores.shape == (1, 4)
    # by hand: vision tower hidden state at the feature layer, [CLS] position, projected
    from semclip.data.grid import crop_grid

    model = vlm.model.model
    crops = [vlm.view(c.image) for c in crop_grid(image, 2)]
    pixels = vlm.processor.image_processor(crops, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = model.vision_tower(pixels, output_hidden_states=True).hidden_states
        cls = model.multi_modal_projector(hidden[vlm.model.config.vision_feature_layer][:, :1])
        ids = vlm.tokenizer(question, return_tensors="pt")["input_ids"]
        last = model.language_model(input_ids=ids).last_hidden_state[0, -1]
    expected = torch.nn.functional.cosine_similarity(cls[:, 0], last[None], dim=-1)
    assert_close(scores[0], expected, atol=1e-5, rtol=0)


def test_random_scorer_is_seeded_and_bad_specs_are_clear(vlm):
    from PIL import Image

    q = Query(Image.new("RGB", (32, 32)), "What?", choices=["a", "b"])
    assert torch.equal(RandomScorer(1).cell_scores([q], 3), RandomScorer(1).cell_scores([q], 3))
    assert not torch.equal(RandomScorer(1).cell_scores([q], 3), RandomScorer(2).cell_scores([q], 3))
    with pytest.raises(ValueError, match="integer"):
        load_scorer("random:x")
    with pytest.raises(ValueError, match="needs a VLM"):
        load_scorer("vlm-psi")
    with pytest.raises(ValueError, match="need a scorer"):
        SemClip(vlm, None, grid=2, k=1)
    with pytest.raises(ValueError, match="k must be in 0..4"):
        SemClip(vlm, RandomScorer(), grid=2, k=5)


def test_a_question_failing_in_the_vlm_is_left_out_with_its_reason(
    vlm, synthetic_dir, tmp_path, monkeypatch
):
    """As in labeling: one question's error inside the VLM costs only that question."""
    from semclip.labeling.hf_evaluator import HFEvaluator

    real = HFEvaluator.score
    source = load_qa_dataset(synthetic_dir, "test")
    bad = source[1]["question"]

    def fragile(self, items):
        if any(bad in item.prompt for item in items):
            raise RuntimeError("this question breaks the model")
        return real(self, items)

    monkeypatch.setattr(HFEvaluator, "score", fragile)
    config = VLMEvalConfig(
        vlm=VLMConfig(model="tiny", device="cpu"), dataset=synthetic_dir, split="test", ks=[1],
        limit=4, batch_size=4, out_dir=str(tmp_path),
    )  # fmt: skip
    results = evaluate_with_vlm(config, vlm=vlm)
    assert results["questions"] == 4 - sum(bad == source[i]["question"] for i in range(4))
    assert results["left_out"] == {"model_error:RuntimeError": 4 - results["questions"]}


def test_a_question_failing_at_k2_is_left_out_of_every_row(
    vlm, synthetic_dir, tiny_clip_dir, tmp_path, monkeypatch
):
    """A failure after the k=1 labels (the VLM shown two crops) costs only that question too:
    it leaves every row, so all rows count the same questions."""
    from semclip.inference.semclip import SemClip

    real = SemClip.answer_prepared
    source = load_qa_dataset(synthetic_dir, "test")
    bad = source[2]["question"]

    def fragile(self, prepared, picks):
        if any(bad in p.prompt for p in prepared):
            raise RuntimeError("two crops break the model")
        return real(self, prepared, picks)

    monkeypatch.setattr(SemClip, "answer_prepared", fragile)
    config = VLMEvalConfig(
        vlm=VLMConfig(model="tiny", device="cpu"), dataset=synthetic_dir, split="test", ks=[1, 2],
        scorers={"zs": tiny_clip_dir}, limit=4, batch_size=4, random_draws=1, out_dir=str(tmp_path),
    )  # fmt: skip
    results = evaluate_with_vlm(config, vlm=vlm)
    failing = sum(bad == source[i]["question"] for i in range(4))
    assert results["questions"] == 4 - failing >= 1
    assert results["left_out"] == {"model_error:RuntimeError": failing}
    written = json.loads((tmp_path / "results.json").read_text())
    assert set(written["accuracy"]) >= {"plain VLM (k=0)", "zs (k=2)", "random (k=2)"}
