"""Test data for the lmms-eval plugin: tiny answering models and local copies of six tasks.

Each task is a YAML that ``include``s lmms-eval's own task and reads a parquet written here with
that task's real columns and value types, so its own prompts, parsing and aggregation run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

#: The local tasks: name -> (built-in YAML under lmms_eval/tasks, split, dataset_name override).
TASKS = {
    "sc_scienceqa_img": ("scienceqa/scienceqa_img.yaml", "test", True),
    "sc_pope": ("pope/pope.yaml", "test", False),
    "sc_mmbench_en_dev": ("mmbench/mmbench_en_dev.yaml", "dev", True),
    "sc_mmstar": ("mmstar/mmstar.yaml", "val", False),
    "sc_seedbench": ("seedbench/seedbench.yaml", "test", False),
    "sc_gqa": ("gqa/gqa.yaml", "testdev", True),
}

GQA_PROCESS_DOCS = '''"""GQA's images joined from a local parquet (the stock one reads the hub)."""

from pathlib import Path

from datasets import load_dataset


def process_docs(dataset):
    images = load_dataset(
        "parquet", data_files=str(Path(__file__).parent / "gqa_images.parquet"), split="train"
    )
    by_id = {row["id"]: row["image"] for row in images}
    return dataset.map(lambda doc: {"image": by_id[doc["imageId"]]})
'''


def picture(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A picture whose four quadrants differ, so each grid cell has its own pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def build_answerer(out_dir: Path, words: list[str], seed: int = 0) -> Path:
    """A tiny random LLaVA that can only generate ``words`` (one token each): its saved
    ``generation_config`` suppresses every other token, so lmms-eval's parsers always see an
    answer (MMBench's GPT judge is never asked) while the choice still depends on the pixels."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from semclip.models.tiny import build_tiny_llava

    folder = build_tiny_llava(out_dir, seed=seed)
    processor = AutoProcessor.from_pretrained(folder)
    tokenizer = processor.tokenizer
    new = [w for w in words if len(tokenizer.encode(w, add_special_tokens=False)) != 1]
    tokenizer.add_tokens(new)
    model = AutoModelForImageTextToText.from_pretrained(folder)
    torch.manual_seed(seed)
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    allowed = {tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
    model.generation_config.suppress_tokens = [i for i in range(len(tokenizer)) if i not in allowed]
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def scorer_export(clip_dir: str, out_dir: Path, grid: int, text_mode: str) -> Path:
    """A stock tiny CLIP made into an "export": its settings file names a grid and text mode."""
    shutil.copytree(clip_dir, out_dir)
    settings = {"text_mode": text_mode, "grid": grid}
    (out_dir / "semclip_scorer.json").write_text(json.dumps(settings), encoding="utf-8")
    return out_dir


def _rows(task: str) -> list[dict]:
    letters = "ABCD"
    if task == "sc_scienceqa_img":
        return [
            {
                "image": picture(i),
                "question": f"Which shape is in square {i}?",
                "choices": ["circle", "square", "star", "moon"][: 2 + i % 3],
                "answer": i % 2,
                "hint": "" if i % 2 else f"The board has {i + 2} shapes.",
                "task": "closed choice",
                "grade": "grade4",
                "subject": "natural science",
                "topic": "shapes",
                "category": "Shapes",
                "skill": "Identify shapes",
                "lecture": "",
                "solution": "",
            }
            for i in range(4)
        ]
    if task == "sc_pope":
        things = ["dog", "cat", "car", "tree", "cup", "bird"]
        return [
            {
                "question_id": str(i + 1),
                "question": f"Is there a {thing} in the image?",
                "answer": "yes" if i % 2 == 0 else "no",
                "image_source": f"COCO_val2014_{i:012d}",
                "image": picture(10 + i),
                "category": "adversarial",
            }
            for i, thing in enumerate(things)
        ]
    if task == "sc_mmbench_en_dev":
        rows = []
        for q, options in enumerate(
            [["red", "blue", "green", "gray"], ["one", "two", "six", "ten"]]
        ):
            for turn in range(4):  # CircularEval: the options rotated, index + turn * 1e6
                rotated = options[turn:] + options[:turn]
                rows.append(
                    {
                        "index": q + turn * 1_000_000,
                        "question": f"What is in corner {q}?",
                        "hint": "nan" if q else "Look at the corners.",
                        **dict(zip(letters, rotated)),
                        "answer": letters[rotated.index(options[0])],
                        "category": "object_localization",
                        "image": picture(20 + q),
                        "source": "synthetic",
                        "L2-category": "finegrained_perception (instance-level)",
                        "comment": "nan",
                        "split": "dev",
                    }
                )
        return rows
    if task == "sc_mmstar":
        categories = [
            ("coarse perception", "image scene and topic"),
            ("fine-grained perception", "object counting"),
            ("fine-grained perception", "localization"),
            ("math", "geometry"),
        ]
        return [
            {
                "index": i,
                "question": f"How many dots are in part {i}?\nOptions: A: 1, B: 2, C: 3, D: 4",
                "image": picture(30 + i),
                "answer": letters[i % 4],
                "category": category,
                "l2_category": l2,
                "meta_info": json.dumps({"source": "synthetic"}),
            }
            for i, (category, l2) in enumerate(categories)
        ]
    if task == "sc_seedbench":
        return [
            {
                "answer": letters[(i + 1) % 4],
                "choice_a": "a hat",
                "choice_b": "a shoe",
                "choice_c": "a ball",
                "choice_d": "a kite",
                "data_id": f"{i:05d}.jpg",
                "data_type": "image",
                "question": f"What is in picture {i}?",
                "question_id": str(100 + i),
                "question_type_id": 1 + i % 9,
                "image": [picture(40 + i)],
                "segment": None,
            }
            for i in range(4)
        ]
    if task == "sc_gqa":
        return [
            {
                "id": f"2018{i}",
                "imageId": f"n{i}",
                "question": f"Which letter is on sign {i}?",
                "answer": letters[i % 4],
                "fullAnswer": f"The letter is {letters[i % 4]}.",
                "isBalanced": True,
            }
            for i in range(4)
        ]
    raise KeyError(task)


def _features(task: str):
    from datasets import Features, Image, List, Value

    rows = _rows(task)
    kinds = {}
    for key, value in rows[0].items():
        if key == "image":
            kinds[key] = List(Image()) if isinstance(value, list) else Image()
        elif isinstance(value, bool):
            kinds[key] = Value("bool")
        elif isinstance(value, int):
            kinds[key] = Value("int64")
        elif isinstance(value, list):
            kinds[key] = List(Value("string"))
        else:
            kinds[key] = Value("string")
    return rows, Features(kinds)


def _write_parquet(rows: list[dict], features, path: Path) -> None:
    from datasets import Dataset

    columns = {k: [row[k] for row in rows] for k in features}
    Dataset.from_dict(columns, features=features).to_parquet(str(path))


def write_tasks(root: Path) -> Path:
    """Write the six local tasks (parquets, YAMLs, GQA's image join) under ``root``."""
    import lmms_eval
    from datasets import Features, Image, Value

    builtin = Path(lmms_eval.__file__).parent / "tasks"
    root.mkdir(parents=True, exist_ok=True)
    for task, (yaml, split, unset_name) in TASKS.items():
        rows, features = _features(task)
        _write_parquet(rows, features, root / f"{task}.parquet")
        lines = [
            f"include: {builtin / yaml}",
            f"task: {task}",
            "dataset_path: parquet",
            *(["dataset_name: null"] if unset_name else []),
            "dataset_kwargs:",
            "  data_files:",
            f"    {split}: {task}.parquet",
        ]
        if task == "sc_gqa":
            lines.append("process_docs: !function gqa_local.process_docs")
        (root / f"{task}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    images = [{"id": f"n{i}", "image": picture(50 + i)} for i in range(4)]
    _write_parquet(
        images, Features({"id": Value("string"), "image": Image()}), root / "gqa_images.parquet"
    )
    (root / "gqa_local.py").write_text(GQA_PROCESS_DOCS, encoding="utf-8")
    return root
