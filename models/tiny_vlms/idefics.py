"""Tiny random Idefics3 and SmolVLM checkpoints (one shared builder; SmolVLM is Idefics3's design).

Both tile each image: it is resized so its longest edge is ``size["longest_edge"]``, cut into
``max_image_size`` tiles (rows x cols) plus one global tile, and every tile becomes
``image_seq_len`` ``<image>`` tokens after the pixel-shuffle connector (``scale_factor``). An image
expands in the text to (``<fake>`` = ``<fake_token_around_image>``, n = ``image_seq_len``)::

    <fake><row_1_col_1><image>*n <fake><row_1_col_2><image>*n ... \\n   (one such line per row)
    ...
    \\n<fake><global-img><image>*n<fake>

Every image, small or large, is first resized to that longest edge, so all images are split
(same aspect ratio, same tiles); only ``do_image_splitting=False`` gives the unsplit form
``<fake><global-img><image>*n<fake>``. Two adjacent images meet as ``<fake><fake>``: an image's span
ends at the ``<fake>`` after its ``<global-img><image>*n``. The chat templates are the published
ones, so they write the BOS themselves (``<|begin_of_text|>`` / ``<|im_start|>``).
"""

from __future__ import annotations

from pathlib import Path

from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Template of HuggingFaceM4/Idefics3-8B-Llama3:
#: ``<|begin_of_text|>User:<image>...<end_of_utterance>\n`` (``User:`` glued to a leading image,
#: ``User: `` before text), then ``Assistant:``.
IDEFICS3_CHAT_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

#: Template of HuggingFaceTB/SmolVLM-Instruct: the same shape, opened by ``<|im_start|>`` (its BOS).
SMOLVLM_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}"
    "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

IMAGE_TOKENS = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
ROW_COL_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
HALF = [0.5, 0.5, 0.5]


def _tiling(tile: int, patch: int, scale: int) -> tuple[dict, int]:
    """Image-processor sizes and ``image_seq_len`` for ``tile``-pixel tiles.

    Images are resized to a longest edge of two tiles (the real checkpoints use four), so a
    landscape or square image gives 2x2 tiles + 1 global tile; each tile yields
    ``((tile / patch) / scale) ** 2`` image tokens.
    """
    sizes = dict(size={"longest_edge": 2 * tile}, max_image_size={"longest_edge": tile})
    return sizes, (tile // patch // scale) ** 2


def _text_config(tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        num_key_value_heads=TEXT["num_attention_heads"],
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TEXT,
    )


def _build(smol: bool, out_dir: str | Path, seed: int) -> Path:
    """Shared body of both builders: SmolVLM's (``smol``) or Idefics3's."""
    import transformers as tf

    if not smol:
        tile, patch, scale = 32, 8, 2
        tokenizer = tiny_tokenizer(
            [*IMAGE_TOKENS, *ROW_COL_TOKENS],
            bos="<|begin_of_text|>",
            eos="<|end_of_text|>",
            pad="<|reserved_special_token_0|>",
        )
        names = ("Idefics3ImageProcessorPil", "Idefics3Processor")
        names += ("Idefics3VisionConfig", "Idefics3Config", "Idefics3ForConditionalGeneration")
        template, extra = IDEFICS3_CHAT_TEMPLATE, {}
    else:
        tile, patch, scale = 36, 4, 3
        named = dict(
            fake_image_token="<fake_token_around_image>",
            image_token="<image>",
            end_of_utterance_token="<end_of_utterance>",
            global_image_token="<global-img>",
        )
        tokenizer = tiny_tokenizer(
            [*IMAGE_TOKENS, *ROW_COL_TOKENS],
            named=named,
            bos="<|im_start|>",
            eos="<end_of_utterance>",
            pad="<|im_end|>",
        )
        # SmolVLM's (GPT-2 style) tokenizer adds no BOS: only its chat template writes it.
        tokenizer.add_bos_token = False
        names = ("SmolVLMImageProcessorPil", "SmolVLMProcessor")
        names += ("SmolVLMVisionConfig", "SmolVLMConfig", "SmolVLMForConditionalGeneration")
        template = SMOLVLM_CHAT_TEMPLATE
    image_cls, processor_cls, vision_cls, config_cls, model_cls = (getattr(tf, n) for n in names)
    sizes, image_seq_len = _tiling(tile, patch, scale)
    image_processor = image_cls(image_mean=HALF, image_std=HALF, do_image_splitting=True, **sizes)
    if smol:
        # Needs torchvision, as the real SmolVLM processor does.
        extra = dict(
            video_processor=tf.SmolVLMVideoProcessor(image_mean=HALF, image_std=HALF, **sizes)
        )
    processor = processor_cls(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=template,
        **extra,
    )
    vision = vision_cls(image_size=tile, patch_size=patch, **VISION)
    config = config_cls(
        vision_config=vision.to_dict(),
        text_config=_text_config(tokenizer).to_dict(),
        scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return save_tiny(seeded(model_cls, config, seed), processor, out_dir)


def build_tiny_idefics3(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random Idefics3 model mirroring HuggingFaceM4/Idefics3-8B-Llama3.

    Same tokens (``<|begin_of_text|>`` BOS added by the tokenizer and written by the chat template,
    ``<fake_token_around_image>``, ``<image>``, ``<global-img>``, 36 ``<row_i_col_j>``,
    ``<end_of_utterance>``), chat template, tiling logic and ``scale_factor`` 2. Tiny: 32 px tiles
    of 8 px patches (4 ``<image>`` tokens per tile, real 364 px / 169), longest edge 64 px (real
    1456), a 2-layer Idefics3 vision tower of width 32 and a 2-layer Llama of width 64.
    """
    return _build(False, out_dir, seed)


def build_tiny_smolvlm(out_dir: str | Path, seed: int = 0) -> Path:
    """A tiny random ``SmolVLMForConditionalGeneration`` mirroring HuggingFaceTB/SmolVLM-Instruct.

    Same tokens (``<|im_start|>`` BOS written only by the chat template, the tokenizer adds none;
    ``<end_of_utterance>`` EOS, ``<|im_end|>`` pad; the Idefics3 image tokens), chat template,
    tiling logic and ``scale_factor`` 3. Tiny: 36 px tiles of 4 px patches (9 ``<image>`` tokens
    per tile, real 384 px / 81), longest edge 72 px (real 1536), a 2-layer vision tower of width 32
    and a 2-layer Llama of width 64. Its processor needs torchvision (its video processor) and
    num2words.
    """
    return _build(True, out_dir, seed)
