"""Generated answers read as lmms-eval reads them for ScienceQA.

Expected letters follow ``sqa_process_results`` in lmms-eval's
``lmms_eval/tasks/scienceqa/utils.py``: an answer is right when, stripped, it equals the target
letter ignoring case, or when it starts with an upper-case letter followed by ``.`` and that letter
is the target. ``parse_answer`` returns the letter that would be scored right, else ``unparsed``.
"""

import pytest

from semclip.data.labels import UNPARSED
from semclip.vlm.parsing import parse_answer

LETTERS = ["A", "B", "C", "D"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("B", "B"),  # the exact letter
        (" C ", "C"),  # stripped
        ("D\n", "D"),
        ("b", "B"),  # case-insensitive since lmms-eval #723
        ("  a  ", "A"),
        ("A. frog", "A"),  # upper-case letter then "."
        ("A.", "A"),
        ("C.frog", "C"),
        (" B. whale\n", "B"),  # stripped before the pattern
        ("a. frog", UNPARSED),  # the pattern needs an upper-case letter
        ("A frog", UNPARSED),  # no "."
        ("A)", UNPARSED),
        ("(A)", UNPARSED),
        ("AB", UNPARSED),
        ("The answer is B", UNPARSED),
        ("Answer: B", UNPARSED),
        ("E", UNPARSED),  # not one of the options
        ("e", UNPARSED),
        ("E. eel", UNPARSED),
        ("", UNPARSED),
        ("   ", UNPARSED),
        (".", UNPARSED),
    ],
)
def test_parse_answer_like_lmms_eval(text, expected):
    assert parse_answer(text, LETTERS) == expected


def test_letters_beyond_d():
    letters = [chr(ord("A") + i) for i in range(7)]
    assert parse_answer("g", letters) == "G"
    assert parse_answer("F. fish", letters) == "F"
    assert parse_answer("H", letters) == UNPARSED
