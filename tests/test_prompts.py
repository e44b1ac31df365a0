import pytest

from semclip.data.prompts import TooManyChoicesError, option_letters, render_prompt

TAIL = "Answer with the option's letter from the given choices directly."


def test_prompt_without_hint():
    got = render_prompt("Which is a mammal?", ["frog", "whale", "trout"])
    assert got == f"Which is a mammal?\nA. frog\nB. whale\nC. trout\n{TAIL}"


def test_prompt_with_hint():
    got = render_prompt("Which is a mammal?", ["frog", "whale"], hint="Look at the picture.")
    assert got == f"Context: Look at the picture.\nWhich is a mammal?\nA. frog\nB. whale\n{TAIL}"


def test_blank_hint_is_no_context():
    assert render_prompt("Q?", ["x", "y"], hint="  ") == f"Q?\nA. x\nB. y\n{TAIL}"


def test_template_override():
    got = render_prompt("Q?", ["x", "y"], template="{question}|{options}|{context}")
    assert got == "Q?|A. x\nB. y|"


def test_letters_limit():
    assert option_letters(26)[-1] == "Z"
    with pytest.raises(TooManyChoicesError, match="27 choices"):
        render_prompt("Q?", [str(i) for i in range(27)])
    with pytest.raises(ValueError):
        option_letters(0)
