"""The README's speed section, copied from bench/RESULTS.md: benchmark numbers live in one place.

    python bench/readme.py          # rewrite the section between the README's markers
    python bench/readme.py --check  # exit 1 when the README differs from RESULTS.md

The section holds RESULTS.md's command line, its median table and its ratios, verbatim.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN = "<!-- bench/RESULTS.md: begin (python bench/readme.py writes this part) -->"
END = "<!-- bench/RESULTS.md: end -->"
_SECTIONS = ("## Steady state: median ms per run", "## Ratios")


def _section(text: str, heading: str) -> tuple[list[str], list[str]]:
    """(the section's prose lines before its first table, the first table's lines)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading)) + 1
    prose: list[str] = []
    table: list[str] = []
    for line in lines[start:]:
        if line.startswith("## "):
            break
        if line.startswith("|"):
            table.append(line)
        elif table:
            break  # the first table ended
        elif line.strip() and not line.startswith("!["):
            prose.append(line)
    return prose, table


def block(results_md: str) -> str:
    """The README's generated block for this RESULTS.md text."""
    written = next(line for line in results_md.splitlines() if line.startswith("Written by"))
    parts = [BEGIN, "", written.replace(": do not edit by hand, re-run it.", ".")]
    for heading in _SECTIONS:
        prose, table = _section(results_md, heading)
        parts += ["", f"**{heading.removeprefix('## ')}**", ""]
        if heading == "## Ratios":
            parts += [*prose, ""]
        parts += table
    parts += ["", END]
    return "\n".join(parts)


def replace_block(readme: str, new_block: str) -> str:
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme[:start] + new_block + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = parser.parse_args(argv)
    readme_path, results_path = ROOT / "README.md", ROOT / "bench" / "RESULTS.md"
    readme = readme_path.read_text()
    wanted = replace_block(readme, block(results_path.read_text()))
    if args.check:
        if wanted != readme:
            print("README.md's speed section differs from bench/RESULTS.md: run python bench/readme.py", file=sys.stderr)
            return 1
        return 0
    readme_path.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
