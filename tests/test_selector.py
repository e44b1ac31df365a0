import pytest
import torch
from torch.testing import assert_close

from semclip.data.grid import cell_boxes
from semclip.data.images import load_image
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.models.selector import Selector, selection_picture, vlm_inputs


@pytest.fixture(scope="module")
def selector(tiny_clip_dir):
    return Selector.from_pretrained(tiny_clip_dir, device="cpu", image_batch_size=7)


@pytest.fixture(scope="module")
def pairs():
    ds = build_synthetic(SyntheticConfig(num_questions=5, grid=3, image_size=96, seed=2))
    return [load_image(r["image"]) for r in ds], list(ds["question"])


def test_batched_equals_one_at_a_time(selector, pairs):
    images, questions = pairs
    batched = selector.select(images, questions, k=2, grid=3)
    for image, question, sel in zip(images, questions, batched):
        cells = [image.crop(box) for box in cell_boxes(image.width, image.height, 3)]
        one = torch.cat([selector.scorer.score([question], [cell]) for cell in cells], dim=1)[0]
        assert_close(torch.tensor(sel.scores), one, atol=1e-5, rtol=1e-5)


def test_top_k_are_the_highest_scoring_cells(selector, pairs):
    images, questions = pairs
    for sel in selector.select(images, questions, k=3, grid=3):
        order = sorted(range(9), key=lambda i: -sel.scores[i])
        assert sel.indices == order[:3]
        boxes = cell_boxes(images[0].width, images[0].height, 3)
        assert sel.boxes == [boxes[i] for i in order[:3]]
        assert [c.size for c in sel.crops] == [(b[2] - b[0], b[3] - b[1]) for b in sel.boxes]


def test_k_larger_than_the_grid_is_an_error(selector, pairs):
    images, questions = pairs
    with pytest.raises(ValueError, match="k must be in 1..4"):
        selector.select(images[:1], questions[:1], k=5, grid=2)
    with pytest.raises(ValueError, match="questions"):
        selector.select(images[:2], questions[:1], k=1, grid=2)


def test_texts_are_encoded_once(selector, pairs, monkeypatch):
    images, questions = pairs
    selector.select(images, questions, grid=2)
    calls = []
    real = selector.scorer.encode_text
    monkeypatch.setattr(selector.scorer, "encode_text", lambda *a: calls.append(1) or real(*a))
    selector.select(images, questions, grid=2)
    assert calls == []


def test_vlm_input_matches_the_labeling_prompt(tiny_llava_dir, selector, pairs):
    from transformers import AutoProcessor

    from semclip.data.prompts import render_prompt

    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    images, questions = pairs
    (sel,) = selector.select(images[:1], questions[:1], k=1, grid=2)
    prompt = render_prompt(questions[0], ["red", "blue"])
    inputs = vlm_inputs(processor, images[0], sel, prompt)
    text = processor.tokenizer.decode(inputs["input_ids"][0], skip_special_tokens=False)
    assert text.count("<image>") == 2 * 16 and prompt in text
    assert inputs["pixel_values"].shape[0] == 2


def test_picture(selector, pairs, tmp_path):
    images, questions = pairs
    (sel,) = selector.select(images[:1], questions[:1], k=1, grid=3)
    picture = selection_picture(images[0], sel, questions[0])
    picture.save(tmp_path / "p.png")
    assert picture.width == 360 and picture.height > 360


@pytest.mark.parametrize("size", [(17, 17), (64, 64), (97, 40), (30, 81), (32, 32), (5, 9)])
def test_fast_preprocessing_equals_the_processor(selector, size):
    from PIL import Image

    from semclip.data.images import pad_to_square

    pre = selector.scorer.preprocess
    assert pre._fast_side() == 32  # the tiny CLIP takes the fast path
    images = [Image.effect_noise(size, 30 + i).convert("RGB") for i in range(3)]
    squared = [pad_to_square(img, pre.background) for img in images]
    expected = pre.processor.image_processor(squared, return_tensors="pt")["pixel_values"]
    assert_close(pre.pixel_values(images), expected, atol=1e-6, rtol=0)
