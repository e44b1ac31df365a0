"""The column presets of the datasets this project knows by hub id, and how a ``--preset`` /
``--columns`` value or a label set's recorded mapping resolves to a :class:`ColumnMap`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any

from semclip.data.columns import ColumnMap

SCIENCEQA = ColumnMap(
    name="derek-thomas/ScienceQA",
    answer_format="index",
)
"""ScienceQA: ``image``, ``question``, ``choices`` (list of str), ``answer`` (index), ``hint``,
``subject``; splits train, validation, test (text-only questions have no image).
Card: https://huggingface.co/datasets/derek-thomas/ScienceQA"""

MMBENCH = ColumnMap(
    name="lmms-lab/MMBench",
    config="en",
    choices=("A", "B", "C", "D"),
    answer_format="letter",
    subject="category",
    null_strings=("nan",),
)
"""MMBench (configs ``en``, ``cn``, ``cc``; splits dev and test): options in the string columns
``A``-``D`` (None or ``"nan"`` when a question has fewer), ``answer`` a letter, ``hint``
(None or ``"nan"`` without one), ``category``, ``L2-category``, ``index``, ``source``.
Card: https://huggingface.co/datasets/lmms-lab/MMBench; lmms-eval:
lmms_eval/tasks/mmbench/en_utils.py (hint, question, options A-E skipping NaN) and
_default_template_mmbench_en_yaml (dataset_name en)."""

SEED_BENCH = ColumnMap(
    name="lmms-lab/SEED-Bench",
    choices=("choice_a", "choice_b", "choice_c", "choice_d"),
    answer_format="letter",
    hint=None,
    subject="question_type_id",
)
"""SEED-Bench (split test): ``question``, ``choice_a``-``choice_d``, ``answer`` a letter,
``image`` a list of images (one for an image question, several frames for a video question:
those are skipped as ``multiple_images``), ``data_type``, ``question_type_id``, ``question_id``.
Card: https://huggingface.co/datasets/lmms-lab/SEED-Bench (its feature list could not be read
here: the columns follow lmms-eval lmms_eval/tasks/seedbench/utils.py and the card of
https://huggingface.co/datasets/lmms-lab/SEED-Bench-2 by the same authors)."""

MMSTAR = ColumnMap(
    name="Lin-Chen/MMStar",
    config="val",
    choices=None,
    options_in_question="colon",
    answer_format="letter",
    hint=None,
    subject="category",
    data_files={"val": "mmstar.parquet"},
)
"""MMStar (config and split ``val``; the repository's file is ``mmstar.parquet``): ``index``,
``question`` with the options inside it (``Options: A: ..., B: ...``), ``image``, ``answer`` a
letter, ``category``, ``l2_category``, ``meta_info``.
Card: https://huggingface.co/datasets/Lin-Chen/MMStar; lmms-eval:
lmms_eval/tasks/mmstar/utils.py (the question as it is, the answer a letter)."""

POPE = ColumnMap(
    name="lmms-lab/POPE",
    choices=None,
    answer_format="text",
    hint=None,
    subject="category",
)
"""POPE (split test): ``question`` (yes/no), ``answer`` ``"yes"``/``"no"``, ``image``,
``category`` (adversarial, popular, random), ``question_id``, ``image_source``; choices are
``Yes``/``No``. Card: https://huggingface.co/datasets/lmms-lab/POPE; lmms-eval:
lmms_eval/tasks/pope/pope.yaml (doc_to_target answer)."""

VSTAR_BENCH = ColumnMap(
    name="craigwu/vstar_bench",
    question="text",
    choices=None,
    options_in_question="parenthesized",
    answer="label",
    answer_format="letter",
    hint=None,
    subject="category",
    data_files={"test": "test_questions.jsonl"},
    image_paths=True,
)
"""V* Bench (split test, ``test_questions.jsonl``): ``text`` (question, ``(A) ...`` option lines,
an answer instruction), ``label`` a letter, ``image`` a path such as
``direct_attributes/sa_4690.jpg`` relative to the repository, ``category``, ``question_id``. The
images are files: download the repository and pass its folder. Card:
https://huggingface.co/datasets/craigwu/vstar_bench; lmms-eval (its copy lmms-lab/vstar-bench):
lmms_eval/tasks/vstar_bench/utils.py (options parsed from ``text``, target ``label``)."""

A_OKVQA = ColumnMap(
    name="HuggingFaceM4/A-OKVQA",
    answer="correct_choice_idx",
    answer_format="index",
    hint=None,
    subject=None,
)
"""A-OKVQA (splits train, validation, test; test has no answers: recorded as ``bad_answer``):
``image``, ``question``, ``choices`` (list of str), ``correct_choice_idx`` (index),
``question_id``, ``direct_answers``, ``difficult_direct_answer``, ``rationales``.
Card: https://huggingface.co/datasets/HuggingFaceM4/A-OKVQA (lmms-eval has no A-OKVQA task; the
fields follow the dataset's own schema, https://github.com/allenai/aokvqa)."""

PRESETS: dict[str, ColumnMap] = {
    m.name: m for m in (SCIENCEQA, MMBENCH, SEED_BENCH, MMSTAR, POPE, VSTAR_BENCH, A_OKVQA)
}


def parse_columns(text: str, base: ColumnMap) -> ColumnMap:
    """``field=column`` pairs separated by commas, over ``base``.

    ``choices=A|B|C|D`` names several option columns; an empty value (``hint=``) unsets an
    optional field; ``yes_no`` and ``null_strings`` take ``|``-separated words, ``image_paths``
    true or false. Example:
    ``question=Question,choices=A|B|C|D,answer=Answer,answer_format=letter``.
    """
    known = {f.name for f in fields(ColumnMap)} - {"name", "data_files"}
    changes: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in known:
            raise ValueError(
                f"--columns: {part!r} is not field=column with a field among {sorted(known)}"
            )
        if key in ("yes_no", "null_strings"):
            changes[key] = tuple(v for v in value.split("|") if v)
        elif key == "image_paths":
            changes[key] = value.lower() in ("1", "true", "yes")
        elif key == "choices" and "|" in value:
            changes[key] = tuple(v.strip() for v in value.split("|") if v.strip())
        else:
            changes[key] = value or None
    for required in ("image", "question", "answer", "answer_format"):
        if required in changes and changes[required] is None:
            raise ValueError(f"--columns: {required} cannot be empty")
    return replace(base, name="" if changes else base.name, **changes)


def resolve_columns(
    columns: str | ColumnMap | Mapping[str, Any] | None = None, source: str | None = None
) -> ColumnMap:
    """The mapping named by ``columns``: a preset key (hub id), a :class:`ColumnMap`, a dict of
    its fields (as ``labelset.json`` stores it), ``field=column`` pairs (:func:`parse_columns`,
    over the source's preset), or ``None``: the preset of ``source`` if there is one, else
    the ScienceQA columns."""
    if isinstance(columns, ColumnMap):
        return columns
    base = PRESETS.get(source or "", SCIENCEQA)
    if columns is None:
        return base
    if isinstance(columns, Mapping):
        return ColumnMap.from_dict(columns)
    if columns in PRESETS:
        return PRESETS[columns]
    if "=" in columns:
        return parse_columns(columns, base)
    raise ValueError(
        f"--preset {columns!r} is not a known preset; known: {', '.join(PRESETS)} (or map "
        "columns by hand with --columns field=column,...)"
    )
