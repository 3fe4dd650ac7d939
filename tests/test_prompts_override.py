"""A user's own prompt templates replace the built-in ones, and a broken one is refused clearly."""

from __future__ import annotations

import pytest

from prism_agent.data.reader import Sample
from prism_agent.errors import BadInputError
from prism_agent.tasks.generation import fewshot_prompt
from prism_agent.tasks.registry import get_task


def test_builtin_templates_pass_the_check():
    for name in ("nli", "math"):
        get_task(name).check_templates()


def test_user_template_replaces_one_role(tmp_path):
    (tmp_path / "generate.md").write_text("Give me {num_new} more like these:\n{examples}\nThanks.")
    task = get_task("math")
    task.prompts_dir = str(tmp_path)
    task.check_templates()
    text = fewshot_prompt(task, [Sample("a", "What is 2+2?", "4")], 3)
    assert text.startswith("Give me 3 more like these:") and "What is 2+2?" in text
    assert "{problem}" in task.template("solve") or "problem" in task.template("solve")  # others stay built in


@pytest.mark.parametrize(("text", "message"), [
    ("Write {num_new} items.", "lacks {examples}"),
    ("Write {num_new} like {examples} and {oops}", "cannot fill it"),
    ("A brace { here {num_new} {examples}", "cannot fill it"),
])
def test_broken_user_template_is_refused(tmp_path, text, message):
    (tmp_path / "generate.md").write_text(text)
    task = get_task("nli")
    task.prompts_dir = str(tmp_path)
    with pytest.raises(BadInputError, match=message):
        task.check_templates()
