"""Reading the option letter out of a generated answer, by lmms-eval's ScienceQA rules.

The rules are those of ``sqa_process_results`` in lmms-eval's
``lmms_eval/tasks/scienceqa/utils.py`` (EvolvingLMMs-Lab/lmms-eval, as of its PR #723, which made
the comparison case-insensitive); lmms-eval notes that they follow LLaVA's own parsing. That
function scores an answer against the target letter; here the same tests pick the letter:

1. the answer, stripped of surrounding whitespace, equals an option letter ignoring case
   (``"b"`` and ``" B "`` are ``B``);
2. otherwise, an answer of two or more characters whose first character is upper case and whose
   second is ``.`` names the letter of its first character (``"A. frog"`` is ``A``; ``"a. frog"``
   is not parsed);
3. anything else is :data:`~semclip.data.labels.UNPARSED`, as is a letter that is not among the
   question's options. lmms-eval scores all of these as wrong answers.
"""

from __future__ import annotations

from collections.abc import Sequence

from semclip.data.labels import UNPARSED


def _letter(candidate: str, letters: Sequence[str]) -> str:
    """The option letter equal to ``candidate`` ignoring case, else ``UNPARSED``."""
    wanted = candidate.lower()
    return next((letter for letter in letters if letter.lower() == wanted), UNPARSED)


def parse_answer(text: str, letters: Sequence[str]) -> str:
    """The option letter a generated ``text`` names among ``letters``, or ``UNPARSED``."""
    answer = text.strip()
    exact = _letter(answer, letters)
    if exact != UNPARSED:
        return exact
    if len(answer) >= 2 and answer[0].isupper() and answer[1] == ".":
        return _letter(answer[0], letters)
    return UNPARSED
