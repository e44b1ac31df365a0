"""Every dataset preset end to end: a local copy with the dataset's own column names and value
types is read through its preset, labelled by the tiny random LLaVA and evaluated."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from semclip.data.columns import ColumnMap, split_options
from semclip.data.labels import read_info, read_labels
from semclip.data.presets import PRESETS, SCIENCEQA, resolve_columns
from semclip.data.scienceqa import (
    MissingFieldsError,
    load_qa_dataset,
    open_labelled_source,
    question_id,
    source_records,
)
from semclip.evaluation.stored import EvalConfig, evaluate
from semclip.labeling.config import LabelConfig
from semclip.labeling.run import run_labeling

IMAGE = datasets.Image()
TEXT = datasets.Value("string")


def png(shade: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (shade, 90, 255 - shade)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def write_parquet(path: Path, rows: list[dict], features: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = {name: [r.get(name) for r in rows] for name in features}
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))


def scienceqa(root: Path) -> str:
    features = {"image": IMAGE, "question": TEXT, "choices": datasets.List(TEXT),
                "answer": datasets.Value("int8"), "hint": TEXT, "task": TEXT, "grade": TEXT,
                "subject": TEXT, "topic": TEXT, "lecture": TEXT}  # fmt: skip
    rows = [
        dict(image=png(10), question="Which is a mammal?", choices=["cat", "trout", "frog"],
             answer=0, hint="", subject="natural science", grade="grade2"),
        dict(image=None, question="Which word is a noun?", choices=["run", "tree"], answer=1,
             hint="", subject="language science"),
        dict(image=png(200), question="Which state is north?", choices=["Ohio", "Texas"],
             answer=0, hint="Look at the map.", subject="social science"),
    ]  # fmt: skip
    write_parquet(root / "data" / "train-00000-of-00001.parquet", rows, features)
    return "train"


def mmbench(root: Path) -> str:
    features = {"index": datasets.Value("int64"), "question": TEXT, "hint": TEXT, "answer": TEXT,
                "A": TEXT, "B": TEXT, "C": TEXT, "D": TEXT, "category": TEXT, "image": IMAGE,
                "source": TEXT, "L2-category": TEXT, "comment": TEXT, "split": TEXT}  # fmt: skip
    rows = [
        dict(index=0, question="What is the main colour?", hint="nan", answer="C", A="red",
             B="green", C="blue", D="white", category="attribute", image=png(30)),
        dict(index=1, question="Which is larger?", hint="A picture of two boxes.", answer="B",
             A="left box", B="right box", C="neither", D=None, category="spatial",
             image=png(60)),
        dict(index=2, question="Is it day?", hint=None, answer="A", A="yes", B="no", C=None,
             D=None, category="scene", image=png(90)),
    ]  # fmt: skip
    write_parquet(root / "en" / "dev-00000-of-00001.parquet", rows, features)
    write_parquet(root / "cn" / "dev-00000-of-00001.parquet", rows[:1], features)  # config cn
    return "dev"


def seed_bench(root: Path) -> str:
    features = {"answer": TEXT, "choice_a": TEXT, "choice_b": TEXT, "choice_c": TEXT,
                "choice_d": TEXT, "data_id": TEXT, "data_type": TEXT, "question": TEXT,
                "question_id": TEXT, "question_type_id": datasets.Value("int16"),
                "image": datasets.List(IMAGE),
                "segment": datasets.List(datasets.Value("int64"))}  # fmt: skip
    choices = dict(choice_a="one", choice_b="two", choice_c="three", choice_d="four")
    rows = [
        dict(answer="D", question="How many cups?", data_type="image", question_type_id=5,
             question_id="101", image=[png(20)], **choices),
        dict(answer="A", question="What happens next?", data_type="video", question_type_id=10,
             question_id="v7", image=[png(40), png(50)], **choices),
        dict(answer="B", question="How many dogs?", data_type="image", question_type_id=5,
             question_id="102", image=[png(70)], **choices),
    ]  # fmt: skip
    write_parquet(root / "data" / "test-00000-of-00001.parquet", rows, features)
    return "test"


def mmstar(root: Path) -> str:
    meta = datasets.Features({"source": TEXT, "split": TEXT, "image_path": TEXT})
    features = {"index": datasets.Value("int64"), "question": TEXT, "image": IMAGE,
                "answer": TEXT, "category": TEXT, "l2_category": TEXT,
                "meta_info": meta}  # fmt: skip
    rows = [
        dict(index=0, question="Which shape is red?\nOptions: A: circle, B: square, C: star, "
             "D: triangle", answer="B", category="coarse perception", image=png(100)),
        dict(index=1, question="What is shown?\nOptions: A: a cat, B: a dog", answer="A",
             category="math", image=png(140)),
    ]  # fmt: skip
    write_parquet(root / "mmstar.parquet", rows, features)
    return "val"


def pope(root: Path) -> str:
    features = {"id": TEXT, "question_id": TEXT, "question": TEXT, "answer": TEXT,
                "image_source": TEXT, "image": IMAGE, "category": TEXT}  # fmt: skip
    rows = [
        dict(id="0", question="Is there a dog in the image?", answer="yes", image=png(15),
             category="adversarial"),
        dict(id="1", question="Is there a car in the image?", answer="no", image=png(45),
             category="random"),
    ]  # fmt: skip
    write_parquet(root / "data" / "test-00000-of-00001.parquet", rows, features)
    return "test"


def vstar_bench(root: Path) -> str:
    questions = [
        dict(image="direct_attributes/sa_1.jpg", category="direct_attributes", question_id=0,
             label="A", text="What is the color of the cup?\n(A) red\n(B) blue\n(C) green\n"
             "(D) white\nAnswer with the option's letter from the given choices directly."),
        dict(image="relative_position/sa_2.jpg", category="relative_position", question_id=1,
             label="B", text="Is the cup on the left or right of the dog?\n(A) left\n(B) right"
             "\nAnswer with the option's letter from the given choices directly."),
    ]  # fmt: skip
    for i, q in enumerate(questions):
        image = root / q["image"]
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.open(io.BytesIO(png(60 * i)["bytes"])).convert("RGB").save(image)
        image.with_suffix(".json").write_text('{"target_object": ["cup"]}')  # annotation files
    lines = "\n".join(json.dumps(q) for q in questions)
    (root / "test_questions.jsonl").write_text(lines + "\n")
    return "test"


def a_okvqa(root: Path) -> str:
    features = {"image": IMAGE, "question_id": TEXT, "question": TEXT,
                "choices": datasets.List(TEXT), "correct_choice_idx": datasets.Value("int8"),
                "direct_answers": datasets.List(TEXT),
                "difficult_direct_answer": datasets.Value("bool"),
                "rationales": datasets.List(TEXT)}  # fmt: skip
    rows = [
        dict(image=png(25), question_id="a1", question="What is the man holding?",
             choices=["bat", "racket", "ball", "glove"], correct_choice_idx=1),
        dict(image=png(75), question_id="a2", question="Why is the road wet?",
             choices=["rain", "snow", "sun", "wind"], correct_choice_idx=0),
    ]  # fmt: skip
    write_parquet(root / "data" / "validation-00000-of-00001-aa11.parquet", rows, features)
    test = [dict(rows[0], question_id="t1", correct_choice_idx=None)]
    write_parquet(root / "data" / "test-00000-of-00001-bb22.parquet", test, features)
    return "validation"


BUILDERS = {
    "derek-thomas/ScienceQA": scienceqa,
    "lmms-lab/MMBench": mmbench,
    "lmms-lab/SEED-Bench": seed_bench,
    "Lin-Chen/MMStar": mmstar,
    "lmms-lab/POPE": pope,
    "craigwu/vstar_bench": vstar_bench,
    "HuggingFaceM4/A-OKVQA": a_okvqa,
}

#: Per preset: (choices, answer index, skip reason or None) of every source row, in order.
EXPECTED = {
    "derek-thomas/ScienceQA": [
        (["cat", "trout", "frog"], 0, None),
        (["run", "tree"], 1, "no_image"),
        (["Ohio", "Texas"], 0, None),
    ],
    "lmms-lab/MMBench": [
        (["red", "green", "blue", "white"], 2, None),
        (["left box", "right box", "neither"], 1, None),
        (["yes", "no"], 0, None),
    ],
    "lmms-lab/SEED-Bench": [
        (["one", "two", "three", "four"], 3, None),
        (["one", "two", "three", "four"], 0, "multiple_images"),
        (["one", "two", "three", "four"], 1, None),
    ],
    "Lin-Chen/MMStar": [
        (["circle", "square", "star", "triangle"], 1, None),
        (["a cat", "a dog"], 0, None),
    ],
    "lmms-lab/POPE": [(["Yes", "No"], 0, None), (["Yes", "No"], 1, None)],
    "craigwu/vstar_bench": [
        (["red", "blue", "green", "white"], 0, None),
        (["left", "right"], 1, None),
    ],
    "HuggingFaceM4/A-OKVQA": [
        (["bat", "racket", "ball", "glove"], 1, None),
        (["rain", "snow", "sun", "wind"], 0, None),
    ],
}


def test_every_preset_is_tested():
    assert set(BUILDERS) == set(PRESETS) == set(EXPECTED)


@pytest.mark.parametrize("preset", list(BUILDERS))
def test_preset_reads_labels_and_evaluates(preset, tmp_path, tiny_llava_dir):
    folder = tmp_path / "copy"
    split = BUILDERS[preset](folder)
    ds = load_qa_dataset(str(folder), split, columns=preset)
    assert [(r["choices"], r["answer"]) for r in ds] == [e[:2] for e in EXPECTED[preset]]
    assert all(isinstance(r["question"], str) and isinstance(r["hint"], str) for r in ds)
    out = tmp_path / "labels"
    config = LabelConfig.from_values(
        dataset=str(folder), preset=preset, splits=[split], grid=2, evaluator="hf",
        model=tiny_llava_dir, dtype="float32", output_dir=str(out), accelerator="cpu",
        progress=False,
    )  # fmt: skip
    run_labeling(config)
    recorded = read_labels(out, split).to_pylist()
    assert sorted(r["row"] for r in recorded) == list(range(len(EXPECTED[preset])))
    for r in recorded:
        choices, answer, reason = EXPECTED[preset][r["row"]]
        assert r["skip_reason"] == reason, r["qid"]
        if reason is None:
            assert r["answer"] == answer and len(r["letters"]) == len(choices)
    info = read_info(out)
    assert info.columns == PRESETS[preset].to_dict() and info.dataset == str(folder)
    texts = open_labelled_source(info, split).texts()  # what training and evaluation read
    for r in recorded:
        example = texts[r["row"]]
        assert question_id(split, r["row"], example["question"], example["choices"]) == r["qid"]
    results = evaluate(EvalConfig(labels_dir=str(out), split=split, out_dir=str(tmp_path / "ev")))
    assert results["questions"] == sum(e[2] is None for e in EXPECTED[preset])


def test_a_scorer_is_evaluated_through_the_recorded_mapping(
    tmp_path, tiny_llava_dir, tiny_clip_dir
):
    split = mmbench(tmp_path / "copy")
    out = tmp_path / "labels"
    config = LabelConfig.from_values(
        dataset=str(tmp_path / "copy"), preset="lmms-lab/MMBench", splits=[split], grid=2,
        evaluator="hf", model=tiny_llava_dir, dtype="float32", output_dir=str(out),
        accelerator="cpu", progress=False,
    )  # fmt: skip
    run_labeling(config)
    results = evaluate(
        EvalConfig(labels_dir=str(out), split=split, scorers={"zero-shot": tiny_clip_dir},
                   out_dir=str(tmp_path / "ev"), device="cpu")
    )  # fmt: skip
    assert results["questions"] == 3 and "zero-shot" in results["accuracy"]
    assert set(results["per_subject"]["zero-shot"]) == {"attribute", "spatial", "scene"}


def test_scienceqa_records_are_unchanged(tmp_path):
    """The ScienceQA preset gives the records the fixed schema gave: same ids, same fields."""
    folder = tmp_path / "copy"
    scienceqa(folder)
    raw = datasets.load_dataset("parquet", data_dir=str(folder / "data"), split="train")
    raw = raw.cast_column("image", datasets.Image(decode=False))
    records = source_records(load_qa_dataset(str(folder), "train"), "train")
    for row, (record, example) in enumerate(zip(records, raw, strict=True)):
        choices = [str(c) for c in example["choices"]]
        assert record.qid == question_id("train", row, example["question"], choices)
        assert (record.question, record.choices, record.answer) == (
            example["question"], choices, example["answer"])  # fmt: skip
        assert record.hint == (example["hint"] or "") and record.image == example["image"]
        others = {k: v for k, v in example.items() if k not in SCIENCEQA.required_columns()}
        assert record.meta == others


def test_an_mmbench_config_picks_its_folder(tmp_path):
    mmbench(tmp_path)
    assert len(load_qa_dataset(str(tmp_path), "dev", columns="lmms-lab/MMBench")) == 3
    cn = resolve_columns("config=cn", "lmms-lab/MMBench")
    assert cn.choices == ("A", "B", "C", "D") and cn.config == "cn"
    assert len(load_qa_dataset(str(tmp_path), "dev", columns=cn)) == 1


def test_a_mapping_by_hand_and_its_errors(tmp_path):
    rows = [dict(Q="Pick one", Opt1="x", Opt2="y", Opt3=None, Ans="y", img=png(5))]
    features = {"Q": TEXT, "Opt1": TEXT, "Opt2": TEXT, "Opt3": TEXT, "Ans": TEXT, "img": IMAGE}
    write_parquet(tmp_path / "mine.parquet", rows, features)
    mapping = "image=img,question=Q,choices=Opt1|Opt2|Opt3,answer=Ans,hint=,answer_format=text"
    (row,) = load_qa_dataset(str(tmp_path / "mine.parquet"), "train", columns=mapping)
    assert (row["choices"], row["answer"], row["hint"], row["subject"]) == (["x", "y"], 1, "", None)
    assert row["image"]["bytes"] and row["question"] == "Pick one"
    with pytest.raises(MissingFieldsError) as err:
        load_qa_dataset(str(tmp_path / "mine.parquet"), "train", columns="lmms-lab/MMBench")
    message = str(err.value)
    assert "['image', 'question', 'A', 'B', 'C', 'D', 'answer', 'hint']" in message
    assert "preset lmms-lab/MMBench" in message and "'Opt1'" in message
    assert len(message.splitlines()) == 1


def test_mappings_from_the_command_line(tmp_path, capsys):
    from semclip.label import main

    rows = [dict(Question="Pick", A="x", B="y", Answer="B", image=None)]  # a recorded skip
    features = {"Question": TEXT, "A": TEXT, "B": TEXT, "Answer": TEXT, "image": IMAGE}
    write_parquet(tmp_path / "d" / "train.parquet", rows, features)
    argv = ["--dataset", str(tmp_path / "d"), "--evaluator", "simulated", "--accelerator", "cpu",
            "--output-dir", str(tmp_path / "labels"), "--no-progress"]  # fmt: skip
    columns = "question=Question,choices=A|B,answer=Answer,answer_format=letter,hint="
    assert main([*argv, "--columns", columns]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["source_rows"] == 1
    assert read_info(tmp_path / "labels").columns["choices"] == ["A", "B"]
    assert main([*argv, "--preset", "nobody/nothing"]) == 2
    assert "--preset 'nobody/nothing' is not a known preset" in capsys.readouterr().err
    assert main([*argv, "--columns", "questoin=Question"]) == 2
    assert "--columns: 'questoin=Question'" in capsys.readouterr().err
    assert main([*argv, "--output-dir", str(tmp_path / "l2")]) == 2  # ScienceQA columns: absent
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "lacks the column(s) ['question', 'choices', 'answer', 'hint']" in err[0]
    )


@pytest.mark.parametrize(
    "text,style,stem,options",
    [
        ("Q?\nOptions: A: 1, 2, B: three, C: x", "colon", "Q?", ["1, 2", "three", "x"]),
        ("Q? (A) a (B) b", "parenthesized", "Q?", ["a", "b"]),
        ("Q?\n(A) a\n(B) b\nAnswer with a letter.", "parenthesized", "Q?", ["a", "b"]),
        ("No options here", "colon", "No options here", []),
    ],
)
def test_options_written_in_the_question(text, style, stem, options):
    assert split_options(text, style) == (stem, options)


@pytest.mark.parametrize(
    "raw,fmt,answer",
    [(2, "index", 2), ("2", "auto", 2), ("(C)", "letter", 2), ("c.", "auto", 2),
     ("Blue", "auto", 2), ("blue", "text", 2), (None, "auto", None), ("E", "letter", None),
     (7, "index", None), ("purple", "text", None), (True, "auto", None)],
)  # fmt: skip
def test_answers_as_index_letter_or_text(raw, fmt, answer):
    mapping = ColumnMap(answer_format=fmt, hint=None)
    row = mapping.normalise({"image": None, "question": "q", "choices": ["r", "g", "blue"],
                             "answer": raw})  # fmt: skip
    assert row["answer"] == answer


def test_a_letter_names_its_option_column_when_earlier_ones_are_empty():
    mapping = PRESETS["lmms-lab/MMBench"]
    row = mapping.normalise({"image": None, "question": "q", "hint": "nan", "A": "a", "B": None,
                             "C": "c", "D": float("nan"), "answer": "C"})  # fmt: skip
    assert (row["choices"], row["answer"], row["hint"]) == (["a", "c"], 1, "")
    row = mapping.normalise({**row, "A": "a", "B": None, "C": "c", "D": None, "answer": "B"})
    assert row["answer"] is None  # the right option is empty: recorded as bad_answer


def test_a_mapping_round_trips_through_json():
    for mapping in PRESETS.values():
        assert ColumnMap.from_dict(json.loads(json.dumps(mapping.to_dict()))) == mapping
    assert all(key == mapping.name for key, mapping in PRESETS.items())
