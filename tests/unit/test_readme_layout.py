"""README's layout table names every module of chalicelib/ and nothing that is not there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Layout", 1)[1].split("```", 2)[1]


def listed_modules() -> set[str]:
    """Paths under chalicelib/ the table names: `  name.py` at the top, `    package/name.py`
    for an engine package's modules."""
    listed = set()
    for line in layout_block().splitlines():
        if module := re.match(r"^  ([a-z0-9_]+\.py)\b", line):
            listed.add(module.group(1))
        elif module := re.match(r"^    ([a-z_]+/[a-z0-9_]+\.py)\b", line):
            listed.add(module.group(1))
    return listed


def test_the_layout_table_lists_exactly_the_modules_of_chalicelib():
    chalicelib = ROOT / "chalicelib"
    actual = {
        str(path.relative_to(chalicelib))
        for path in chalicelib.rglob("*.py")
        if path.name != "__init__.py" and "prompb" not in path.parts
    }
    assert listed_modules() == actual


def test_the_layout_table_lists_only_top_level_folders_that_exist():
    folders = re.findall(r"^([a-z_.]+)/", layout_block(), re.MULTILINE)
    assert folders and all((ROOT / folder).is_dir() for folder in folders)
