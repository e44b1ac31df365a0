"""The lmms-eval plugin on local copies of six lmms-eval tasks, offline, with tiny models.

The tasks ``include`` lmms-eval's own YAMLs (``tests/lmms_tasks.py``), so their prompts, answer
parsing and aggregation (MMBench's CircularEval, POPE's F1, MMStar's per-category mean) are
lmms-eval's; expected values are recomputed here from the predictions and the documents.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("lmms_eval")

sys.path.insert(0, str(Path(__file__).parent))
import lmms_tasks  # noqa: E402

LETTER_TASKS = ["sc_scienceqa_img", "sc_mmbench_en_dev", "sc_mmstar", "sc_seedbench", "sc_gqa"]


@pytest.fixture(scope="module", autouse=True)
def in_tmp(tmp_path_factory):
    """MMBench's aggregation writes submission files under the working directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("cwd"))
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_clip_dir):
    root = tmp_path_factory.mktemp("lmms")
    return SimpleNamespace(
        tasks=lmms_tasks.write_tasks(root / "tasks"),
        letters=lmms_tasks.build_answerer(root / "letters", ["A", "B", "C", "D"]),
        yesno=lmms_tasks.build_answerer(root / "yesno", ["yes", "no"], seed=1),
        export=lmms_tasks.scorer_export(tiny_clip_dir, root / "export", 2, "question_choices"),
        root=root,
    )


def evaluate(world, model, tasks, **kwargs) -> dict:
    from lmms_eval.evaluator import simple_evaluate
    from lmms_eval.tasks import TaskManager

    return simple_evaluate(
        model=model,
        tasks=tasks,
        device="cpu",
        batch_size=1,
        gen_kwargs="max_new_tokens=1",  # tiny LLaVA never stops on its own
        log_samples=True,
        task_manager=TaskManager("ERROR", include_path=str(world.tasks)),
        **kwargs,
    )


def semclip_args(world, model: Path, k: int = 1, extra: str = "") -> str:
    args = f"vlm=llava_hf,pretrained={model},device_map=cpu,scorer={world.export},k={k}"
    return args + extra


def semclip_model(world, model: Path, simple: bool):
    """The plugin built as lmms-eval's CLI builds it. A simple llava_hf renders string
    messages, which the tiny LLaVA's list-of-parts template drops: it is given lmms-eval's own
    Vicuna template (what its ``chat_template=`` argument does)."""
    from lmms_eval.models.chat.llava_hf import VICUNA_CHAT_TEMPLATE

    from semclip.integrations.lmms_eval.model import SemClipChat, SemClipSimple

    cls = SemClipSimple if simple else SemClipChat
    lm = cls.create_from_arg_string(semclip_args(world, model), {"device": "cpu"})
    if simple:
        lm.inner.chat_template = VICUNA_CHAT_TEMPLATE
    return lm


def predictions(out: dict, task: str) -> list[str]:
    return [s["filtered_resps"][0].strip() for s in sorted(out["samples"][task], key=by_id)]


def by_id(sample: dict) -> int:
    return sample["doc_id"]


def records(out: dict, task: str) -> list[dict]:
    found = []
    for sample in sorted(out["samples"][task], key=by_id):
        (record,) = [
            a["semclip"] for a in sample["arguments"] if isinstance(a, dict) and "semclip" in a
        ]
        found.append(record)
    return found


def test_entry_point_registers_semclip():
    from importlib.metadata import entry_points

    from lmms_eval.models import get_model

    assert "semclip" in {ep.name for ep in entry_points(group="lmms_eval.models")}
    assert not get_model("semclip").is_simple
    assert get_model("semclip", force_simple=True).is_simple


@pytest.mark.slow  # ~10 s: the inner model run plainly and through the plugin, two tasks
def test_k0_passes_requests_through(world):
    tasks = ["sc_scienceqa_img", "sc_gqa"]
    plain = evaluate(
        world, "llava_hf", tasks, model_args=f"pretrained={world.letters},device_map=cpu"
    )
    wrapped = evaluate(world, "semclip", tasks, model_args=semclip_args(world, world.letters, k=0))
    for task in tasks:
        assert predictions(wrapped, task) == predictions(plain, task)
        assert (
            wrapped["results"][task]["exact_match,none"]
            == plain["results"][task]["exact_match,none"]
        )


@pytest.mark.parametrize("simple", [False, True], ids=["chat", "simple"])
def test_k1_shows_the_overview_then_the_best_cell(world, simple):
    """The inner model receives [overview, best cell] (pixels), best by the scorer's own text."""
    from PIL import Image

    from semclip.inference.scorers import Query, load_scorer

    lm = semclip_model(world, world.letters, simple)
    assert lm.is_simple == simple
    seen: dict[int, list] = {}
    original = lm.inner.generate_until

    def spy(requests):
        for r in requests:
            *_, doc_id, task, split = r.args
            doc = lm.inner.task_dict[task][split][doc_id]
            if simple:
                seen[doc_id] = r.args[2](doc)
            else:
                content = [c for m in r.args[1](doc) for c in m["content"]]
                seen[doc_id] = [c["url"] for c in content if c["type"] == "image"]
        return original(requests)

    lm.inner.generate_until = spy
    out = evaluate(world, lm, ["sc_scienceqa_img"])

    rows = lmms_tasks._rows("sc_scienceqa_img")
    scorer = load_scorer(str(world.export))
    queries = [Query(r["image"], r["question"], r["hint"], r["choices"]) for r in rows]
    best = scorer.cell_scores(queries, 2).argmax(dim=1).tolist()
    boxes = [(0, 0, 32, 24), (32, 0, 64, 24), (0, 24, 32, 48), (32, 24, 64, 48)]  # 64 x 48 px
    for doc_id, row in enumerate(rows):
        overview, crop = seen[doc_id]
        assert isinstance(crop, Image.Image)
        np.testing.assert_array_equal(np.asarray(overview), np.asarray(row["image"]))
        np.testing.assert_array_equal(
            np.asarray(crop), np.asarray(row["image"].crop(boxes[best[doc_id]]))
        )
    logged = records(out, "sc_scienceqa_img")
    assert [r["cells"] for r in logged] == [[b] for b in best]
    assert [r["boxes"] for r in logged] == [[list(boxes[b])] for b in best]
    assert logged[0]["scorer_text"].endswith("Options: circle, square.")  # question_choices


def circular_accuracy(samples: list[dict]) -> float:
    """MMBench CircularEval: a question counts when every rotation (index % 1e6) is right."""
    groups: dict[int, list[bool]] = {}
    for s in samples:
        item = s["gpt_eval_score"]
        groups.setdefault(item["index"] % 1_000_000, []).append(
            item["prediction"] == item["answer"]
        )
    return 100 * float(np.mean([all(g) for g in groups.values()]))


def test_k1_on_five_tasks_is_scored_by_lmms_eval(world):
    out = evaluate(world, semclip_model(world, world.letters, simple=True), LETTER_TASKS)
    res = out["results"]

    sqa = lmms_tasks._rows("sc_scienceqa_img")
    got = predictions(out, "sc_scienceqa_img")
    expected = np.mean([p == "ABCD"[r["answer"]] for p, r in zip(got, sqa)])
    assert res["sc_scienceqa_img"]["exact_match,none"] == pytest.approx(expected)

    assert all(p in "ABCD" for p in predictions(out, "sc_mmbench_en_dev"))  # no GPT judge
    mmb = sorted(out["samples"]["sc_mmbench_en_dev"], key=by_id)
    assert res["sc_mmbench_en_dev"]["gpt_eval_score,none"] == pytest.approx(circular_accuracy(mmb))

    star = lmms_tasks._rows("sc_mmstar")
    hits: dict[str, list[bool]] = {}
    for p, r in zip(predictions(out, "sc_mmstar"), star):
        hits.setdefault(r["l2_category"], []).append(p == r["answer"])
    expected = np.mean([np.mean(h) for h in hits.values()])  # per l2 category, then mean
    assert res["sc_mmstar"]["average,none"] == pytest.approx(expected)

    seed = lmms_tasks._rows("sc_seedbench")
    expected = np.mean([p == r["answer"] for p, r in zip(predictions(out, "sc_seedbench"), seed)])
    assert res["sc_seedbench"]["seed_all,none"] == pytest.approx(expected)

    gqa = lmms_tasks._rows("sc_gqa")
    expected = np.mean(
        [p.lower() == r["answer"].lower() for p, r in zip(predictions(out, "sc_gqa"), gqa)]
    )
    assert res["sc_gqa"]["exact_match,none"] == pytest.approx(expected)

    for task in LETTER_TASKS:  # every sample says which cell it was shown
        assert all(len(r["cells"]) == 1 and len(r["scores"]) == 4 for r in records(out, task))


def pope_metrics(preds: list[str], truth: list[str]) -> dict[str, float]:
    tp = sum(p == t == "yes" for p, t in zip(preds, truth))
    fp = sum(p == "yes" and t == "no" for p, t in zip(preds, truth))
    fn = sum(p == "no" and t == "yes" for p, t in zip(preds, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = np.mean([p == t for p, t in zip(preds, truth)])
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1_score": f1}


@pytest.fixture(scope="module")
def pope_in_process(world):
    selections = world.root / "selections-in-process"
    args = semclip_args(world, world.yesno, extra=f",selections={selections}")
    return evaluate(world, "semclip", ["sc_pope"], model_args=args), selections


def test_pope_f1_comes_from_lmms_eval(pope_in_process):
    out, selections = pope_in_process
    preds = predictions(out, "sc_pope")
    assert set(preds) <= {"yes", "no"}
    truth = [r["answer"] for r in lmms_tasks._rows("sc_pope")]
    for name, value in pope_metrics(preds, truth).items():
        assert out["results"]["sc_pope"][f"pope_{name},none"] == pytest.approx(value)
    lines = [json.loads(x) for x in (selections / "sc_pope.jsonl").read_text().splitlines()]
    assert sorted(x["doc_id"] for x in lines) == list(range(len(truth)))
    by_doc = {x["doc_id"]: x["cells"] for x in lines}
    assert [by_doc[i] for i in range(len(truth))] == [r["cells"] for r in records(out, "sc_pope")]


@pytest.mark.slow  # ~15 s: a second interpreter imports lmms-eval
def test_cli_writes_the_in_process_numbers(world, pope_in_process, tmp_path):
    """`lmms-eval eval --model semclip` through the entry point; it exits 0 even on errors,
    so the results file is what is checked."""
    out, _ = pope_in_process
    selections = tmp_path / "selections"
    command = [
        str(Path(sys.executable).parent / "lmms-eval"), "eval", "--model", "semclip",
        "--model_args", semclip_args(world, world.yesno, extra=f",selections={selections}"),
        "--device", "cpu", "--batch_size", "1", "--tasks", "sc_pope",
        "--include_path", str(world.tasks), "--gen_kwargs", "max_new_tokens=1",
        "--output_path", str(tmp_path / "out"), "--log_samples",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    files = list((tmp_path / "out").rglob("*_results.json"))
    assert files, done.stdout[-3000:] + done.stderr[-3000:]
    cli = json.loads(files[0].read_text())["results"]["sc_pope"]
    for name in ("accuracy", "precision", "recall", "f1_score", "yes_ratio"):
        key = f"pope_{name},none"
        assert cli[key] == pytest.approx(out["results"]["sc_pope"][key])
    assert len((selections / "sc_pope.jsonl").read_text().splitlines()) == 6


def test_options_name_the_flag_and_warn_on_another_grid(caplog):
    from semclip.integrations.lmms_eval.options import resolve_grid, split_model_args

    options, inner = split_model_args({"vlm": "llava_hf", "pretrained": "x", "k": 0})
    assert (options.k, inner) == (0, {"pretrained": "x"})
    with pytest.raises(ValueError, match="scorer="):
        split_model_args({"vlm": "llava_hf", "k": 1})
    with pytest.raises(ValueError, match="vlm="):
        split_model_args({"pretrained": "x"})
    with caplog.at_level("WARNING"):
        assert resolve_grid(3, 2) == 3
    assert "overrides the 2x2 grid" in caplog.text
    assert resolve_grid(None, 4) == 4 and resolve_grid(None, None) == 2
