"""Tiny random InternVL (transformers-native ``InternVLForConditionalGeneration``), built offline.

Mirrors ``OpenGVLab/InternVL3-8B-hf``: an InternViT tower on fixed-size tiles (an image is cut into
up to ``max_patches`` tiles plus a thumbnail, each tile is one row of ``pixel_values``), pixel
shuffle (``downsample_ratio`` 0.5) and an MLP projector into a Qwen2 language model; the published
ChatML template with ``<IMG_CONTEXT>\\n`` placeholders that the processor expands to ``<img>`` +
``image_seq_length`` x tiles ``<IMG_CONTEXT>`` + ``</img>``. Like the Qwen2.5 tokenizer it uses,
no BOS token exists and none is added. The processor owns ``InternVLVideoProcessor``, which needs
torchvision; the image processor is ``GotOcr2ImageProcessorPil``.
"""

from __future__ import annotations

from pathlib import Path

from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Tile side in pixels (real: 448).
TILE_SIZE = 32
#: Vision patch side (real: 14): an 8 x 8 patch grid per tile.
PATCH_SIZE = 4
#: Tokens per tile after the 0.5 pixel shuffle: (32 / 4 * 0.5) ** 2 (real: 256).
IMAGE_SEQ_LENGTH = 16
#: Most tiles an image is cut into, before the thumbnail (real: 12): a 96 x 80 image gives 2 x 2
#: tiles + a thumbnail (5 rows of ``pixel_values``, 80 tokens), a 48 x 40 one a single tile.
MAX_PATCHES = 4
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

#: The shape of the published InternVL3-*-hf template: ChatML turns, no default system message,
#: content items in their order (an image is ``<IMG_CONTEXT>`` and a newline), no BOS.
INTERNVL_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}"
    "{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer():
    from tokenizers import processors

    named = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    special = ["<|im_start|>", *named.values()]
    tokenizer = tiny_tokenizer(
        special, named, bos="<|endoftext|>", eos="<|im_end|>", pad="<|endoftext|>"
    )
    # Qwen2.5's tokenizer has no BOS token and a plain byte-level post-processor.
    tokenizer.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.bos_token = None
    return tokenizer


def _processor():
    from transformers import GotOcr2ImageProcessorPil, InternVLProcessor, InternVLVideoProcessor

    size = {"height": TILE_SIZE, "width": TILE_SIZE}
    norm = dict(image_mean=IMAGENET_MEAN, image_std=IMAGENET_STD)
    image_processor = GotOcr2ImageProcessorPil(
        size=size, crop_to_patches=True, min_patches=1, max_patches=MAX_PATCHES, **norm
    )
    video_processor = InternVLVideoProcessor(size=size, initial_shift=True, **norm)
    return InternVLProcessor(
        image_processor=image_processor,
        tokenizer=_tokenizer(),
        video_processor=video_processor,
        image_seq_length=IMAGE_SEQ_LENGTH,
        chat_template=INTERNVL_CHAT_TEMPLATE,
    )


def _config(tokenizer):
    from transformers import InternVLConfig, InternVLVisionConfig, Qwen2Config

    text = Qwen2Config(
        **TEXT,
        vocab_size=len(tokenizer),
        num_key_value_heads=TEXT["num_attention_heads"] // 2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = InternVLVisionConfig(
        **VISION,
        image_size=[TILE_SIZE, TILE_SIZE],
        patch_size=[PATCH_SIZE, PATCH_SIZE],
        use_absolute_position_embeddings=True,
        attention_bias=True,
    )
    return InternVLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.context_image_token_id,
        image_seq_length=IMAGE_SEQ_LENGTH,
        downsample_ratio=0.5,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        tie_word_embeddings=False,
    )


def build_tiny_internvl(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a tiny random InternVL (mirrors ``OpenGVLab/InternVL3-8B-hf``) to ``out_dir``.

    Tiny: Qwen2 LM hidden 64 / 2 layers / 4 heads (2 KV heads), InternViT hidden 32 / 2 layers on
    32 px tiles in 4 px patches, 16 tokens per tile (real: 256), at most 4 tiles + a thumbnail
    per image (real: 12), a 600-token BPE vocabulary. Needs torchvision (the video processor).
    """
    from transformers import InternVLForConditionalGeneration

    processor = _processor()
    model = seeded(InternVLForConditionalGeneration, _config(processor.tokenizer), seed)
    return save_tiny(model, processor, out_dir, seed)
