"""The VLM's input text: image placeholders and a prompt, in LLaVA-1.5's format or a chat template;
and the token id of each option letter as the model would write it next.

Labeling and selection both render through here, so a selected crop meets the VLM exactly as the
labels were made, and a template hash computed from this output changes with the system line.
Light imports only (no torch).
"""

from __future__ import annotations

from collections.abc import Sequence

#: ``auto`` is the family's own format (``semclip.vlm.families.Family.prompt_format``).
PROMPT_FORMATS = ("auto", "llava15", "chat_template")

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


class PromptFormatError(ValueError):
    """The processor cannot render the prompt format asked for (a chat template it does not
    have): a setting the user changes, so command lines print it as one line."""


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
    system prompt (``system`` is not used); a processor without one (a VLM that is not a chat
    model, e.g. PaliGemma) raises :class:`PromptFormatError` naming ``--prompt-format llava15``,
    since transformers' own error does not say what to do.
    """
    if prompt_format == "llava15":
        return LLAVA15_FORMAT.format(
            system=f"{system} " if system else "",
            images="<image>\n" * num_images,
            prompt=prompt,
        )
    content = [{"type": "image"}] * num_images + [{"type": "text", "text": prompt}]
    try:
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
    except ValueError as err:
        if getattr(processor, "chat_template", "") is not None:
            raise  # a template that failed: not a missing one
        raise PromptFormatError(
            f"{_processor_name(processor)} has no chat template (not a chat VLM): pass "
            "--prompt-format llava15 to show it LLaVA-1.5's 'USER: <image> ... ASSISTANT:' form"
        ) from err


def _processor_name(processor) -> str:
    """The checkpoint a processor was loaded from, or its class for one built in memory."""
    tokenizer = getattr(processor, "tokenizer", None)
    return getattr(tokenizer, "name_or_path", "") or type(processor).__name__


def answer_tail(rendered: str, marker: str = "x") -> str:
    """What follows the prompt in a row rendered with ``prompt=marker`` (e.g. ``" ASSISTANT:"``)."""
    return rendered.split(marker)[-1]


def letter_ids(tokenizer, tail: str, letters: Sequence[str], model: str = "the model") -> list[int]:
    """Token id of each option letter as the model would write it right after ``tail``.

    Raises ``ValueError`` when a letter is not exactly one token for this tokenizer there.
    """
    sep = "" if tail[-1:].isspace() else " "
    base = tokenizer(tail, add_special_tokens=False)["input_ids"]
    ids = []
    for letter in letters:
        full = tokenizer(tail + sep + letter, add_special_tokens=False)["input_ids"]
        if len(full) != len(base) + 1 or full[: len(base)] != base:
            pieces = tokenizer.convert_ids_to_tokens(full[len(base) - 1 :])
            raise ValueError(
                f"option letter {letter!r} is not a single token after {tail!r} for "
                f"{model} (got {pieces}); letter scoring needs one token per "
                "letter: use --mode generate for this model"
            )
        ids.append(full[-1])
    return ids
