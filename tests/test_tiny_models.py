import torch
from transformers import AutoModelForImageTextToText, AutoProcessor, CLIPModel

from semclip.data.images import load_image
from semclip.data.synthetic import SyntheticConfig, make_example


def sample_image():
    return load_image(make_example(SyntheticConfig(image_size=64), 0)["image"])


def test_tiny_llava_reloads_and_takes_two_images(tiny_llava_dir):
    model = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir)
    processor = AutoProcessor.from_pretrained(tiny_llava_dir)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Q?"}],
        }
    ]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text == "USER: <image>\n<image>\nQ? ASSISTANT:"
    image = sample_image()
    inputs = processor(images=[image, image.crop((0, 0, 32, 32))], text=text, return_tensors="pt")
    image_token = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert int((inputs["input_ids"] == image_token).sum()) == 2 * 16
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits.shape[:2] == inputs["input_ids"].shape
    assert torch.isfinite(out.logits).all()


def test_tiny_llava_is_deterministic(tiny_llava_dir, tmp_path):
    from semclip.models.tiny import build_tiny_llava

    again = build_tiny_llava(tmp_path / "again")
    a = AutoModelForImageTextToText.from_pretrained(tiny_llava_dir).state_dict()
    b = AutoModelForImageTextToText.from_pretrained(again).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tiny_clip_reloads_and_scores(tiny_clip_dir):
    model = CLIPModel.from_pretrained(tiny_clip_dir)
    processor = AutoProcessor.from_pretrained(tiny_clip_dir)
    tokens = processor.tokenizer.tokenize("What color is the triangle?")
    assert tokens[:2] == ["what</w>", "color</w>"]
    image = sample_image()
    inputs = processor(
        text=["What color is the star?", "a red circle"],
        images=[image, image],
        return_tensors="pt",
        padding=True,
    )
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (2, 2)
    assert torch.isfinite(out.logits_per_image).all()


def test_tiny_tokenizers_are_deterministic(tiny_clip_dir, tiny_llava_dir, tmp_path):
    from pathlib import Path

    from semclip.models.tiny import build_tiny_clip, build_tiny_llava

    clip, llava = build_tiny_clip(tmp_path / "c"), build_tiny_llava(tmp_path / "l")
    for name in ("vocab.json", "merges.txt", "model.safetensors"):
        assert (clip / name).read_bytes() == (Path(tiny_clip_dir) / name).read_bytes(), name
    assert (llava / "tokenizer.json").read_bytes() == (
        Path(tiny_llava_dir) / "tokenizer.json"
    ).read_bytes()
