#!/usr/bin/env python3
"""Print the mutation score per module from a mutmut working copy (docs/mutation.md).

Run it with the project's virtualenv from the folder mutmut ran in (the top of the tree for the
kernel set, ``mutation/loop`` for the contract, session and ledger set)::

    ../../.venv/bin/python ../../tools/mutation_score.py         # a Markdown table
    ../../.venv/bin/python ../../tools/mutation_score.py --list  # every mutant not killed

Killed counts include timeouts (a mutant that makes the tests hang is caught). "No tests" are
mutants in code that no selected test runs: they count as not killed.
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path

from mutmut.__main__ import status_by_exit_code


def _statuses(meta: Path) -> dict[str, str]:
    data = json.loads(meta.read_text())
    return {name: "not checked" if code is None else status_by_exit_code[code]
            for name, code in data["exit_code_by_key"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list every mutant not killed")
    args = parser.parse_args()
    metas = sorted(Path("mutants").glob("**/*.py.meta"))
    if not metas:
        raise SystemExit("no mutants/ here: run mutmut first, from this folder")
    if args.list:
        for meta in metas:
            for name, status in sorted(_statuses(meta).items()):
                if status not in ("killed", "timeout"):
                    print(f"{status}\t{name}")
        return
    print("| module | generated | killed | of which timeouts | survived | no tests | other "
          "| score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for meta in metas:
        counts = collections.Counter(_statuses(meta).values())
        total = sum(counts.values())
        killed = counts["killed"] + counts["timeout"]
        other = total - killed - counts["survived"] - counts["no tests"]
        module = meta.name.removesuffix(".py.meta")
        print(f"| {module} | {total} | {killed} | {counts['timeout']} | {counts['survived']} "
              f"| {counts['no tests']} | {other} | {100 * killed / total:.1f} % |")


if __name__ == "__main__":
    main()
