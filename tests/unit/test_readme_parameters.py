"""README's parameter table lists exactly template.yaml's parameters, each with the template's default.

A parameter added, renamed or removed in the template, or a default changed, fails here until the README
says so: the table is what a user deploying the stack reads.
"""

from __future__ import annotations

import re

from local.template import ROOT, load_template

README = ROOT / "README.md"
TABLE_HEADER = "| parameter | default | change it when |"


def _rows() -> dict[str, str]:
    """The deploy section's parameter table: parameter name -> its default cell."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER) + 2  # past the header and its |---| line
    rows: dict[str, str] = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        name = re.fullmatch(r"`([A-Za-z0-9]+)`", cells[0])
        assert name is not None, f"the first cell names one parameter in backticks: {line}"
        assert name.group(1) not in rows, f"{name.group(1)} has two rows"
        assert len(cells) == 3 and cells[2], f"every row says when to change it: {line}"
        rows[name.group(1)] = cells[1]
    return rows


def _expected_default(spec: dict[str, object]) -> str:
    if "Default" not in spec:
        return "required"
    default = str(spec["Default"])
    return "empty" if default == "" else f"`{default}`"


def test_the_parameter_table_lists_exactly_the_template_parameters() -> None:
    parameters = load_template()["Parameters"]
    rows = _rows()
    assert sorted(rows) == sorted(parameters)


def test_each_row_shows_the_template_default() -> None:
    parameters = load_template()["Parameters"]
    rows = _rows()
    for name, spec in parameters.items():
        assert rows.get(name) == _expected_default(spec), name
