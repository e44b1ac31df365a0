"""Tiny random LLaVA and CLIP checkpoints, built fully offline and deterministically from a seed.

They are saved with ``save_pretrained`` and reload with ``AutoModelForImageTextToText`` /
``CLIPModel`` / ``AutoProcessor.from_pretrained(folder)`` exactly as real checkpoints do, so the
demo and the tests exercise the real loading paths without a hub.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from semclip.data.prompts import LETTERS
from semclip.data.synthetic import COLORS, SHAPES

#: The LLaVA-1.5 chat form: ``USER: <image>\n<image>\n{text} ASSISTANT:`` (images first).
LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}"
    "{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}"
    "{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _corpus() -> list[str]:
    """Text the tiny tokenizers learn merges from: the prompt template and the synthetic words."""
    words = [*SHAPES, *COLORS, *LETTERS, *(f"{c}." for c in LETTERS)]
    lines = [
        "USER: ASSISTANT: Context: What color is the shape?",
        "Answer with the option's letter from the given choices directly.",
        "Which of these states is farthest north? Select the best answer.",
        "the a an of in on is are which what where how many picture image question",
        " ".join(words),
    ]
    lines += [f"What color is the {shape}? {' '.join(COLORS)}" for shape in SHAPES]
    return lines * 4


@dataclass
class TinyLlavaConfig:
    """Shape of the tiny random LLaVA."""

    image_size: int = 32
    """Vision tower input side, in pixels."""
    patch_size: int = 8
    """Vision patch side; (image_size / patch_size)^2 tokens per image."""
    hidden_size: int = 64
    """Language-model width."""
    vision_hidden_size: int = 32
    """Vision-tower width."""
    intermediate_size: int | None = None
    """Language-model MLP width (default 2 x hidden_size)."""
    num_heads: int = 4
    """Attention heads in each tower."""
    num_layers: int = 2
    """Layers in each tower."""
    vocab_size: int = 512
    """BPE vocabulary size (special tokens included)."""
    seed: int = 0
    """Seed for the random weights."""


def _learn_merges(words: Counter[tuple[str, ...]], budget: int) -> list[tuple[str, str]]:
    """Byte-pair merges, most frequent pair first, ties broken by the pair itself.

    A plain deterministic learner: ``tokenizers``' trainer breaks ties in hash order, which made
    the tiny tokenizers (and every token id) differ from one build to the next.
    """
    merges: list[tuple[str, str]] = []
    while len(merges) < budget:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        if pairs[best] < 2:
            break
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return merges


def _vocab(base: list[str], merges: list[tuple[str, str]]) -> dict[str, int]:
    vocab: dict[str, int] = {}
    for token in [*base, *(a + b for a, b in merges)]:
        vocab.setdefault(token, len(vocab))
    return vocab


def _byte_level_bpe(
    vocab_size: int, special: list[str], bos: str = "<s>", extra_corpus: tuple[str, ...] = ()
):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    pre = pre_tokenizers.ByteLevel(add_prefix_space=False)
    words: Counter[tuple[str, ...]] = Counter()
    for line in [*_corpus(), *extra_corpus]:
        for piece, _ in pre.pre_tokenize_str(line):
            words[tuple(piece)] += 1
    base = [*special, *sorted(pre_tokenizers.ByteLevel.alphabet())]
    merges = _learn_merges(words, vocab_size - len(base))
    tok = Tokenizer(models.BPE(vocab=_vocab(base, merges), merges=merges, unk_token=None))
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(special)
    bos_id = tok.token_to_id(bos)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    return tok


def tiny_llava_processor(config: TinyLlavaConfig | None = None):
    """An offline ``LlavaProcessor``: byte-level BPE with ``<image>``, CLIP image processor."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor, PreTrainedTokenizerFast

    config = config or TinyLlavaConfig()
    raw = _byte_level_bpe(config.vocab_size, ["<pad>", "<s>", "</s>", "<image>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA15_CHAT_TEMPLATE,
    )


def tiny_llava_config(config: TinyLlavaConfig, tokenizer):
    """The ``LlavaConfig`` of the tiny model (a CLIP vision tower and a Llama language model)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = CLIPVisionConfig(
        hidden_size=config.vision_hidden_size,
        intermediate_size=config.vision_hidden_size * 2,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size or config.hidden_size * 2,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id,
    )


def make_tiny_llava(config: TinyLlavaConfig | None = None):
    """A tiny random ``LlavaForConditionalGeneration`` and its processor, in memory."""
    from transformers import LlavaForConditionalGeneration

    config = config or TinyLlavaConfig()
    processor = tiny_llava_processor(config)
    torch.manual_seed(config.seed)
    model = LlavaForConditionalGeneration(tiny_llava_config(config, processor.tokenizer)).eval()
    return model, processor


def build_tiny_llava(
    out_dir: str | Path, config: TinyLlavaConfig | None = None, seed: int | None = None
) -> Path:
    """Create, save and return the folder of a tiny random ``LlavaForConditionalGeneration``
    (``seed`` overrides the config's)."""
    out = Path(out_dir)
    config = config or TinyLlavaConfig()
    if seed is not None:
        config = dataclasses.replace(config, seed=seed)
    model, processor = make_tiny_llava(config)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


@dataclass
class TinyClipConfig:
    """Shape of the tiny random CLIP."""

    image_size: int = 32
    """Vision input side, in pixels."""
    patch_size: int = 8
    """Vision patch side."""
    hidden_size: int = 64
    """Width of both towers."""
    projection_dim: int = 64
    """Shared embedding width."""
    num_layers: int = 2
    """Layers in each tower."""
    vocab_size: int = 1024
    """BPE vocabulary size (special tokens included)."""
    seed: int = 0
    """Seed for the random weights."""


def _clip_vocab(vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A CLIP-format BPE (byte-level symbols, ``</w>`` word ends) learned from the corpus."""
    from tokenizers import pre_tokenizers

    pre = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    words: Counter[tuple[str, ...]] = Counter()
    for line in _corpus():
        for piece, _ in pre.pre_tokenize_str(line.lower()):
            words[(*piece[:-1], piece[-1] + "</w>")] += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    # CLIP's tokenizer expects every byte symbol, alone and as a word end.
    base = ["<|startoftext|>", "<|endoftext|>", *alphabet, *(a + "</w>" for a in alphabet)]
    merges = _learn_merges(words, vocab_size - len(base))
    return _vocab(base, merges), merges


def build_tiny_clip(out_dir: str | Path, config: TinyClipConfig | None = None) -> Path:
    """Create, save and return the folder of a tiny random ``CLIPModel`` with its processor."""
    from transformers import (
        CLIPConfig,
        CLIPImageProcessorPil,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPTokenizer,
        CLIPVisionConfig,
    )

    config = config or TinyClipConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab, merges = _clip_vocab(config.vocab_size)
    (out / "vocab.json").write_text(json.dumps(vocab, sort_keys=True), encoding="utf-8")
    merge_lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (out / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(out)
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
        image_mean=CLIP_MEAN,
        image_std=CLIP_STD,
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)
    common = dict(
        hidden_size=config.hidden_size,
        intermediate_size=config.hidden_size * 2,
        num_hidden_layers=config.num_layers,
        num_attention_heads=4,
        projection_dim=config.projection_dim,
    )
    clip_config = CLIPConfig(
        text_config=CLIPTextConfig(
            vocab_size=len(tokenizer),
            max_position_embeddings=77,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **common,
        ).to_dict(),
        vision_config=CLIPVisionConfig(
            image_size=config.image_size, patch_size=config.patch_size, **common
        ).to_dict(),
        projection_dim=config.projection_dim,
    )
    torch.manual_seed(config.seed)
    model = CLIPModel(clip_config).eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
