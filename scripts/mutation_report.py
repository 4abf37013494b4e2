"""Writes mutation-report.md from mutmut's results in mutants/ (run by `make mutate`).

Per module: killed / survived / total and the score; then every surviving mutant as
file:line, function and the mutation (original text -> mutated text), so the missing test is
easy to find. A mutant with "no tests" is one whose function no selected test calls: it
survives too, and is listed with the survivors.

Usage: scripts/mutation_report.py [--out mutation-report.md]   (from the project root)
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path

import libcst as cst
from mutmut.mutation.diff_apply import (
    read_functions_from_index,
    read_mutant_function,
    read_mutants_module,
    read_original_function,
)
from mutmut.stats import status_by_exit_code
from mutmut.utils.format_utils import orig_function_and_class_names_from_key

MUTANTS = Path("mutants")
# statuses that count as caught: a test failed, or the mutant made the tests hang
DETECTED = {"killed", "timeout", "caught by type check"}
DefLines = dict[tuple[str | None, str], int]  # (class or None, function) -> line of its def


def def_lines(path: Path) -> DefLines:
    """(class or None, function) -> line of its `def`, for top-level functions and methods."""
    tree = ast.parse(path.read_text())
    lines: DefLines = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines[(None, node.name)] = node.lineno
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines[(node.name, item.name)] = item.lineno
    return lines


def function_sources(key: str, path: Path) -> tuple[list[str], list[str]]:
    """The original and the mutated function's source lines, as mutmut's `show` compares them."""
    functions = read_functions_from_index(key, path)
    if functions is None:
        module = read_mutants_module(path)
        functions = (read_original_function(module, key), read_mutant_function(module, key))
    orig, mutant = (cst.Module([function]).code.strip("\n") for function in functions)
    return orig.split("\n"), mutant.split("\n")


def describe(key: str, path: Path, def_line_by_function: DefLines) -> tuple[int | None, str]:
    """(line in the source file, 'original -> mutated') for one mutant."""
    function, class_name = orig_function_and_class_names_from_key(key)
    try:
        orig, mutant = function_sources(key, path)
    except Exception as error:  # an unreadable mutant must not lose the rest of the report
        return None, f"(could not read the mutant: {error})"
    def_pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(function)}\b")
    def_index = next((i for i, line in enumerate(orig) if def_pattern.match(line)), 0)
    opcodes = difflib.SequenceMatcher(None, orig, mutant, autojunk=False).get_opcodes()
    changes = [op for op in opcodes if op[0] != "equal"]
    if not changes:
        return def_line_by_function.get((class_name, function)), "(no textual change)"
    _, i1, i2, j1, j2 = changes[0]
    start = def_line_by_function.get((class_name, function))
    line = None if start is None else start + (i1 - def_index)
    before = " ⏎ ".join(text.strip() for text in orig[i1:i2]) or "(nothing)"
    after = " ⏎ ".join(text.strip() for text in mutant[j1:j2]) or "(deleted)"
    return line, f"`{before}` → `{after}`"


def load_results() -> dict[Path, dict[str, str]]:
    """source path -> {mutant key: status}, for every module mutmut mutated."""
    results: dict[Path, dict[str, str]] = {}
    for meta in sorted(MUTANTS.rglob("*.py.meta")):
        source = meta.relative_to(MUTANTS).with_suffix("")  # chalicelib/x.py.meta -> chalicelib/x.py
        exit_codes = json.loads(meta.read_text())["exit_code_by_key"]
        if exit_codes:
            results[source] = {key: status_by_exit_code[code] for key, code in exit_codes.items()}
    return results


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "–"


def report(results: dict[Path, dict[str, str]]) -> tuple[str, dict]:
    rows = []
    survivors: dict[Path, list[tuple[int, str, str, str]]] = defaultdict(list)
    totals: Counter[str] = Counter()
    summary: dict[str, dict] = {}
    for path, statuses in results.items():
        counts = Counter(statuses.values())
        checked = {key: status for key, status in statuses.items() if status != "not checked"}
        totals["not checked"] += len(statuses) - len(checked)
        if not checked:
            continue
        detected = sum(counts[s] for s in DETECTED)
        total = len(checked)
        other = total - detected - counts["survived"] - counts["no tests"]
        totals.update({status: n for status, n in counts.items() if status != "not checked"})
        totals["detected"] += detected
        totals["total"] += total
        summary[str(path)] = {
            "killed": detected, "survived": counts["survived"], "no_tests": counts["no tests"],
            "other": other, "total": total,
        }
        rows.append(
            f"| {path} | {detected} | {counts['survived']} | {counts['no tests']} | {other} | {total} "
            f"| {percent(detected, total)} |"
        )
        def_line_by_function = def_lines(path)
        for key, status in checked.items():
            if status not in DETECTED:
                line, mutation = describe(key, path, def_line_by_function)
                function, class_name = orig_function_and_class_names_from_key(key)
                name = f"{class_name}.{function}" if class_name else function
                note = "" if status == "survived" else f" ({status})"
                survivors[path].append((line or 0, name, mutation + note, key.rpartition(".")[2]))

    other_total = totals["total"] - totals["detected"] - totals["survived"] - totals["no tests"]
    summary["overall"] = {"killed": totals["detected"], "survived": totals["survived"],
                          "no_tests": totals["no tests"], "other": other_total, "total": totals["total"],
                          "not_checked": totals["not checked"]}
    out = [
        "# Mutation testing report",
        "",
        f"Written by `make mutate` (mutmut) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. "
        "Killed includes timeouts; *no tests* = no selected test calls the function (counted as not "
        "killed); *other* = suspicious, segfault or interrupted. Score = killed / total.",
        "",
        *(
            [f"{totals['not checked']} of {totals['not checked'] + totals['total']} mutants were not tested "
             "(a sampled, per-module or interrupted run): the table counts only the tested ones.", ""]
            if totals["not checked"] else []
        ),
        "| module | killed | survived | no tests | other | total | score |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        f"| **overall** | **{totals['detected']}** | **{totals['survived']}** | **{totals['no tests']}** "
        f"| **{other_total}** | **{totals['total']}** | **{percent(totals['detected'], totals['total'])}** |",
        "",
        "## Mutants not killed",
        "",
        "`mutmut show <mutant>` (from the project root) prints a mutant's diff; "
        "`mutmut apply <mutant>` writes it into the source (revert with git).",
        "",
    ]
    for path, entries in survivors.items():
        out += [f"### {path} ({len(entries)})", ""]
        for line, name, mutation, mutant in sorted(entries):
            out.append(f"- {path}:{line or '?'} `{name}`: {mutation} — `{mutant}`")
        out.append("")
    return "\n".join(out), summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="mutation-report.md", type=Path)
    args = parser.parse_args()
    if not MUTANTS.is_dir():
        print("mutation_report: no mutants/ here; run `make mutate` first", file=sys.stderr)
        return 1
    results = load_results()
    text, summary = report(results)
    if not summary or not summary["overall"]["total"]:
        print("mutation_report: mutmut has no results in mutants/", file=sys.stderr)
        return 1
    args.out.write_text(text)
    (MUTANTS / "mutation-summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for module, counts in summary.items():
        score = percent(counts["killed"], counts["total"])
        print(f"{module:28} {counts['killed']:5} / {counts['total']:5} killed  {score}")
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
