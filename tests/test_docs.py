"""The docs' examples are the files tests run: each marked block must match its file.

`<!-- example: PATH -->` before a ```python block: the block is the whole file PATH.
`<!-- excerpt: PATH -->`: the block is a verbatim piece of PATH, whole lines.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"<!-- example: (\S+) -->\n```python\n(.*?)```", README, re.DOTALL)
GUIDE = ROOT / "docs" / "extending.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = r"<!-- (example|excerpt): (\S+) -->"
MARKED = [
    (page.relative_to(ROOT).as_posix(), kind, path, code)
    for page in PAGES
    for kind, path, code in re.findall(MARK + r"\n```python\n(.*?)```", page.read_text(), re.DOTALL)
]
RUN_BY = {
    "docs/examples/notes/": "tests/test_cli_readme.py",
    "docs/examples/tutorial/": "tests/test_tutorial.py",
    "docs/examples/extending.py": "tests/test_docs_extending.py",
    "docs/examples/custom_routes.py": "tests/test_docs_custom_routes.py",
    "example_project/shop/": "tests/test_example_shop.py",
    "tests/test_query_counts.py": "tests/test_query_counts.py",
}
"""The files blocks may quote, and the test that runs each."""


def marked(kind: str) -> list[tuple[str, str]]:
    return [(path, code) for _, found, path, code in MARKED if found == kind]


def ids(kind: str) -> list[str]:
    return [
        f"{page}:{path}:{i}" for i, (page, found, path, _) in enumerate(MARKED) if found == kind
    ]


def test_readme_marks_its_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize(("path", "code"), BLOCKS, ids=[path for path, _ in BLOCKS])
def test_readme_block_is_the_example_file(path: str, code: str) -> None:
    assert (ROOT / path).read_text() == code


@pytest.mark.parametrize(("path", "code"), marked("example"), ids=ids("example"))
def test_marked_block_is_the_example_file(path: str, code: str) -> None:
    assert (ROOT / path).read_text() == code


@pytest.mark.parametrize(("path", "code"), marked("excerpt"), ids=ids("excerpt"))
def test_marked_excerpt_is_in_its_file(path: str, code: str) -> None:
    assert code.strip(), "an empty excerpt"
    assert "\n" + code in "\n" + (ROOT / path).read_text(), f"not a verbatim piece of {path}"


def test_every_python_block_of_the_guide_is_marked() -> None:
    lines = GUIDE.read_text().splitlines()
    unmarked = [
        number + 1
        for number, line in enumerate(lines)
        if line == "```python" and (number == 0 or not re.fullmatch(MARK, lines[number - 1]))
    ]
    assert unmarked == [], f"docs/extending.md: python blocks without a marker at lines {unmarked}"
    assert any(page == "docs/extending.md" for page, *_ in MARKED)


def test_marked_files_are_run_by_the_suite() -> None:
    for page, _, path, _ in MARKED:
        runners = [test for prefix, test in RUN_BY.items() if path.startswith(prefix)]
        assert runners, f"{page} quotes {path}, which no test in RUN_BY runs"
        assert (ROOT / path).is_file(), path
        assert (ROOT / runners[0]).is_file(), runners[0]


def test_readme_commands_exist() -> None:
    for script in re.findall(r"^bash (scripts/\S+\.sh)$", README, re.MULTILINE):
        assert (ROOT / script).exists(), script
