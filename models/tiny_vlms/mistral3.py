"""Tiny random Mistral 3 (``Mistral3ForConditionalGeneration``), built offline from a seed.

Mirrors ``mistralai/Mistral-Small-3.1-24B-Instruct-2503``: a Pixtral vision tower (2-D RoPE, any
image size up to ``longest_edge``), a 2 x 2 patch merger and projector into a Mistral language
model, and ``PixtralProcessor``, which expands each ``[IMG]`` placeholder to rows of ``[IMG]``
tokens, each row but the last ended by ``[IMG_BREAK]`` and the last by ``[IMG_END]``. The chat
template writes BOS and a ``[SYSTEM_PROMPT]`` block (the published default system message, cut to
its first sentence and without today's date so that renders are reproducible), then
``[INST]...[/INST]`` with no generation prompt. ``PixtralProcessor`` needs torchvision.
"""

from __future__ import annotations

from pathlib import Path

from semclip.models.tiny import CLIP_MEAN, CLIP_STD
from semclip.models.tiny_vlms.common import TEXT, VISION, save_tiny, seeded, tiny_tokenizer

#: Longest image side after resizing (real: 1540).
LONGEST_EDGE = 96
#: Vision patch side (real: 14); with the 2 x 2 merge one token covers 16 px, so a 96 x 80 image
#: is 5 rows of 6 tokens (35 with the breaks and the end) and a 48 x 40 one 3 rows of 3 (12).
PATCH_SIZE = 8
SPATIAL_MERGE_SIZE = 2

DEFAULT_SYSTEM_MESSAGE = (
    "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, "
    "a French startup headquartered in Paris."
)

#: The shape of the published Mistral-Small-3.1 template: BOS, one system prompt (the default
#: one when the conversation has none), user turns as ``[INST]...[/INST]`` with content items in
#: their order (an image is ``[IMG]``), assistant turns closed by EOS; no generation prompt.
MISTRAL3_CHAT_TEMPLATE = (
    "{%- set default_system_message = '" + DEFAULT_SYSTEM_MESSAGE + "' %}"
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- if messages[0]['content'] is string %}"
    "{%- set system_message = messages[0]['content'] %}"
    "{%- else %}"
    "{%- set system_message = messages[0]['content'][0]['text'] %}"
    "{%- endif %}"
    "{%- set loop_messages = messages[1:] %}"
    "{%- else %}"
    "{%- set system_message = default_system_message %}"
    "{%- set loop_messages = messages %}"
    "{%- endif %}"
    "{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}"
    "{%- for message in loop_messages %}"
    "{%- if message['role'] == 'user' %}"
    "{%- if message['content'] is string %}"
    "{{- '[INST]' + message['content'] + '[/INST]' }}"
    "{%- else %}"
    "{{- '[INST]' }}"
    "{%- for block in message['content'] %}"
    "{%- if block['type'] == 'text' %}{{- block['text'] }}"
    "{%- elif block['type'] in ['image', 'image_url'] %}{{- '[IMG]' }}"
    "{%- else %}{{- raise_exception('Only text and image blocks are supported!') }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{{- '[/INST]' }}"
    "{%- endif %}"
    "{%- elif message['role'] == 'assistant' %}"
    "{%- if message['content'] is string %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- message['content'][0]['text'] + eos_token }}"
    "{%- endif %}"
    "{%- else %}"
    "{{- raise_exception('Only user and assistant roles after an optional system message!') }}"
    "{%- endif %}"
    "{%- endfor %}"
)


def _processor():
    from transformers import PixtralImageProcessorPil, PixtralProcessor

    special = ["<unk>", "[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"]
    special += ["[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]"]
    tokenizer = tiny_tokenizer(special, bos="<s>", eos="</s>", pad="<pad>")
    image_processor = PixtralImageProcessorPil(
        size={"longest_edge": LONGEST_EDGE},
        patch_size={"height": PATCH_SIZE, "width": PATCH_SIZE},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    return PixtralProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        spatial_merge_size=SPATIAL_MERGE_SIZE,
        chat_template=MISTRAL3_CHAT_TEMPLATE,
    )


def _config(tokenizer):
    from transformers import Mistral3Config, MistralConfig, PixtralVisionConfig

    text = MistralConfig(
        **TEXT,
        vocab_size=len(tokenizer),
        num_key_value_heads=TEXT["num_attention_heads"] // 2,
        head_dim=TEXT["hidden_size"] // TEXT["num_attention_heads"],
        max_position_embeddings=4096,
        sliding_window=None,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = PixtralVisionConfig(**VISION, image_size=LONGEST_EDGE, patch_size=PATCH_SIZE)
    return Mistral3Config(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=SPATIAL_MERGE_SIZE,
        vision_feature_layer=-1,
        multimodal_projector_bias=False,
        tie_word_embeddings=False,
    )


def build_tiny_mistral3(out_dir: str | Path, seed: int = 0) -> Path:
    """Save a tiny random Mistral 3 (``Mistral-Small-3.1-24B-Instruct-2503``) to ``out_dir``.

    Tiny: Mistral LM hidden 64 / 2 layers / 4 heads (2 KV heads), Pixtral hidden 32 / 2 layers on
    images up to 96 px in 8 px patches merged 2 x 2 (real: 1540 px, 14 px patches), a 600-token
    BPE vocabulary. Needs torchvision (``PixtralProcessor``).
    """
    from transformers import Mistral3ForConditionalGeneration

    processor = _processor()
    model = seeded(Mistral3ForConditionalGeneration, _config(processor.tokenizer), seed)
    return save_tiny(model, processor, out_dir, seed)
