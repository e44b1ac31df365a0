"""Tiny random Gemma 3 (``Gemma3ForConditionalGeneration``), built offline from a seed.

Mirrors ``google/gemma-3-4b-it``: a SigLIP vision tower whose patch grid is average-pooled to a
fixed ``mm_tokens_per_image`` soft tokens per image, a Gemma 3 language model with sliding and
full attention layers, and the published chat template (``<bos>`` written by the template,
``<start_of_turn>user`` / ``<start_of_turn>model`` turns, ``<start_of_image>`` placeholders that
the processor expands to ``\\n\\n<start_of_image>`` + soft tokens + ``<end_of_image>\\n\\n``).
The image processor is ``Gemma3ImageProcessorPil``, so no torchvision is needed.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Side of the square image the tiny SigLIP tower sees (real: 896).
IMAGE_SIZE = 32
#: Vision patch side (real: 14); the grid is IMAGE_SIZE / PATCH_SIZE = 8 patches a side.
PATCH_SIZE = 4
#: Soft tokens per image (real: 256); a square dividing the 8 x 8 patch grid (pooled 2 x 2).
MM_TOKENS_PER_IMAGE = 16

#: The shape of the published gemma-3 chat template: BOS first, a system message becomes the
#: prefix of the first user turn (followed by a blank line), "assistant" is rendered "model",
#: content items in their order (an image is ``<start_of_image>``, text is trimmed).
GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}"
    "{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}"
    "{{ message['content'] | trim }}"
    "{%- else -%}"
    "{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def _processor():
    from transformers import Gemma3ImageProcessorPil, Gemma3Processor

    named = {
        "image_token": "<image_soft_token>",
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
    }
    special = ["<start_of_turn>", "<end_of_turn>", *named.values()]
    # Gemma's tokenizer has tokens for runs of newlines: "\n\n" after one image and before the
    # next merge into one "\n\n\n\n" token, so a row's tokens are not those of its parts.
    newlines = ("a\n\n", "b\n\n\n\n") * 4
    tokenizer = tiny_tokenizer(
        special, named, bos="<bos>", eos="<eos>", pad="<pad>", corpus=newlines
    )
    image_processor = Gemma3ImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Gemma3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_length=MM_TOKENS_PER_IMAGE,
        chat_template=GEMMA3_CHAT_TEMPLATE,
    )


def _config(tokenizer):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    ids = tokenizer.convert_tokens_to_ids
    head_dim = TEXT["hidden_size"] // TEXT["num_attention_heads"]
    text = Gemma3TextConfig(
        **TEXT,
        vocab_size=len(tokenizer),
        num_key_value_heads=TEXT["num_attention_heads"] // 2,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        # One local and one global layer; the window exceeds these prompts as 1024 does the
        # real ones.
        sliding_window=512,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, ids("<end_of_turn>")],
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = SiglipVisionConfig(**VISION, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE)
    return Gemma3Config(
        text_config=text,
        vision_config=vision,
        mm_tokens_per_image=MM_TOKENS_PER_IMAGE,
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        image_token_index=ids("<image_soft_token>"),
    )


def build_tiny_gemma3(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Gemma 3 (mirrors ``google/gemma-3-4b-it``) to ``out_dir``.

    Tiny: LM hidden 64 / 2 layers (one sliding, one full) / 4 heads (2 KV heads), SigLIP hidden 32
    / 2 layers on 32 px images in 4 px patches, 16 soft tokens per image (real: 256), a 600-token
    BPE vocabulary. The projector weight, which transformers initialises to zeros, is drawn from
    the seed so that images change the logits.
    """
    from transformers import Gemma3ForConditionalGeneration

    processor = _processor()
    model = seeded(Gemma3ForConditionalGeneration, _config(processor.tokenizer), seed)
    weight = model.model.multi_modal_projector.mm_input_projection_weight
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight.copy_(torch.randn(weight.shape, generator=generator) / weight.shape[0] ** 0.5)
    return save_tiny(model, processor, out_dir, seed)
