"""Prompt rendering in the LLaVA-1.5 / lmms-eval ScienceQA convention.

``Context: {hint}\\n`` (only with a hint) + question + ``\\nA. ...\\nB. ...`` +
``\\nAnswer with the option's letter from the given choices directly.``
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence

LETTERS = string.ascii_uppercase
MAX_CHOICES = len(LETTERS)

#: Fields: ``{context}`` (``"Context: <hint>\\n"`` or empty), ``{question}``, ``{options}``.
DEFAULT_TEMPLATE = (
    "{context}{question}\n{options}\n"
    "Answer with the option's letter from the given choices directly."
)


class TooManyChoicesError(ValueError):
    """A question with more options than there are letters (26)."""


def option_letters(num_choices: int) -> list[str]:
    """The letters ``A, B, ...`` for ``num_choices`` options (1..26)."""
    if num_choices < 1:
        raise ValueError("a question needs at least one choice")
    if num_choices > MAX_CHOICES:
        raise TooManyChoicesError(
            f"{num_choices} choices, but only {MAX_CHOICES} option letters (A-Z) exist"
        )
    return list(LETTERS[:num_choices])


def render_prompt(
    question: str,
    choices: Sequence[str],
    hint: str | None = None,
    template: str = DEFAULT_TEMPLATE,
) -> str:
    """Render a multiple-choice question with lettered options."""
    letters = option_letters(len(choices))
    options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(letters, choices))
    hint = (hint or "").strip()
    context = f"Context: {hint}\n" if hint else ""
    return template.format(context=context, question=question, options=options)


def template_hash(*parts: str) -> str:
    """A short stable hash of prompt templates (part of the label set's resume key)."""
    digest = hashlib.sha256("\x1e".join(parts).encode("utf-8")).hexdigest()
    return digest[:12]
