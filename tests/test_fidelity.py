"""Fidelity to LLaVA-1.5's own evaluation, against values written out by hand.

Sources: LLaVA ``llava/conversation.py`` (``conv_vicuna_v1``: separator style ``TWO``, ``sep=" "``;
``scripts/v1_5/eval/sqa.sh`` runs ScienceQA with ``--conv-mode vicuna_v1``), ``llava/mm_utils.py``
(``expand2square(image, tuple(int(x * 255) for x in image_processor.image_mean))``) and its loaders'
``Image.open(...).convert("RGB")``; lmms-eval's ``llava`` model (``conv_template="vicuna_v1"``).
"""

import io
from types import SimpleNamespace

import pytest
from PIL import Image

from semclip.data.images import (
    CLIP_MEAN_RGB,
    DEFAULT_ALPHA,
    load_image,
    pad_to_square,
    processor_background,
)
from semclip.data.prompts import render_prompt, template_hash
from semclip.vlm.render import LLAVA15_SYSTEM, render_input

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
SIGLIP_MEAN = [0.5, 0.5, 0.5]


def test_llava15_input_is_llavas_vicuna_v1_prompt():
    prompt = render_prompt("Which is a mammal?", ["frog", "whale"])
    # conv_vicuna_v1.get_prompt() for [("USER", "<image>\n" + prompt), ("ASSISTANT", None)]:
    # system + " " + "USER: " + message + " " + "ASSISTANT:"
    expected = (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions. USER: <image>\n"
        "Which is a mammal?\nA. frog\nB. whale\n"
        "Answer with the option's letter from the given choices directly. ASSISTANT:"
    )
    assert render_input(None, "llava15", prompt, 1) == expected
    assert render_input(None, "llava15", prompt, 1, system=LLAVA15_SYSTEM) == expected


def test_llava15_system_line_can_be_left_out_and_changes_the_template_hash():
    two = "USER: <image>\n<image>\nQ? ASSISTANT:"
    assert render_input(None, "llava15", "Q?", 2, system=None) == two
    assert render_input(None, "llava15", "Q?", 2, system="") == two
    assert render_input(None, "llava15", "Q?", 2, system="Be brief.") == f"Be brief. {two}"
    with_system = template_hash(render_input(None, "llava15", "{prompt}", 2))
    without = template_hash(render_input(None, "llava15", "{prompt}", 2, system=None))
    assert with_system != without


def test_chat_templates_keep_their_own_system_prompt():
    seen = []

    class Processor:
        def apply_chat_template(self, messages, **kwargs):
            seen.append(messages)
            return "rendered"

    for system in (LLAVA15_SYSTEM, None):
        assert render_input(Processor(), "chat_template", "Q?", 1, system=system) == "rendered"
    user_turn = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q?"}]}]
    assert seen == [user_turn, user_turn]


@pytest.mark.parametrize(
    "mean,expected",
    [
        # 255 * mean = 122.77, 116.75, 104.09: truncated, not rounded (123, 117, 104)
        (CLIP_MEAN, (122, 116, 104)),
        # 255 * 0.5 = 127.5: truncated to 127 (round would give 128)
        (SIGLIP_MEAN, (127, 127, 127)),
    ],
)
def test_pad_colour_is_llavas_truncated_mean(mean, expected):
    background = processor_background(SimpleNamespace(image_mean=mean))
    assert background == expected
    square = pad_to_square(Image.new("RGB", (4, 2), (1, 2, 3)), background)
    assert square.getpixel((0, 0)) == expected and square.getpixel((0, 1)) == (1, 2, 3)


def test_clip_mean_constant_is_llavas():
    assert CLIP_MEAN_RGB == (122, 116, 104)
    assert processor_background(SimpleNamespace(image_mean=None)) is None


def test_transparency_is_dropped_by_default_as_convert_rgb_does():
    assert DEFAULT_ALPHA == "drop"
    image = Image.new("RGBA", (2, 1), (200, 100, 50, 0))  # fully transparent, colour stored
    image.putpixel((1, 0), (10, 20, 30, 128))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    out = load_image(buffer.getvalue())
    assert out.mode == "RGB"
    assert [out.getpixel((x, 0)) for x in range(2)] == [(200, 100, 50), (10, 20, 30)]


def test_labelset_records_the_image_backend_alpha_and_system_line(tiny_llava_dir, tmp_path):
    """What the VLM saw is in the provenance: a different backend, alpha or system line is a
    different resume key; the generate path parses as lmms-eval does."""
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import _hf_provenance

    base = dict(model=tiny_llava_dir, output_dir=str(tmp_path), accelerator="cpu")
    prov, _ = _hf_provenance(LabelConfig.from_values(**base))
    assert prov.image_backend in ("pil", "torchvision") and prov.alpha == "drop"
    pil, _ = _hf_provenance(LabelConfig.from_values(**base, image_backend="pil"))
    assert pil.image_backend == "pil"
    white, _ = _hf_provenance(LabelConfig.from_values(**base, image_backend="pil", alpha="white"))
    bare, _ = _hf_provenance(LabelConfig.from_values(**base, image_backend="pil", system_prompt=""))
    keys = {pil.resume_key, white.resume_key, bare.resume_key}
    assert len(keys) == 3


def test_the_hf_evaluator_renders_the_system_line(tiny_llava_dir):
    from semclip.labeling.hf_evaluator import HFEvaluator
    from semclip.vlm.config import VLMConfig
    from semclip.vlm.parsing import parse_answer
    from semclip.vlm.render import LLAVA15_SYSTEM
    from semclip.vlm.runtime import parse_answer as used

    with_line = HFEvaluator(VLMConfig(model=tiny_llava_dir, device="cpu"), grid=2)
    two = with_line.vlm.render("Q?", 2)
    assert two == f"{LLAVA15_SYSTEM} USER: <image>\n<image>\nQ? ASSISTANT:"
    config = VLMConfig(model=tiny_llava_dir, device="cpu", system_prompt="")
    bare = HFEvaluator(config, grid=2, model=with_line.vlm.model)
    assert bare.vlm.render("Q?", 1) == "USER: <image>\nQ? ASSISTANT:"
    assert used is parse_answer


def test_a_chat_template_family_records_no_system_line(synthetic_dir, tmp_path):
    """labelset.json keeps what the VLM saw: the llava15 system line only where it is shown."""
    from semclip.data.labels import read_info
    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling
    from semclip.vlm.config import VLMConfig
    from semclip.vlm.families import build_tiny_vlm
    from semclip.vlm.render import LLAVA15_SYSTEM

    model = build_tiny_vlm("llava_next", tmp_path / "llava_next")
    for fmt, system in (("auto", ""), ("llava15", LLAVA15_SYSTEM)):
        out = tmp_path / f"labels-{fmt}"
        config = LabelConfig.from_values(
            dataset=synthetic_dir, splits=["test"], limit=1, model=str(model), prompt_format=fmt,
            output_dir=str(out), accelerator="cpu", progress=False,
        )  # fmt: skip
        run_labeling(config)
        recorded = VLMConfig.from_dict(read_info(out).vlm)
        expected = "chat_template" if fmt == "auto" else "llava15"
        assert (recorded.prompt_format, recorded.system_prompt) == (expected, system)
