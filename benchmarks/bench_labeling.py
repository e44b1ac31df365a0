"""Labeling throughput, three ways on the same model and questions, measured side by side.

(a) per-pair ``generate()`` at batch 1, as lmms-eval runs a benchmark;
(b) one-forward letter scoring, no prefix sharing;
(c) one-forward letter scoring with prefix sharing and batching (semclip's default).

    python benchmarks/bench_labeling.py                 # CPU, random LLaVA of real token geometry
    python benchmarks/bench_labeling.py --family qwen2_5_vl --grid 3   # any labeling family
    python benchmarks/bench_labeling.py --real-shape    # GPU, random LLaVA-1.5-7B shape, bf16

The default model has the real token geometry (336 px, patch 14: 576 tokens an image; a ~100-token
prompt) and 2 layers, with a language model wide enough (hidden 1024) that its linear layers
dominate as they do in the 7B model. ``--family F`` takes that family's tiny model
(``semclip.models.tiny_vlms``) with its language model widened the same way (hidden 1024, head
dim 128); for the Qwen-VLs the image processor gets the published pixel limits, so a 672 px image
is 576 tokens as in the real model. The vision towers stay tiny: the ratio is the language model's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from semclip.data.scienceqa import records_with_images
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.labeling.evaluator import prepare_item
from semclip.labeling.hf_evaluator import HFEvaluator
from semclip.models.tiny import TinyLlavaConfig, make_tiny_llava, tiny_llava_processor
from semclip.vlm.config import VLMConfig

HINT = "The picture shows a grid of coloured shapes. Look at the shape the question names."


def build_model(real_shape: bool, device: str, dtype: torch.dtype):
    geometry = TinyLlavaConfig(image_size=336, patch_size=14, vision_hidden_size=256)
    if not real_shape:
        config = TinyLlavaConfig(
            image_size=336,
            patch_size=14,
            hidden_size=1024,
            intermediate_size=2752,
            vision_hidden_size=256,
            num_heads=8,
            num_layers=2,
        )
        model, processor = make_tiny_llava(config)
        return model.to(device, dtype), processor
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    processor = tiny_llava_processor(geometry)
    tok = processor.tokenizer
    config = LlavaConfig(  # llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14-336 + Vicuna-7B
        vision_config=CLIPVisionConfig(
            hidden_size=1024,
            intermediate_size=4096,
            num_hidden_layers=24,
            num_attention_heads=16,
            image_size=336,
            patch_size=14,
            projection_dim=768,
        ),
        text_config=LlamaConfig(
            vocab_size=32064,
            hidden_size=4096,
            intermediate_size=11008,
            num_hidden_layers=32,
            num_attention_heads=32,
            num_key_value_heads=32,
            max_position_embeddings=4096,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tok.pad_token_id,
    )
    config._attn_implementation = "sdpa"
    with torch.device(device):
        model = LlavaForConditionalGeneration(config).to(dtype)
    return model.eval(), processor


def build_family(family: str, device: str, dtype: torch.dtype):
    """``family``'s tiny model with its language model widened to hidden 1024 (see above)."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from semclip.vlm.families import build_tiny_vlm

    folder = build_tiny_vlm(family, tempfile.mkdtemp(prefix=f"bench-{family}-"))
    processor = AutoProcessor.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    text = config.get_text_config()
    old_head = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    text.hidden_size, text.intermediate_size = 1024, 2752
    text.num_attention_heads = text.num_key_value_heads = 8
    text.head_dim = 128
    rope = getattr(text, "rope_parameters", None) or {}
    if "mrope_section" in rope:  # M-RoPE sections sum to head_dim / 2
        rope["mrope_section"] = [s * 128 // old_head for s in rope["mrope_section"]]
    vision = getattr(config, "vision_config", None)  # mergers that map into the LM's width
    if vision is not None and hasattr(vision, "out_hidden_size"):  # Qwen2.5-VL, Qwen3-VL
        vision.out_hidden_size = 1024
    elif vision is not None and hasattr(vision, "embed_dim"):  # Qwen2-VL: hidden_size is the output
        vision.hidden_size = 1024
    if family.startswith("qwen"):  # the published min_pixels / max_pixels
        processor.image_processor.size = {"shortest_edge": 3136, "longest_edge": 12845056}
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_config(config, attn_implementation="sdpa")
    return model.to(device, dtype).eval(), processor


class TokenCounter:
    """Counts the tokens the language model processes (batch x length of every forward)."""

    def __init__(self, language_model: torch.nn.Module) -> None:
        self.total = 0
        language_model.register_forward_pre_hook(self._hook, with_kwargs=True)

    def _hook(self, module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        if embeds is not None:
            self.total += embeds.shape[0] * embeds.shape[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real-shape", action="store_true", help="LLaVA-1.5-7B shape (GPU)")
    parser.add_argument(
        "--family", default="llava", help="VLM family (model_type) of the random model"
    )
    parser.add_argument("--questions", type=int, default=3, help="questions per way")
    parser.add_argument("--grid", type=int, default=2, help="grid n")
    parser.add_argument(
        "--batch-questions",
        type=int,
        default=3,
        help="questions per call in (c), the prefix-shared way (default: 3)",
    )
    parser.add_argument(
        "--max-rows",
        type=int,
        help="rows per forward in (b) and (c), the one-forward ways (default: 5 on CPU, 64 on GPU)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=2,
        help="tokens (a), the generate() way, may write: a letter and EOS (default: 2)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed runs; the median counts")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    # CPU allocators page-fault on very large activations: moderate batches are fastest there.
    args.max_rows = args.max_rows or (64 if args.device.startswith("cuda") else 5)

    torch.manual_seed(0)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    if args.family == "llava":
        model, processor = build_model(args.real_shape, args.device, dtype)
    elif args.real_shape:
        parser.error("--real-shape is LLaVA-1.5-7B: use it with --family llava")
    else:
        model, processor = build_family(args.family, args.device, dtype)
    inner = model.model
    counter = TokenCounter(getattr(inner, "language_model", None) or inner.text_model)
    ds = build_synthetic(SyntheticConfig(num_questions=args.questions, grid=2, image_size=672))
    records, _ = records_with_images(ds, "bench")
    for record in records:
        record.hint = HINT
    items = [prepare_item(r, args.grid) for r in records]

    def evaluator(**kwargs) -> HFEvaluator:
        config = VLMConfig(
            model="bench", device=args.device, dtype=str(dtype).removeprefix("torch."), **kwargs
        )
        return HFEvaluator(config, args.grid, model=model, processor=processor)

    prompt_tokens = len(processor.tokenizer(items[0].prompt)["input_ids"])
    name = "LLaVA-1.5-7B shape" if args.real_shape else f"{args.family}, 2 layers, hidden 1024"
    probe = evaluator()
    overview = probe.vlm.process([probe.vlm.render("x", 1)], [[items[0].overview]])["input_ids"]
    print(
        f"model: {name} on {args.device} ({dtype}); {args.questions} questions, "
        f"grid {args.grid}x{args.grid}, prompt {prompt_tokens} tokens, overview row "
        f"{overview.shape[1]} tokens; median of {args.repeats} runs"
    )
    ways = {
        "a": (
            "per-pair generate(), batch 1",
            evaluator(mode="generate", max_new_tokens=args.max_new_tokens),
            1,
        ),
        "b": (
            "one forward, no prefix sharing",
            evaluator(prefix_sharing=False, max_rows=args.max_rows),
            args.batch_questions,
        ),
        "c": (
            "one forward, prefix sharing + batching",
            evaluator(prefix_sharing=True, max_rows=args.max_rows),
            args.batch_questions,
        ),
    }
    evaluator(prefix_sharing=True).score(items[:1])  # warm-up
    rates = {}
    # the three ways take turns, run after run, so that drift on the machine hits them alike
    seconds: dict[str, list[float]] = {key: [] for key in ways}
    tokens: dict[str, int] = {}
    for _ in range(args.repeats):
        for key, (_, ev, per_call) in ways.items():
            counter.total = 0
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(0, len(items), per_call):
                ev.score(items[i : i + per_call])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[key].append(time.perf_counter() - start)
            tokens[key] = counter.total
    for key, (name, _, _) in ways.items():
        rates[key] = len(items) / statistics.median(seconds[key])
        print(
            f"({key}) {name:42s} {rates[key]:8.3f} questions/s   "
            f"{tokens[key] / len(items):8.0f} LM tokens/question"
        )
    print(
        f"ratio c/a = {rates['c'] / rates['a']:.2f}x   ratio c/b = {rates['c'] / rates['b']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
