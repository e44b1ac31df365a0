import pytest
import torch
from torch.testing import assert_close

from semclip.data.grid import cell_boxes
from semclip.data.images import load_image
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.models.selector import Selector, selection_picture


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


def bf16_scorer(tiny_clip_dir):
    import math

    from semclip.models.scorer import RelevanceScorer

    scorer = RelevanceScorer.from_pretrained(tiny_clip_dir, dtype=torch.bfloat16)
    with torch.no_grad():  # CLIP's trained scale: scores up to 100, where bf16 steps are coarse
        scorer.model.logit_scale.fill_(math.log(100.0))
    return scorer


def fp32_math(scorer, text_features, image_features):
    """logit_scale * cos by hand, in fp32, from the bf16 model's own outputs."""
    scale = scorer.model.logit_scale.detach().float().exp().clamp(max=100.0)
    text = torch.nn.functional.normalize(text_features.float(), dim=-1)
    image = torch.nn.functional.normalize(image_features.float(), dim=-1)
    return scale * text @ image.T


def not_bf16_steps(scores):
    """Some score is not a bf16 number (bf16 steps: 0.125 between 16 and 32, 0.5 up to 128)."""
    return bool((scores != scores.bfloat16().float()).any())


def test_bf16_scorer_scores_in_fp32(tiny_clip_dir, pairs):
    scorer = bf16_scorer(tiny_clip_dir)
    images, questions = pairs
    cells = [image.crop(box) for image in images[:2] for box in cell_boxes(96, 96, 3)]
    scores = scorer.score(questions, cells)
    tokens = scorer.tokenize(questions)
    with torch.no_grad():
        text = scorer.model.get_text_features(tokens["input_ids"], tokens["attention_mask"])
        image = scorer.model.get_image_features(scorer.pixel_values(cells).bfloat16())
    text, image = (getattr(f, "pooler_output", f) for f in (text, image))
    assert text.dtype == torch.bfloat16
    assert scores.dtype == torch.float32
    assert_close(scores, fp32_math(scorer, text, image), atol=1e-4, rtol=1e-5)
    assert not_bf16_steps(scores)
    # bf16 math on the same embeddings would be off by up to half a bf16 step
    in_bf16 = (
        scorer.model.logit_scale.exp()
        * torch.nn.functional.normalize(text, dim=-1)
        @ torch.nn.functional.normalize(image, dim=-1).T
    )
    assert not torch.allclose(in_bf16.float(), scores, atol=1e-3, rtol=0)


def test_bf16_selector_cell_scores_in_fp32(tiny_clip_dir, pairs):
    selector = Selector(bf16_scorer(tiny_clip_dir))
    images, questions = pairs
    scores, cells = selector.cell_scores(images, questions, grid=3)
    assert scores.dtype == torch.float32
    for row, image_cells, question in zip(scores, cells, questions):
        tokens = selector.scorer.tokenize([question])
        crops = [cell.image for cell in image_cells]
        with torch.no_grad():
            text = selector.scorer.model.get_text_features(
                tokens["input_ids"], tokens["attention_mask"]
            )
            image = selector.scorer.model.get_image_features(
                selector.scorer.pixel_values(crops).bfloat16()
            )
        text, image = (getattr(f, "pooler_output", f) for f in (text, image))
        assert_close(row, fp32_math(selector.scorer, text, image)[0], atol=1e-4, rtol=1e-5)
    assert not_bf16_steps(scores)


def test_saved_settings_are_used_unless_overridden(tiny_clip_dir, pairs, tmp_path):
    import json

    from semclip.models.scorer import SCORER_SETTINGS, RelevanceScorer

    stock = Selector.from_pretrained(tiny_clip_dir, device="cpu")
    assert stock.scorer.text_mode == "question" and stock.scorer.grid is None
    assert stock.grid == 2  # a stock CLIP: the default grid

    scorer = RelevanceScorer.from_pretrained(tiny_clip_dir, text_mode="full")
    scorer.grid, scorer.alpha = 3, "white"
    scorer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / SCORER_SETTINGS).read_text())
    assert saved == {"text_mode": "full", "grid": 3, "alpha": "white"}

    loaded = Selector.from_pretrained(tmp_path, device="cpu")
    assert (loaded.scorer.text_mode, loaded.scorer.grid, loaded.scorer.alpha) == (
        "full",
        3,
        "white",
    )
    images, questions = pairs
    (sel,) = loaded.select(images[:1], questions[:1])
    assert sel.grid == 3 and len(sel.scores) == 9  # the grid it was trained for
    override = Selector.from_pretrained(tmp_path, device="cpu", text_mode="question_hint")
    assert override.scorer.text_mode == "question_hint" and override.scorer.grid == 3
    with pytest.raises(ValueError, match="text mode"):
        RelevanceScorer.from_pretrained(tmp_path, text_mode="everything")


def test_bad_saved_settings_name_the_file(tiny_clip_dir, tmp_path):
    from semclip.models.scorer import SCORER_SETTINGS, RelevanceScorer

    RelevanceScorer.from_pretrained(tiny_clip_dir).save_pretrained(tmp_path)
    (tmp_path / SCORER_SETTINGS).write_text('{"text_mode": "question", "grid": 99}')
    with pytest.raises(ValueError, match=f"{SCORER_SETTINGS}: grid n must be"):
        RelevanceScorer.from_pretrained(tmp_path)
