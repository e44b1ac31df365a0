"""What every tiny VLM builder shares: a deterministic byte-level BPE tokenizer with the family's
named special tokens, tiny text/vision widths, and saving so that ``AutoProcessor`` /
``AutoModelForImageTextToText.from_pretrained(folder)`` reload it as they would a real checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semclip.models.tiny import _byte_level_bpe

#: Language-model and vision-tower sizes shared by the tiny families (kept small for 2 CPU cores).
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def tiny_tokenizer(
    special: list[str],
    named: dict[str, str] | None = None,
    bos: str = "<s>",
    eos: str = "</s>",
    pad: str = "<pad>",
    vocab_size: int = 600,
    corpus: tuple[str, ...] = (),
):
    """A ``PreTrainedTokenizerFast`` over the project's deterministic BPE.

    ``special`` lists every special token in id order after ``pad, bos, eos`` (image tokens, chat
    delimiters ...); ``named`` maps attribute names the family's processor reads (``image_token``,
    ``boi_token`` ...) to those tokens. It prepends ``bos`` to every encoding, as the published
    tokenizers of these families do, so a chat template that also writes it shows the double-BOS
    trap exactly as the real checkpoints do. ``corpus`` adds lines to learn merges from (e.g.
    runs of newlines that a family's tokenizer keeps as one token).
    """
    from transformers import PreTrainedTokenizerFast

    tokens = [pad, bos, eos, *[t for t in special if t not in (pad, bos, eos)]]
    raw = _byte_level_bpe(vocab_size, tokens, bos=bos, extra_corpus=corpus)
    return PreTrainedTokenizerFast(
        tokenizer_object=raw,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        extra_special_tokens=named or {},
        padding_side="right",
    )


def save_tiny(model, processor, out_dir: str | Path, seed: int = 0) -> Path:
    """Save ``model`` and ``processor`` to ``out_dir`` (safetensors) and return the folder."""
    del seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(out)
    processor.save_pretrained(out)
    return out


def seeded(model_cls, config, seed: int):
    """``model_cls(config)`` with weights drawn from ``seed`` (same seed, same bytes)."""
    torch.manual_seed(seed)
    return model_cls(config).eval()
