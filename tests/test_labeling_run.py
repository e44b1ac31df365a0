"""The labeling job end to end: shards, resume, crashes, skips, job arrays, several processes."""

from collections import Counter

import datasets
import pytest
import yaml

from semclip.data.labels import SCHEMA, read_labels, shard_files
from semclip.data.synthetic import FEATURES, SyntheticConfig, make_example
from semclip.labeling.config import LabelConfig, parse_label_config
from semclip.labeling.run import run_labeling
from semclip.labeling.simulated import SimulatedEvaluator


def config(dataset, out, **kwargs) -> LabelConfig:
    base = dict(
        dataset=dataset,
        splits=["train"],
        grid=2,
        evaluator="simulated",
        output_dir=str(out),
        accelerator="cpu",
        progress=False,
        batch_size=3,
        flush_every=4,
    )
    return LabelConfig.from_values(**{**base, **kwargs})


def qids(out, split="train"):
    return read_labels(out, split).column("qid").to_pylist()


def test_writes_a_datasets_readable_label_set(synthetic_dir, tmp_path):
    summary = run_labeling(config(synthetic_dir, tmp_path, splits=["train", "test"]))
    assert summary["splits"]["train"]["labelled"] == 24
    dd = datasets.load_dataset("parquet", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
    assert set(dd) == {"train", "test"} and len(dd["test"]) == 12
    row = dd["train"][0]
    assert set(row) == set(SCHEMA.names)
    assert len(row["cell_boxes"]) == 4 and len(row["cell_logprobs"][0]) == len(row["letters"])
    assert row["evaluator"] == "semclip/simulated" and row["resume_key"] == summary["resume_key"]


def test_simulated_labels_follow_the_ground_truth(synthetic_dir, tmp_path):
    run_labeling(config(synthetic_dir, tmp_path, min_visible=0.3))
    source = datasets.load_from_disk(synthetic_dir)["train"]
    for row in read_labels(tmp_path, "train").to_pylist():
        truth = source[row["row"]]
        (cell,) = truth["relevant_cells"]
        if not row["base_correct"]:  # overview illegible: only the target cell answers
            assert row["cell_correct"] == [i == cell for i in range(4)]
        else:
            assert all(row["cell_correct"])


def test_rerun_skips_done_and_overwrite_relabels(synthetic_dir, tmp_path):
    cfg = config(synthetic_dir, tmp_path, limit=10)
    assert run_labeling(cfg)["splits"]["train"]["labelled_this_run"] == 10
    files = shard_files(tmp_path, "train")
    cfg.limit = 16
    assert run_labeling(cfg)["splits"]["train"]["labelled_this_run"] == 6
    assert set(files) < set(shard_files(tmp_path, "train"))  # earlier shards kept as they were
    assert sorted(Counter(qids(tmp_path)).values()) == [1] * 16
    cfg.overwrite = True
    assert run_labeling(cfg)["splits"]["train"]["labelled_this_run"] == 16
    assert sorted(Counter(qids(tmp_path)).values()) == [1] * 16


class Crash(BaseException):
    pass


class CrashingEvaluator(SimulatedEvaluator):
    """Dies on its n-th call, like a process killed mid-run."""

    def __init__(self, die_at, **kwargs):
        super().__init__(**kwargs)
        self.calls, self.die_at = 0, die_at

    def score(self, items):
        self.calls += 1
        if self.calls == self.die_at:
            raise Crash("killed")
        return super().score(items)


def test_a_crash_loses_only_unflushed_questions_and_rerun_completes(synthetic_dir, tmp_path):
    cfg = config(synthetic_dir, tmp_path, batch_size=2, flush_every=4)
    with pytest.raises(Crash):
        run_labeling(cfg, evaluator=CrashingEvaluator(die_at=6, grid=2))
    saved = qids(tmp_path)
    assert len(saved) == 8  # 5 batches of 2 scored; flushed in fours: 8 on disk, 2 in flight lost
    # a temp file left by a write cut short is not a shard
    (tmp_path / ".train-x.parquet.123.tmp").write_bytes(b"partial")
    (tmp_path / "train-deadbeef0000-r0-000000.parquet.tmp").write_bytes(b"partial")
    summary = run_labeling(cfg)
    assert summary["splits"]["train"]["labelled_this_run"] == 16
    assert sorted(Counter(qids(tmp_path)).values()) == [1] * 24


def test_bad_rows_are_recorded_skips(tmp_path):
    rows = [make_example(SyntheticConfig(grid=2, image_size=64), i) for i in range(5)]
    rows[0]["image"] = None
    rows[1]["image"] = {"bytes": b"garbage", "path": None}
    rows[2]["choices"] = [f"c{i}" for i in range(27)]
    rows[3]["image"] = {"bytes": rows[3]["image"]["bytes"][:60], "path": None}
    ds = datasets.Dataset.from_dict({k: [r[k] for r in rows] for k in FEATURES}, features=FEATURES)
    ds.save_to_disk(str(tmp_path / "data"))
    summary = run_labeling(config(str(tmp_path / "data"), tmp_path / "labels"))
    train = summary["splits"]["train"]
    assert train["source_rows"] == 5
    assert train["skipped"]["no_image"] == 1  # a text-only row is a recorded skip too
    assert train["labelled"] == 1
    assert train["skipped"]["too_many_choices"] == 1
    assert train["skipped"]["bad_image:undecodable"] >= 1
    bad = {r: c for r, c in train["skipped"].items() if r.startswith("bad_image:")}
    assert sum(bad.values()) == 2  # garbage bytes, and a file cut off after 60 bytes
    # skips are resume records too: a rerun has nothing left to do
    again = run_labeling(config(str(tmp_path / "data"), tmp_path / "labels"))
    assert again["splits"]["train"]["labelled_this_run"] == 0


def test_job_array_shards_are_disjoint_and_complete(synthetic_dir, tmp_path):
    for index in range(3):
        run_labeling(config(synthetic_dir, tmp_path, num_shards=3, shard_index=index))
    ids = qids(tmp_path)
    assert len(ids) == len(set(ids)) == 24
    tags = {f.rsplit("-", 2)[-2] for f in shard_files(tmp_path, "train")}
    assert tags == {"r0s0of3", "r0s1of3", "r0s2of3"}


@pytest.mark.slow
def test_two_processes_label_disjoint_slices_without_padding_duplicates(tmp_path):
    from semclip.data.synthetic import save_synthetic

    save_synthetic(str(tmp_path / "d"), SyntheticConfig(grid=2, image_size=64), {"train": 7})
    cfg = config(str(tmp_path / "d"), tmp_path / "labels", devices="2", strategy="ddp_spawn")
    run_labeling(cfg)
    ids = qids(tmp_path / "labels")
    assert len(ids) == len(set(ids)) == 7  # 7 over 2 ranks: a padding sampler would give 8
    tags = {f.rsplit("-", 2)[-2] for f in shard_files(tmp_path / "labels", "train")}
    assert tags == {"r0", "r1"}


def test_cli_config_file_and_flags(synthetic_dir, tmp_path, capsys):
    from semclip.label import main

    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "dataset": synthetic_dir,
                "evaluator": "simulated",
                "grid": 3,
                "limit": 5,
                "accelerator": "cpu",
            }
        )
    )
    out = tmp_path / "labels"
    assert (
        main(["--config", str(path), "--grid", "2", "--output-dir", str(out), "--no-progress"]) == 0
    )
    printed = capsys.readouterr().out
    assert '"labelled": 5' in printed
    assert read_labels(out, "train").column("grid_n").to_pylist() == [2] * 5
    assert main(["--evaluator", "nope"]) == 2
    assert "--evaluator must be" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown key"):
        bad = tmp_path / "bad.yaml"
        bad.write_text("gird: 2\n")
        parse_label_config(["--config", str(bad)])


def test_hf_evaluator_through_the_job(synthetic_dir, tiny_llava_dir, tmp_path):
    cfg = config(
        synthetic_dir, tmp_path, evaluator="hf", model=tiny_llava_dir, limit=3, dtype="float32"
    )
    summary = run_labeling(cfg)
    assert summary["splits"]["train"]["labelled"] == 3
    table = read_labels(tmp_path, "train")
    assert table.column("dtype").to_pylist() == ["float32"] * 3
    assert table.column("evaluator").to_pylist() == [tiny_llava_dir] * 3
    cfg.limit = 4
    assert run_labeling(cfg)["splits"]["train"]["labelled_this_run"] == 1


def test_devices_as_lightning_takes_them():
    from semclip.labeling.run import _devices

    assert _devices("auto") == "auto" and _devices("2") == 2 and _devices(2) == 2
    assert _devices("0,1") == [0, 1] and _devices([0, 3]) == [0, 3] and _devices("-1") == -1


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--mode", "nope"], "--mode must be 'logprob' or 'generate'"),
        (["--evaluator", "hf", "--model", "./no-such-model"], "no such folder"),
    ],
)
def test_bad_vlm_arguments_are_one_line_before_any_loading(argv, message, capsys):
    from semclip.label import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


CUSTOM_EVALUATOR = '''
from semclip.data.labels import LabelProvenance
from semclip.data.prompts import template_hash
from semclip.labeling.evaluator import ItemScores


class AlwaysA:
    """Answers A for every view: letters only, no log-probs."""

    def __init__(self, config):
        self.provenance = LabelProvenance(
            "my-rule/always-a", "v1", "none", "answer", config.grid,
            template_hash(config.vlm.template),
        )

    def score(self, items):
        return [ItemScores(cell_answers=["A"] * len(i.cells), base_answer="A") for i in items]
'''


def test_a_custom_evaluator_that_answers_without_logprobs(synthetic_dir, tmp_path, monkeypatch):
    (tmp_path / "my_rules.py").write_text(CUSTOM_EVALUATOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = config(synthetic_dir, tmp_path / "labels", evaluator="my_rules:AlwaysA", limit=6)
    assert run_labeling(cfg)["splits"]["train"]["labelled"] == 6
    for row in read_labels(tmp_path / "labels", "train").to_pylist():
        right = row["answer"] == 0
        assert row["cell_pred"] == ["A"] * 4 and row["base_correct"] == right
        assert row["cell_p_correct"] == [float(right)] * 4
        assert row["evaluator"] == "my-rule/always-a"
    with pytest.raises(ValueError, match="--evaluator my_rules:Nope: cannot import it"):
        config(synthetic_dir, tmp_path, evaluator="my_rules:Nope").validate()
