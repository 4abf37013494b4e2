"""README's layout table names every module of chalicelib/ and nothing that is not there."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def layout_block() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("## Layout", 1)[1].split("```", 2)[1]


def test_the_layout_table_lists_exactly_the_modules_of_chalicelib():
    listed = set(re.findall(r"^  ([a-z_]+\.py)\b", layout_block(), re.MULTILINE))
    actual = {path.name for path in (ROOT / "chalicelib").glob("*.py") if path.name != "__init__.py"}
    assert listed == actual


def test_the_layout_table_lists_only_top_level_folders_that_exist():
    folders = re.findall(r"^([a-z_.]+)/", layout_block(), re.MULTILINE)
    assert folders and all((ROOT / folder).is_dir() for folder in folders)
