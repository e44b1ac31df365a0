"""Training throughput: the same (question, positive, negative) pairs, two ways, side by side.

per triple: one text and two image forwards per pair (the naive way to train a ranking loss);
grouped:    one text and n*n image forwards per question, every pair from its score matrix.

    python benchmarks/bench_training.py                # small random CLIP on CPU
    python benchmarks/bench_training.py --real-shape   # random CLIP ViT-L/14 on a GPU, bf16

Prints pairs/s for each way and the ratio; with --real-shape also samples/s and MFU.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from semclip.data.grid import crop_grid
from semclip.data.images import load_image
from semclip.data.synthetic import SyntheticConfig, build_synthetic
from semclip.models.scorer import RelevanceScorer
from semclip.models.tiny import TinyClipConfig, build_tiny_clip
from semclip.training.losses import MarginRankingLoss

#: CPU stand-ins: "tiny" is the demo's scorer, "small" a CLIP 4x its compute per crop.
CPU_MODELS = {
    "tiny": TinyClipConfig(),
    "small": TinyClipConfig(image_size=64, patch_size=8, hidden_size=128, num_layers=4),
}


def make_scorer(
    real_shape: bool, device: str, dtype: torch.dtype, size: str = "small"
) -> RelevanceScorer:
    folder = tempfile.mkdtemp(prefix="semclip-bench-")
    config = TinyClipConfig(image_size=224, patch_size=14) if real_shape else CPU_MODELS[size]
    build_tiny_clip(folder, config)
    scorer = RelevanceScorer.from_pretrained(folder)
    if real_shape:  # swap in a random CLIP ViT-L/14 of the real shape, same processor
        from transformers import CLIPConfig, CLIPModel

        config = CLIPConfig(
            text_config=dict(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                projection_dim=768,
            ),
            vision_config=dict(
                hidden_size=1024,
                intermediate_size=4096,
                num_hidden_layers=24,
                num_attention_heads=16,
                image_size=224,
                patch_size=14,
                projection_dim=768,
            ),
            projection_dim=768,
        )
        config._attn_implementation = "sdpa"
        with torch.device(device):
            model = CLIPModel(config)
        scorer = RelevanceScorer(model, scorer.processor)
    scorer.model.to(device, dtype).train()
    return scorer


def make_questions(count: int, grid: int, scorer: RelevanceScorer):
    """(tokens, pixels (Q, C, 3, H, W), labels (Q, C)) with one positive cell per question."""
    ds = build_synthetic(SyntheticConfig(num_questions=count, grid=grid, image_size=96 * grid))
    texts, pixels, labels = [], [], []
    for row in ds:
        cells = crop_grid(load_image(row["image"]), grid)
        texts.append(row["question"])
        pixels.append(scorer.pixel_values([c.image for c in cells]))
        labels.append([i in row["relevant_cells"] for i in range(grid * grid)])
    return scorer.tokenize(texts), torch.stack(pixels), torch.tensor(labels)


def count_flops(scorer: RelevanceScorer, tokens, pixels) -> float:
    """Forward FLOPs of one text and one image (2 * params * tokens, the matmul estimate)."""
    text = sum(p.numel() for n, p in scorer.model.named_parameters() if n.startswith("text_"))
    vision = sum(p.numel() for n, p in scorer.model.named_parameters() if n.startswith("vision_"))
    patches = (pixels.shape[-1] // scorer.model.config.vision_config.patch_size) ** 2 + 1
    return 2 * text * tokens["input_ids"].shape[1] + 2 * vision * patches


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--real-shape", action="store_true", help="random CLIP ViT-L/14 (GPU)")
    parser.add_argument("--questions", type=int, default=48, help="questions in the pair set")
    parser.add_argument("--grid", type=int, default=3, help="grid n")
    parser.add_argument("--batch-questions", type=int, default=8, help="questions per step")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="for MFU (H100/H200 bf16)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    scorer = make_scorer(args.real_shape, args.device, dtype)
    tokens, pixels, labels = make_questions(args.questions, args.grid, scorer)
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    pos, neg = labels.sum().item(), (~labels).sum().item()
    triples = [
        (q, p, n)
        for q in range(len(labels))
        for p in labels[q].nonzero().flatten().tolist()
        for n in (~labels[q]).nonzero().flatten().tolist()
    ]
    loss_fn = MarginRankingLoss(margin=1.0)
    optimizer = torch.optim.AdamW(scorer.model.parameters(), lr=1e-6)
    per_step_triples = len(triples) * args.batch_questions // len(labels)

    def step(loss: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def grouped_epoch() -> int:
        images = 0
        for start in range(0, len(labels), args.batch_questions):
            q = slice(start, start + args.batch_questions)
            batch_pixels = pixels[q].flatten(0, 1).to(args.device)
            scores = scorer.grouped_scores(ids[q], mask[q], batch_pixels)  # (B, C)
            step(loss_fn(scores, labels[q].to(args.device))["margin_loss"])
            images += batch_pixels.shape[0]
        return images

    def triple_epoch() -> int:
        images = 0
        for start in range(0, len(triples), per_step_triples):
            chunk = triples[start : start + per_step_triples]
            qs = torch.tensor([t[0] for t in chunk])
            text = scorer.encode_text(ids[qs], mask[qs])  # one text per pair
            pos_img = scorer.encode_images(torch.stack([pixels[q, p] for q, p, _ in chunk]))
            neg_img = scorer.encode_images(torch.stack([pixels[q, n] for q, _, n in chunk]))
            s_pos = scorer.logit_scale * (text * pos_img).sum(-1)
            s_neg = scorer.logit_scale * (text * neg_img).sum(-1)
            step(torch.clamp(loss_fn.margin - (s_pos - s_neg), min=0).mean())
            images += 2 * len(chunk)
        return images

    def timed(fn):
        fn()  # warm-up epoch
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        images = fn()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, images

    shape = "CLIP ViT-L/14 shape" if args.real_shape else "small random CLIP"
    print(
        f"{shape} on {args.device} ({dtype}); {len(labels)} questions, "
        f"grid {args.grid}x{args.grid}: {pos} positive and {neg} negative cells, "
        f"{len(triples)} pairs"
    )
    flops_pair = count_flops(scorer, tokens, pixels)
    rates = {}
    for name, fn, texts in (
        ("per triple", triple_epoch, len(triples)),
        ("grouped", grouped_epoch, len(labels)),
    ):
        seconds, images = timed(fn)
        rates[name] = len(triples) / seconds
        line = f"{name:11s} {rates[name]:9.1f} pairs/s   {images + texts:6d} encodings/epoch"
        if args.real_shape:
            flops = 3 * flops_pair * (images + texts) / 2  # fwd + bwd, text ~ image cost each
            line += f"   {(images + texts) / seconds:8.1f} samples/s"
            line += f"   MFU {flops / seconds / (args.peak_tflops * 1e12):6.1%}"
        print(line)
    print(f"ratio grouped/per-triple = {rates['grouped'] / rates['per triple']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
