"""Tiny random Qwen2-VL, Qwen2.5-VL and Qwen3-VL checkpoints, built offline from a seed.

Each mirrors the published ``*-7B/8B-Instruct`` checkpoint's processor (ChatML chat template with
``<|vision_start|><|image_pad|><|vision_end|>`` per image, no BOS token, ``<|im_end|>`` as EOS,
``<|endoftext|>`` as padding), its image processor (flattened patches, ``image_grid_thw``; real
patch sizes, pixel bounds lowered so an image gives at most 64 tokens) and its model class
(M-RoPE; Qwen3-VL with interleaved M-RoPE and deepstack), with 2-layer, 64-wide towers.

The processors own a video processor, so building or loading them needs torchvision.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from semclip.models.tiny import CLIP_MEAN, CLIP_STD
from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Special tokens of the real Qwen vocabularies that these models use, in the real id order.
QWEN_SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_NAMED = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}

_CONTENT = (
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
)


def _chat_template(default_system: str | None) -> str:
    """ChatML as the Qwen VL checkpoints publish it; images in content order, no BOS.

    Qwen2-VL / Qwen2.5-VL write ``default_system`` when the first turn is not a system turn;
    Qwen3-VL writes no system turn of its own.
    """
    system = (
        "{% if loop.first and message['role'] != 'system' %}"
        f"<|im_start|>system\n{default_system}<|im_end|>\n{{% endif %}}"
        if default_system
        else ""
    )
    return (
        "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
        "{% for message in messages %}"
        f"{system}<|im_start|>{{{{ message['role'] }}}}\n{_CONTENT}<|im_end|>\n"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )


@dataclass
class _QwenSpec:
    """What differs between the three families."""

    model: str
    config: str
    processor: str
    video_processor: str
    patch_size: int
    mean: list[float]
    std: list[float]
    vision: dict[str, Any]
    rope: dict[str, Any]
    default_system: str | None
    min_tokens: int
    """Images with fewer merged tokens are upscaled (real: 4 for Qwen2/2.5-VL, 64 for Qwen3-VL)."""
    text: dict[str, Any] = field(default_factory=dict)


def _build_qwen(spec: _QwenSpec, out_dir: str | Path, seed: int) -> Path:
    """Tokenizer, image/video processors, processor, config and seeded model; saved to out_dir."""
    import transformers
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = tiny_tokenizer(
        QWEN_SPECIAL, QWEN_NAMED, bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>"
    )
    # The published Qwen tokenizers have no BOS token and add nothing to an encoding.
    tokenizer.bos_token = None
    tokenizer.add_bos_token = False
    factor = spec.patch_size * 2
    vision_kwargs = dict(
        size={"shortest_edge": spec.min_tokens * factor**2, "longest_edge": 64 * factor**2},
        patch_size=spec.patch_size,
        temporal_patch_size=2,
        merge_size=2,
        image_mean=spec.mean,
        image_std=spec.std,
    )
    processor = getattr(transformers, spec.processor)(
        image_processor=Qwen2VLImageProcessorPil(**vision_kwargs),
        tokenizer=tokenizer,
        video_processor=getattr(transformers, spec.video_processor)(**vision_kwargs),
        chat_template=_chat_template(spec.default_system),
    )
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in QWEN_SPECIAL}
    text = dict(
        TEXT,
        vocab_size=len(tokenizer),
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_parameters=spec.rope,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        **spec.text,
    )
    vision = dict(patch_size=spec.patch_size, spatial_merge_size=2, temporal_patch_size=2)
    config = getattr(transformers, spec.config)(
        text_config=text,
        vision_config={**vision, **spec.vision},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=False,
    )
    model = seeded(getattr(transformers, spec.model), config, seed)
    return save_tiny(model, processor, out_dir)


_VISION_OUT = dict(
    depth=VISION["num_hidden_layers"],
    hidden_size=VISION["hidden_size"],
    intermediate_size=VISION["intermediate_size"],
    num_heads=VISION["num_attention_heads"],
    out_hidden_size=TEXT["hidden_size"],
)


def build_tiny_qwen2_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """Mirror of ``Qwen/Qwen2-VL-7B-Instruct``: ChatML with the default system turn, patch 14.

    Made tiny: 2-layer 64-wide LM (4 heads, 2 KV heads, head_dim 16, ``mrope_section``
    [2, 3, 3]), 2-layer 32-wide vision tower, ~480-token BPE; images keep the published 56x56 px
    minimum (4 tokens) but are capped at 64 tokens (a 96x80 image: 9 tokens, 48x40: 6).
    """
    spec = _QwenSpec(
        model="Qwen2VLForConditionalGeneration",
        config="Qwen2VLConfig",
        processor="Qwen2VLProcessor",
        video_processor="Qwen2VLVideoProcessor",
        patch_size=14,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        vision=dict(
            depth=VISION["num_hidden_layers"],
            embed_dim=VISION["hidden_size"],
            mlp_ratio=VISION["intermediate_size"] // VISION["hidden_size"],
            num_heads=VISION["num_attention_heads"],
            hidden_size=TEXT["hidden_size"],
        ),
        rope={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        default_system="You are a helpful assistant.",
        min_tokens=4,
    )
    return _build_qwen(spec, out_dir, seed)


def build_tiny_qwen2_5_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """Mirror of ``Qwen/Qwen2.5-VL-7B-Instruct``: as Qwen2-VL, with a windowed SwiGLU ViT.

    Made tiny: as Qwen2-VL; the vision window is 56 px (2x2 merged tokens) so windowing acts on
    small images, with full attention in the last of its 2 layers.
    """
    spec = _QwenSpec(
        model="Qwen2_5_VLForConditionalGeneration",
        config="Qwen2_5_VLConfig",
        processor="Qwen2_5_VLProcessor",
        video_processor="Qwen2VLVideoProcessor",
        patch_size=14,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        vision=dict(_VISION_OUT, window_size=56, fullatt_block_indexes=[1], tokens_per_second=2),
        rope={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
        default_system="You are a helpful assistant.",
        min_tokens=4,
    )
    return _build_qwen(spec, out_dir, seed)


def build_tiny_qwen3_vl(out_dir: str | Path, seed: int = 0) -> Path:
    """Mirror of ``Qwen/Qwen3-VL-8B-Instruct``: ChatML without a default system turn, patch 16.

    Made tiny: 2-layer 64-wide LM (head_dim 16, interleaved ``mrope_section`` [4, 2, 2]),
    2-layer 32-wide vision tower (8x8 learned position grid) whose both layers feed deepstack
    features into the 2 LM layers, ~480-token BPE; images are upscaled to at least 128x128 px
    (published: 256x256) and capped at 64 tokens (96x80 and 48x40 images: 20 tokens each).
    """
    spec = _QwenSpec(
        model="Qwen3VLForConditionalGeneration",
        config="Qwen3VLConfig",
        processor="Qwen3VLProcessor",
        video_processor="Qwen3VLVideoProcessor",
        patch_size=16,
        mean=[0.5, 0.5, 0.5],
        std=[0.5, 0.5, 0.5],
        vision=dict(_VISION_OUT, num_position_embeddings=64, deepstack_visual_indexes=[0, 1]),
        rope={
            "rope_type": "default",
            "rope_theta": 5e6,
            "mrope_section": [4, 2, 2],
            "mrope_interleaved": True,
        },
        default_system=None,
        min_tokens=16,
        text=dict(head_dim=TEXT["hidden_size"] // TEXT["num_attention_heads"]),
    )
    return _build_qwen(spec, out_dir, seed)
