"""Column mappings: which columns of a multiple-choice dataset hold the image, question, choices,
answer, hint and subject (the presets of known datasets are ``data/presets.py``).

A :class:`ColumnMap` turns one raw row into the normalised question every reader uses
(:meth:`ColumnMap.normalise`): ``image`` (undecoded), ``question`` (str), ``choices`` (list[str]),
``answer`` (index into ``choices``, or ``None`` when missing or unmappable), ``hint`` (str, ``""``
without one) and ``subject`` (str or ``None``). Choices come from one list column, from several
single-option columns (``A``, ``B``, ... whose empty/None/NaN values are dropped), from lettered
options inside the question text, or, for yes/no questions, are two fixed words.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from semclip.data.prompts import LETTERS

ANSWER_FORMATS = ("auto", "index", "letter", "text")
OPTION_STYLES = ("colon", "parenthesized")


@dataclass(frozen=True)
class ColumnMap:
    """Where a dataset keeps each part of a multiple-choice question."""

    name: str = ""
    """The preset (hub id) this mapping is, or empty for a mapping given by hand."""
    image: str = "image"
    """Image column: an image, a list of images (one is used; more are skipped as
    ``multiple_images``) or, with ``image_paths``, a file path."""
    question: str = "question"
    """Question text column."""
    choices: str | tuple[str, ...] | None = "choices"
    """One list column, several single-option columns (``("A", "B", "C", "D")``; empty, None and
    NaN options are dropped), or ``None``: options inside the question (``options_in_question``)
    or, without those, a yes/no question with the two choices ``yes_no``."""
    answer: str = "answer"
    """Answer column."""
    answer_format: str = "auto"
    """``index`` (0-based), ``letter`` (``A``, ``(B)``, ``C.``), ``text`` (a choice, any case) or
    ``auto`` (an integer is an index, one letter a letter, else the choice text)."""
    hint: str | None = "hint"
    """Context column shown before the question, or ``None``."""
    subject: str | None = "subject"
    """Column that groups questions in the evaluation tables (used when the dataset has it)."""
    yes_no: tuple[str, ...] = ("Yes", "No")
    """The choices of a question without choice columns or options in its text."""
    options_in_question: str | None = None
    """Options written in the question: ``colon`` (``Options: A: x, B: y``, MMStar) or
    ``parenthesized`` (``(A) x`` ... ``(D) w``, V* Bench); the question is cut before them."""
    null_strings: tuple[str, ...] = ()
    """Strings read as missing in option and hint columns (MMBench writes ``nan``)."""
    config: str | None = None
    """Hub configuration (subset) to load, e.g. ``en``; in a local copy, the sub-folder of that name
    is used when it exists."""
    data_files: dict[str, str] = field(default_factory=dict)
    """Split -> file or glob inside a local copy, where the file names are not the splits'."""
    image_paths: bool = False
    """The image column holds paths relative to the dataset folder (the images are files)."""

    def __post_init__(self) -> None:
        if isinstance(self.choices, list):
            object.__setattr__(self, "choices", tuple(self.choices))
        for name in ("yes_no", "null_strings"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        object.__setattr__(self, "data_files", dict(self.data_files))
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(
                f"answer_format must be one of {', '.join(ANSWER_FORMATS)}, "
                f"got {self.answer_format!r}"
            )
        if self.options_in_question not in (None, *OPTION_STYLES):
            raise ValueError(
                f"options_in_question must be one of {', '.join(OPTION_STYLES)} or empty, "
                f"got {self.options_in_question!r}"
            )

    @property
    def label(self) -> str:
        """How messages name this mapping."""
        return f"preset {self.name}" if self.name else "the given column mapping"

    def choice_columns(self) -> tuple[str, ...]:
        if self.choices is None:
            return ()
        return (self.choices,) if isinstance(self.choices, str) else self.choices

    def required_columns(self) -> list[str]:
        """The columns a dataset must have to be read through this mapping, in schema order."""
        names = [self.image, self.question, *self.choice_columns(), self.answer]
        if self.hint:
            names.append(self.hint)
        return list(dict.fromkeys(names))

    def consumed_columns(self) -> set[str]:
        """Columns whose values become the normalised fields (the rest travel as they are)."""
        return set(self.required_columns())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (``labelset.json``); :meth:`from_dict` reads it back."""
        out = asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ColumnMap:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown column mapping field(s) {unknown}; known: {sorted(known)}")
        return cls(**dict(data))

    def normalise(self, example: Mapping[str, Any], image_root: str | None = None) -> dict:
        """The normalised question of one raw row, with every other raw column beside it."""
        out = {k: v for k, v in example.items() if k not in self.consumed_columns()}
        question = _text(example.get(self.question))
        slots: list[Any]
        if self.choices is None and self.options_in_question:
            question, slots = split_options(question, self.options_in_question)
        elif self.choices is None:
            slots = list(self.yes_no)
        elif isinstance(self.choices, str):
            value = example.get(self.choices)
            slots = [] if _null(value) else list(value)
        else:
            slots = [example.get(c) for c in self.choices]
        if isinstance(self.choices, str):  # a list keeps its entries as they are (ScienceQA ids)
            kept = [i for i, v in enumerate(slots) if not _null(v)]
        else:  # an option column is empty for questions with fewer options
            kept = [i for i, v in enumerate(slots) if not self._blank(v)]
        choices = [str(slots[i]) for i in kept]
        hint = example.get(self.hint) if self.hint else None
        subject = example.get(self.subject) if self.subject else None
        out.update(
            image=self._image(example.get(self.image), image_root),
            question=question,
            choices=choices,
            answer=self._answer(example.get(self.answer), kept, choices),
            hint="" if _null(hint) or hint in self.null_strings else str(hint),
            subject=None if _null(subject) else str(subject),
        )
        return out

    def _blank(self, value: Any) -> bool:
        if isinstance(value, str):
            return not value.strip() or value in self.null_strings
        return _null(value)

    def _image(self, value: Any, image_root: str | None) -> Any:
        if _null(value):
            return None
        if isinstance(value, list):  # a sequence of images: one is a question's image
            return None if not value else value[0] if len(value) == 1 else value
        if self.image_paths and isinstance(value, str) and image_root and not os.path.isabs(value):
            return os.path.join(image_root, value)
        return value

    def _answer(self, raw: Any, kept: list[int], choices: list[str]) -> int | None:
        """Index into ``choices`` of the right one; ``None`` when missing or unmappable."""
        if _null(raw) or isinstance(raw, bool) or (isinstance(raw, str) and not raw.strip()):
            return None
        kind = self.answer_format
        if kind == "auto":
            kind = _detect_format(raw, choices)
        if kind == "text":
            wanted = str(raw).strip().casefold()
            matches = [i for i, c in enumerate(choices) if c.strip().casefold() == wanted]
            return matches[0] if len(matches) == 1 else None
        slot = _as_index(raw) if kind == "index" else _as_letter(raw)
        # A letter or index names an option slot; dropped empty options shift the rest.
        return kept.index(slot) if slot is not None and slot in kept else None


def _null(value: Any) -> bool:
    """None or NaN (pandas writes NaN for a missing value)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:]?$")


def _as_letter(raw: Any) -> int | None:
    match = _LETTER.match(str(raw).strip())
    return LETTERS.index(match.group(1).upper()) if match else None


def _as_index(raw: Any) -> int | None:
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else None
    try:
        return int(raw)  # ints, numpy integers and digit strings
    except (TypeError, ValueError):
        return None


def _detect_format(raw: Any, choices: Sequence[str]) -> str:
    if not isinstance(raw, str):
        return "index"
    text = raw.strip()
    if text.casefold() in {c.strip().casefold() for c in choices}:
        return "text"
    if _LETTER.match(text):
        return "letter"
    return "index" if text.isdigit() else "text"


def split_options(text: str, style: str) -> tuple[str, list[str]]:
    """``(question stem, options)`` of a question that lists its lettered options in its text.

    ``colon``: ``... Options: A: x, B: y, C: z`` (each option after the first follows ``, ``).
    ``parenthesized``: ``(A) x`` ... markers in letter order, inline or one a line; the last option
    ends at its line's end, so an instruction on the lines after it is dropped.
    No options found: the whole text and ``[]`` (recorded as a ``no_choices`` skip).
    """
    if style == "colon":
        head, sep, tail = text.rpartition("Options:")
        first = re.match(r"\s*A\s*[:.]\s*", tail) if sep else None
        if first is None:
            return text, []
        options, start = [], first.end()
        for letter in LETTERS[1:]:
            nxt = re.compile(rf",\s*{letter}\s*[:.]\s*").search(tail, start)
            if nxt is None:
                break
            options.append(tail[start : nxt.start()].strip())
            start = nxt.end()
        options.append(tail[start:].strip())
        return head.strip(), options
    markers, start = [], 0
    for letter in LETTERS:
        found = re.compile(rf"\({letter}\)").search(text, start)
        if found is None:
            break
        markers.append(found)
        start = found.end()
    if not markers:
        return text, []
    options = [
        text[m.end() : n.start()].strip() for m, n in zip(markers, markers[1:], strict=False)
    ]
    options.append(text[markers[-1].end() :].strip().split("\n", 1)[0].strip())
    return text[: markers[0].start()].strip(), options
