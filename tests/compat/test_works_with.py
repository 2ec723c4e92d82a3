"""README's "Works with" table says what this suite runs, at the versions it runs."""

import re
from pathlib import Path

from tests.compat.conftest import NODE_LIBRARIES, PYTHON_LIBRARIES, node_library, python_library

README = Path(__file__).resolve().parents[2] / "README.md"


def works_with_rows() -> dict[str, str]:
    section = README.read_text().split("## Works with", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| ([\w.-]+) \| ([\d.]+) \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_readme_lists_every_library_the_suite_runs():
    assert set(works_with_rows()) == {*PYTHON_LIBRARIES, *NODE_LIBRARIES}


def test_readme_versions_match_the_versions_the_suite_runs():
    rows = works_with_rows()
    running = [python_library(name) for name in PYTHON_LIBRARIES] + [
        node_library(name) for name in NODE_LIBRARIES
    ]
    for row in running:
        name, version = row.split(" ", 1)
        assert version == rows[name] or version.startswith(rows[name] + "."), (
            f"README says {name} {rows[name]}, the suite runs {version}"
        )
