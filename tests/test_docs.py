"""The README's examples are the files tests run: each marked block must match its file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```", README, re.DOTALL)


def test_readme_marks_its_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize(("path", "code"), BLOCKS, ids=[path for path, _ in BLOCKS])
def test_readme_block_is_the_example_file(path: str, code: str) -> None:
    assert (ROOT / path).read_text() == code


def test_readme_commands_exist() -> None:
    for script in re.findall(r"^bash (scripts/\S+\.sh)$", README, re.MULTILINE):
        assert (ROOT / script).exists(), script
