"""The HF evaluator on the tiny random LLaVA: fast paths against the plain full forward."""

import pytest
import torch

from semclip.data.scienceqa import records_with_images
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.labeling.evaluator import prepare_item
from semclip.labeling.hf_evaluator import HFEvaluator
from semclip.vlm.config import VLMConfig


@pytest.fixture(scope="module")
def records():
    ds = build_synthetic(SyntheticConfig(num_questions=3, grid=2, image_size=96, seed=5))
    recs, _ = records_with_images(ds, "train")
    recs[1].hint = "A longer context line that makes this prompt longer than the others."
    return recs


def evaluator(model_dir, grid, **kwargs):
    return HFEvaluator(VLMConfig(model=model_dir, device="cpu", **kwargs), grid)


def flat(scores):
    return torch.tensor([row for s in scores for row in [*s.cell_logprobs, s.base_logprobs]])


@pytest.mark.parametrize("grid", [2, 3])
def test_prefix_shared_batched_equals_full_forward(tiny_llava_dir, records, grid):
    items = [prepare_item(r, grid) for r in records]
    plain = evaluator(tiny_llava_dir, grid, prefix_sharing=False, max_rows=1)
    shared = evaluator(tiny_llava_dir, grid, prefix_sharing=True, max_rows=64)
    reference = flat([plain.score([item])[0] for item in items])  # one by one, no cache
    torch.testing.assert_close(flat(shared.score(items)), reference, atol=1e-4, rtol=0)
    # batched without sharing equals one by one too
    plain.vlm.max_rows = 64
    torch.testing.assert_close(flat(plain.score(items)), reference, atol=1e-4, rtol=0)
    # and the hand-rolled reference: one plain forward of the full prompt, logits at the end
    item = items[0]
    inputs = plain.vlm.process(
        [plain.vlm.render(item.prompt, 2)], [[item.overview, item.cells[1].image]]
    )
    with torch.no_grad():
        logits = plain.vlm.model(**inputs).logits[0, -1]
    expected = torch.log_softmax(logits, -1)[plain.vlm.letter_ids(item.letters)]
    torch.testing.assert_close(reference[1], expected, atol=1e-5, rtol=0)


def test_small_chunks_equal_one_big_forward(tiny_llava_dir, records):
    items = [prepare_item(r, 2) for r in records]
    big = evaluator(tiny_llava_dir, 2, max_rows=64).score(items)
    small = evaluator(tiny_llava_dir, 2, max_rows=3).score(items)
    torch.testing.assert_close(flat(small), flat(big), atol=1e-5, rtol=0)


def test_out_of_memory_halves_rows_and_loses_nothing(tiny_llava_dir, records, monkeypatch):
    items = [prepare_item(r, 2) for r in records]
    ev = evaluator(tiny_llava_dir, 2, max_rows=16)
    expected = flat(ev.score(items))
    real = ev.vlm.logprobs

    def picky(inputs, last=None):
        if inputs["input_ids"].shape[0] > 4:
            raise torch.cuda.OutOfMemoryError("fake")
        return real(inputs, last)

    monkeypatch.setattr(ev.vlm, "logprobs", picky)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    got = ev.score(items)
    assert ev.vlm.max_rows == 4
    assert ev.config.max_rows == 16  # the caller's config is never changed
    torch.testing.assert_close(flat(got), expected, atol=1e-5, rtol=0)


def test_generate_mode_first_step_matches_letter_scoring(tiny_llava_dir, records):
    items = [prepare_item(records[0], 2)]
    gen = evaluator(tiny_llava_dir, 2, mode="generate", max_new_tokens=2).score(items)[0]
    one = evaluator(tiny_llava_dir, 2).score(items)[0]
    torch.testing.assert_close(flat([gen]), flat([one]), atol=1e-4, rtol=0)
    # a random model writes no letter: recorded as unparsed, never guessed
    assert all(a in ("A", "B", "C", "D", "unparsed") for a in gen.cell_answers)


def test_letters_are_single_tokens_or_a_clear_error(tiny_llava_dir, tmp_path, records):
    ev = evaluator(tiny_llava_dir, 2)
    ids = ev.vlm.letter_ids(["A", "B", "C", "D"])
    assert len(set(ids)) == 4
    assert ev.vlm.tokenizer.convert_ids_to_tokens(ids[0]) == "ĠA"  # " A": the space is part of it
    from semclip.models.tiny import TinyLlavaConfig, build_tiny_llava

    poor = build_tiny_llava(tmp_path / "poor", TinyLlavaConfig(vocab_size=262))
    with pytest.raises(ValueError, match="not a single token"):
        evaluator(str(poor), 2).vlm.letter_ids(["A", "B"])


def test_pad_to_square_before_the_processor(tiny_llava_dir):
    from PIL import Image

    ev = evaluator(tiny_llava_dir, 2)
    wide = Image.new("RGB", (64, 16), (255, 0, 0))
    pixels = ev.vlm.process(["<image>"], [[wide]])["pixel_values"][0]  # (3, 32, 32), padded
    mean = torch.tensor(ev.vlm.processor.image_processor.image_mean).view(3, 1)
    std = torch.tensor(ev.vlm.processor.image_processor.image_std).view(3, 1)
    top_row = pixels[:, 0, :] * std + mean
    middle_row = pixels[:, 16, :] * std + mean
    assert torch.allclose(top_row, mean.expand_as(top_row), atol=0.02)  # the padding colour
    assert middle_row[0].min() > 0.95  # red survives across the whole width
