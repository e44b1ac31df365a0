"""semclip-answer and semclip-evaluate --vlm as a user meets them, on the tiny LLaVA."""

from __future__ import annotations

from pathlib import Path

import pytest

from semclip.answer import main as answer_main
from semclip.data.images import load_image
from semclip.data.scienceqa import load_qa_dataset
from semclip.evaluate import main as evaluate_main


@pytest.fixture(scope="module")
def example(synthetic_dir, tmp_path_factory) -> dict:
    row = load_qa_dataset(synthetic_dir, "test")[0]
    path = tmp_path_factory.mktemp("image") / "example.png"
    load_image(row["image"]).save(path)
    return {"image": str(path), "question": row["question"], "choices": row["choices"]}


def _error(capsys, main, argv: list[str]) -> str:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "error:" in err and "Traceback" not in err, err
    return err


def test_answer_prints_one_line_and_saves_the_picture(
    tiny_llava_dir, tiny_clip_dir, example, tmp_path, capsys
):
    out = tmp_path / "pick.png"
    argv = ["--vlm", tiny_llava_dir, "--scorer", tiny_clip_dir, "--image", example["image"],
            "--question", example["question"], "--choices", *example["choices"],
            "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert answer_main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2, lines
    letter = lines[0][0]
    assert letter in "ABCD" and lines[0][1:3] == ". "
    assert example["choices"]["ABCD".index(letter)] in lines[0]
    assert "crop #" in lines[0] and "of the 2x2 grid" in lines[0]
    assert load_image(out).size[0] > 100
    # the plain VLM: no scorer, no crop, no picture
    plain = tmp_path / "none.png"
    assert answer_main([*argv[:2], *argv[4:-2], "--k", "0", "--out", str(plain)]) == 0
    assert "the whole image only" in capsys.readouterr().out and not plain.exists()


def test_answer_mistakes_are_one_line(tiny_llava_dir, example, capsys):
    base = ["--vlm", tiny_llava_dir, "--question", "q?", "--choices", "a", "b"]
    assert "no such file" in _error(capsys, answer_main, [*base, "--image", "nope.png"])
    assert "needs --scorer" in _error(capsys, answer_main, [*base, "--image", example["image"]])
    err = _error(capsys, answer_main, ["--vlm", "./nowhere", "--image", example["image"],
                                       "--question", "q", "--choices", "a"])  # fmt: skip
    assert "--vlm ./nowhere: no such folder" in err
    assert "--grid must be in 1..8" in _error(
        capsys, answer_main, [*base, "--image", example["image"], "--k", "0", "--grid", "9"]
    )


def test_answer_help_is_light(heavy_imports_for_help):
    assert heavy_imports_for_help("semclip.answer") == []


def test_evaluate_with_the_vlm_in_the_loop(tiny_llava_dir, tiny_clip_dir, synthetic_dir, tmp_path,
                                          capsys):  # fmt: skip
    out = tmp_path / "eval"
    argv = ["--vlm", tiny_llava_dir, "--dataset", synthetic_dir, "--split", "test",
            "--scorer", f"zs={tiny_clip_dir}", "--scorer", "psi=vlm-psi", "--limit", "3",
            "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    assert evaluate_main(argv) == 0
    printed = capsys.readouterr().out
    for row in ("plain VLM (k=0)", "oracle (k=1)", "zs (k=1)", "psi (k=2)", "random (k=2)"):
        assert f"| {row} |" in printed
    assert {p.name for p in Path(out).iterdir()} == {"results.json", "table.md", "accuracy.png"}


def test_evaluate_vlm_mistakes_are_one_line(tiny_llava_dir, tiny_clip_dir, capsys):
    assert "--labels-dir" in _error(capsys, evaluate_main, [])
    assert "needs --dataset" in _error(capsys, evaluate_main, ["--vlm", tiny_llava_dir])
    assert "add --vlm" in _error(
        capsys, evaluate_main, ["--labels-dir", ".", "--scorer", "psi=vlm-psi"]
    )
    err = _error(capsys, evaluate_main, ["--vlm", tiny_llava_dir, "--dataset", "x/y", "--k", "5"])
    assert "2x2 grid has 1..4" in err


def test_evaluate_with_the_vlm_on_a_preset_copy(tiny_llava_dir, synthetic_dir, tmp_path, capsys):
    """A POPE-shaped local copy (yes/no answers, no choices column) through --preset."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    source = load_qa_dataset(synthetic_dir, "test")

    def png(i: int) -> dict:
        buffer = io.BytesIO()
        load_image(source[i]["image"]).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    rows = [
        {"id": str(i), "question_id": str(i), "question": f"Is there a star? ({i})",
         "answer": ["yes", "no"][i % 2], "image_source": "x", "image": png(i),
         "category": ["adversarial", "random"][i % 2]}
        for i in range(3)
    ]  # fmt: skip
    (tmp_path / "pope" / "data").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "pope/data/test-00000-of-00001.parquet")
    out = tmp_path / "eval"
    argv = ["--vlm", tiny_llava_dir, "--dataset", str(tmp_path / "pope"), "--preset",
            "lmms-lab/POPE", "--scorer", "rnd=random", "--k", "1", "--device", "cpu",
            "--out-dir", str(out)]  # fmt: skip
    assert evaluate_main(argv) == 0
    printed = capsys.readouterr().out
    assert "3 questions of split `test`" in printed and "| rnd (k=1) |" in printed
    assert "adversarial (%)" in printed  # per category


def test_evaluate_with_the_vlm_shows_it_what_labeling_showed(
    tiny_llava_dir, synthetic_dir, tmp_path, capsys
):
    """--labels-dir gives the VLM-in-the-loop run the label set's VLM settings."""
    import json

    from semclip.labeling.config import LabelConfig
    from semclip.labeling.run import run_labeling

    labels = tmp_path / "labels"
    config = LabelConfig.from_values(
        dataset=synthetic_dir, splits=["test"], model=tiny_llava_dir, limit=2, system_prompt="",
        image_backend="pil", alpha="white", output_dir=str(labels), accelerator="cpu",
        progress=False,
    )  # fmt: skip
    run_labeling(config)
    out = tmp_path / "eval"
    argv = ["--vlm", tiny_llava_dir, "--labels-dir", str(labels), "--split", "test", "--k", "1",
            "--limit", "2", "--device", "cpu", "--out-dir", str(out)]  # fmt: skip
    assert evaluate_main(argv) == 0
    capsys.readouterr()
    settings = json.loads((out / "results.json").read_text())["vlm_config"]
    assert settings["system_prompt"] == "" and settings["image_backend"] == "pil"
    assert settings["alpha"] == "white"
    # a flag that contradicts the label set needs --force, then it wins
    assert evaluate_main([*argv, "--alpha", "drop"]) == 2
    assert "--alpha 'drop' (label set: 'white')" in capsys.readouterr().err
    assert evaluate_main([*argv, "--alpha", "drop", "--force"]) == 0
    capsys.readouterr()
    assert json.loads((out / "results.json").read_text())["vlm_config"]["alpha"] == "drop"


def test_answer_mistakes_before_any_model_loads(tiny_llava_dir, example, tmp_path, capsys):
    base = ["--vlm", tiny_llava_dir, "--image", example["image"], "--question", "q",
            "--choices", "a", "b", "--scorer", "random"]  # fmt: skip
    assert "no CUDA device" in _error(capsys, answer_main, [*base, "--device", "cuda"]) or (
        __import__("torch").cuda.is_available()
    )
    assert "grid has 1..4 cells" in _error(capsys, answer_main, [*base, "--grid", "2", "--k", "5"])
    (tmp_path / "ro").mkdir(mode=0o500)
    if not __import__("os").access(tmp_path / "ro", __import__("os").W_OK):  # not as root
        err = _error(capsys, answer_main, [*base, "--out", str(tmp_path / "ro" / "x.png")])
        assert "cannot write there" in err
    assert "--alpha" in _error(capsys, answer_main, [*base, "--alpha", "black"])


def test_stored_evaluation_of_another_copy_is_one_line(small_labels, tmp_path, capsys,
                                                       tiny_clip_dir):  # fmt: skip
    from semclip.data.synthetic import SyntheticConfig, save_synthetic

    other = tmp_path / "short"
    save_synthetic(str(other), SyntheticConfig(grid=2, image_size=96), {"test": 2})
    argv = ["--labels-dir", small_labels, "--split", "test", "--scorer", f"zs={tiny_clip_dir}",
            "--dataset", str(other), "--device", "cpu",
            "--out-dir", str(tmp_path / "e")]  # fmt: skip
    capsys.readouterr()
    err = _error(capsys, evaluate_main, argv)
    assert "another copy" in err


def test_help_examples_name_what_the_demo_writes():
    """`semclip-answer --help`'s demo example points at the VLM and scorer `python demo.py`
    writes; `semclip-evaluate --help` names both ways of evaluating."""
    from semclip.answer import build_parser as answer_parser
    from semclip.demo_vlm import REPORT  # noqa: F401  (the demo's VLM module)
    from semclip.evaluate import build_parser as evaluate_parser

    demo = (Path(__file__).resolve().parents[1] / "demo.py").read_text(encoding="utf-8")
    text = answer_parser().format_help()
    assert "demo_out/answering-llava" in text and '"answering-llava"' in demo
    assert "demo_out/tiny-llava" not in text
    described = " ".join(evaluate_parser().format_help().split())
    assert "no VLM re-run" not in described and "--vlm MODEL" in described


def test_k_beyond_the_scorers_grid_is_refused_before_any_model_loads(
    tiny_clip_dir, example, tmp_path, capsys, monkeypatch
):
    """Without --grid the scorer's saved grid decides, read from its settings file at once."""
    import json
    import shutil

    import semclip.inference.semclip as inference

    scorer = tmp_path / "scorer"
    shutil.copytree(tiny_clip_dir, scorer)
    (scorer / "semclip_scorer.json").write_text(json.dumps({"text_mode": "question", "grid": 2}))
    loaded = []
    monkeypatch.setattr(inference.SemClip, "from_config", lambda *a, **k: loaded.append(a))
    argv = ["--vlm", str(tmp_path), "--image", example["image"], "--question", "q",
            "--choices", "a", "b", "--scorer", str(scorer), "--k", "9"]  # fmt: skip
    assert "grid has 1..4 cells" in _error(capsys, answer_main, argv) and not loaded
