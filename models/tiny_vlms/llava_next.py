"""Tiny random LLaVA-NeXT and LLaVA-OneVision checkpoints, built offline from a seed.

Both families tile an image "anyres" style: a base tile of the whole image plus the cells of the
best-fitting grid from ``image_grid_pinpoints``, so the number of image tokens depends on the image
size. Here the vision tile is 32 px with 8 px patches (16 patches per tile) and the pinpoints are
the published ones scaled from the real tile (336 / 384 px) down to 32 px.
"""

from __future__ import annotations

from pathlib import Path

from semclip.models.tiny import CLIP_MEAN, CLIP_STD, LLAVA15_CHAT_TEMPLATE
from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Vision tile side and patch side, in pixels (real: 336/14 for NeXT, 384/14 for OneVision).
TILE = 32
PATCH = 8

#: llava-v1.6 grids, (rows, cols) of tiles: the published 336 px pinpoints 336x672 ... 336x1008.
NEXT_GRIDS = [(1, 2), (2, 1), (2, 2), (3, 1), (1, 3)]
#: OneVision grids: the published ones run from 1x1 to 6x6 tiles with ``anyres_max_9``; here 1x1 to
#: 3x3 with ``anyres_max_4``, so large images still hit the token cap as the real model does.
ONEVISION_GRIDS = [(rows, cols) for rows in range(1, 4) for cols in range(1, 4)]
ONEVISION_ASPECT = "anyres_max_4"

#: The llava-hf OneVision chat form (Qwen2 ``<|im_start|>`` roles, images then videos then text):
#: ``<|im_start|>user <image><image>\n{text}<|im_end|><|im_start|>assistant\n``. No BOS.
ONEVISION_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ '\n' + content['text'] }}"
    "{% endfor %}"
    "{{ '<|im_end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _pinpoints(grids: list[tuple[int, int]]) -> list[list[int]]:
    """``(rows, cols)`` tile grids as ``[height, width]`` pixel resolutions."""
    return [[rows * TILE, cols * TILE] for rows, cols in grids]


def _vision_kwargs() -> dict:
    return dict(VISION, image_size=TILE, patch_size=PATCH)


def _text_kwargs(tokenizer, bos_token_id: int | None) -> dict:
    return dict(
        TEXT,
        vocab_size=len(tokenizer),
        num_key_value_heads=TEXT["num_attention_heads"],
        max_position_embeddings=4096,
        bos_token_id=bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_llava_next(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``LlavaNextForConditionalGeneration`` (llava-hf/llava-v1.6-vicuna-7b-hf).

    Same pieces as the real one: a Llama LM whose tokenizer prepends ``<s>`` (the chat template,
    ``USER: <image>\\n... ASSISTANT:``, writes none), a CLIP vision tower read at layer -2 with the
    CLS token dropped ("default" strategy, hence ``num_additional_image_tokens=1``), the anyres
    image processor (PIL backend, no torchvision) and its five grids. Tiny: LM hidden 64 x 2
    layers, CLIP hidden 32 x 2 layers on 32 px tiles of 8 px patches, 32..96 px grids.
    """
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    tokenizer = tiny_tokenizer(["<image>"], {"image_token": "<image>"})
    pinpoints = _pinpoints(NEXT_GRIDS)
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": TILE},
        crop_size={"height": TILE, "width": TILE},
        image_grid_pinpoints=pinpoints,
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA15_CHAT_TEMPLATE,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(**_vision_kwargs(), projection_dim=VISION["hidden_size"]),
        text_config=LlamaConfig(**_text_kwargs(tokenizer, tokenizer.bos_token_id)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_grid_pinpoints=pinpoints,
        image_seq_length=(TILE // PATCH) ** 2,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = seeded(LlavaNextForConditionalGeneration, config, seed)
    return save_tiny(model, processor, out_dir, seed)


def _qwen_tokenizer():
    """Qwen2-style: ``<|endoftext|>`` pad, ``<|im_end|>`` eos, no BOS and nothing prepended."""
    from tokenizers import processors

    specials = ["<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    named = {"image_token": "<image>", "video_token": "<video>"}
    tokenizer = tiny_tokenizer(specials, named, "<|endoftext|>", "<|im_end|>", "<|endoftext|>")
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.bos_token = None
    return tokenizer


def build_tiny_llava_onevision(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``LlavaOnevisionForConditionalGeneration`` (llava-onevision-qwen2-7b-ov-hf).

    Same pieces as the real one: a Qwen2 LM with a Qwen-style tokenizer (no BOS; the chat template
    ``<|im_start|>user <image>...\\n{text}<|im_end|><|im_start|>assistant\\n`` writes none either),
    a SigLIP tower without pooling head read at its last layer ("full" strategy, no CLS), anyres
    tiling with an ``anyres_max_N`` token cap for a single image and one base tile per image in
    multi-image mode, and the video processor (which needs torchvision). Tiny: LM hidden 64 x 2
    layers, SigLIP hidden 32 x 2 layers on 32 px tiles of 8 px patches, 1x1..3x3 grids.
    """
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
        LlavaOnevisionVideoProcessor,
        Qwen2Config,
        SiglipVisionConfig,
    )

    tokenizer = _qwen_tokenizer()
    pinpoints = _pinpoints(ONEVISION_GRIDS)
    square = {"height": TILE, "width": TILE}
    siglip = dict(image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessorPil(
            size=square, image_grid_pinpoints=pinpoints, **siglip
        ),
        tokenizer=tokenizer,
        video_processor=LlavaOnevisionVideoProcessor(size=square, **siglip),
        num_image_tokens=(TILE // PATCH) ** 2,
        vision_feature_select_strategy="full",
        vision_aspect_ratio=ONEVISION_ASPECT,
        chat_template=ONEVISION_CHAT_TEMPLATE,
    )
    config = LlavaOnevisionConfig(
        vision_config=SiglipVisionConfig(**_vision_kwargs(), vision_use_head=False),
        text_config=Qwen2Config(**_text_kwargs(tokenizer, tokenizer.pad_token_id)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=pinpoints,
        vision_aspect_ratio=ONEVISION_ASPECT,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = seeded(LlavaOnevisionForConditionalGeneration, config, seed)
    return save_tiny(model, processor, out_dir, seed)
