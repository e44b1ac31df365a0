"""The text a scorer reads for an lmms-eval document: question, hint and choices by column.

Columns, not task names, decide, so a local copy of a task (another name, same columns) reads
the same text. The scorer then keeps only what it was trained on (its saved ``text_mode``,
:func:`semclip.models.scorer.scorer_text`):

==============  ===================  ========  =========================================
task            question             hint      choices
==============  ===================  ========  =========================================
scienceqa_img   ``question``         ``hint``  ``choices``
pope            ``question``         --        --
mmbench_*       ``question``         ``hint``  ``A`` .. ``E`` (``nan`` and empty dropped)
mmstar          ``question``         --        -- (the options are inside ``question``)
seedbench       ``question``         --        ``choice_a`` .. ``choice_d``
gqa             ``question``         --        --
==============  ===================  ========  =========================================

A document without a ``question`` column is read through the request's prompt text instead.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping
from typing import Any

#: Option columns, in the order tried: ScienceQA's list, MMBench's letters, SEED-Bench's names.
LETTER_COLUMNS = tuple(string.ascii_uppercase[:5])
SEED_COLUMNS = ("choice_a", "choice_b", "choice_c", "choice_d")


def clean_text(value: Any) -> str:
    """A cell as text: ``""`` for missing values (``None``, NaN, MMBench's ``"nan"``)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = str(value).strip()
    return "" if text.lower() == "nan" else text


def doc_choices(doc: Mapping[str, Any]) -> list[str]:
    """The answer options a document lists, in letter order (empty for open questions)."""
    listed = doc.get("choices")
    if isinstance(listed, (list, tuple)):
        return [clean_text(c) for c in listed]
    for columns in (LETTER_COLUMNS, SEED_COLUMNS):
        options = [clean_text(doc.get(c)) for c in columns if c in doc]
        options = [o for o in options if o]
        if options:
            return options
    return []


def doc_texts(doc: Mapping[str, Any], context: str) -> tuple[str, str, list[str]]:
    """``(question, hint, choices)`` of a document; ``context`` (the prompt) stands in for a
    missing question."""
    question = clean_text(doc.get("question")) or context.strip()
    return question, clean_text(doc.get("hint")), doc_choices(doc)
