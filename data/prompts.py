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


#: The system line LLaVA-1.5 is evaluated with: the ``vicuna_v1`` conversation of LLaVA's
#: ``llava/conversation.py`` (its ScienceQA script passes ``--conv-mode vicuna_v1``), which
#: lmms-eval's ``llava`` model uses by default. The default of ``render_input``'s ``system``.
LLAVA15_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

#: LLaVA-1.5's conversation form (separator style ``TWO``, ``sep=" "``): ``{system}`` is the
#: system line plus one space, or empty; images first, then the text.
LLAVA15_FORMAT = "{system}USER: {images}{prompt} ASSISTANT:"


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


def vlm_prompt_format(prompt_format: str, model_type: str) -> str:
    """``llava15`` or ``chat_template``; ``auto`` is ``llava15`` for ``model_type == "llava"``."""
    if prompt_format not in ("auto", "llava15", "chat_template"):
        raise ValueError("prompt format must be 'auto', 'llava15' or 'chat_template'")
    if prompt_format != "auto":
        return prompt_format
    return "llava15" if model_type == "llava" else "chat_template"


def render_input(
    processor,
    prompt_format: str,
    prompt: str,
    num_images: int,
    system: str | None = LLAVA15_SYSTEM,
) -> str:
    """The VLM's input text: ``num_images`` image placeholders, then ``prompt``.

    ``llava15``: ``{system} USER: <image>\n<image>\n{prompt} ASSISTANT:`` (for two images), as
    LLaVA-1.5's own evaluation renders it; ``system=None`` (or ``""``) leaves the system line out.
    Otherwise the processor's chat template with one user turn and the template's own default
    system prompt (``system`` is not used). Labeling and selection both render through here, so a
    selected crop meets the VLM exactly as the labels were made, and a template hash computed from
    this output changes with the system line.
    """
    if prompt_format == "llava15":
        return LLAVA15_FORMAT.format(
            system=f"{system} " if system else "",
            images="<image>\n" * num_images,
            prompt=prompt,
        )
    content = [{"type": "image"}] * num_images + [{"type": "text", "text": prompt}]
    return processor.apply_chat_template(
        [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
    )
