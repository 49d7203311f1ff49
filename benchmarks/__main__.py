"""``python -m benchmarks [--smoke] [--only NAME…] [--repeat N] [--no-write] [--list]``

and ``--summary``: the README table from the last results.json; ``--compare OLD.json``: each
same-run ratio of results.json beside the one in OLD.json."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from . import harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run emsctl's benchmarks; print a table, write RESULTS.md and results.json. "
                    "Missed targets are reported, never raised: the exit code is 1 only when a "
                    "benchmark failed to run.")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one run each (proves they work; writes no reports "
                             "unless --write is given)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--repeat", type=int, metavar="N",
                        help="timed runs per figure (default: each benchmark's own)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no reports")
    parser.add_argument("--write", action="store_true", help="write reports even with --smoke")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--summary", action="store_true",
                        help="print the README's short table from results.json and exit")
    parser.add_argument("--compare", metavar="OLD_JSON",
                        help="print each same-run ratio of results.json beside OLD_JSON's "
                             "(e.g. a results.json from git history) and exit")
    args = parser.parse_args(argv)
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")

    if args.compare:
        before = harness.results_from_json(Path(args.compare))[0]
        after = harness.results_from_json(harness.HERE / "results.json")[0]
        print(harness.render_comparison(before, after))
        return 0
    if args.summary:
        results, info, command, date = harness.results_from_json(harness.HERE / "results.json")
        print(f"Measured {date} with `{command}`; load average at start "
              f"{info.get('load_average_start')}, at end {info.get('load_average_end')}.\n")
        print(harness.render_summary(results))
        return 0
    registry = harness.discover()
    if args.list:
        for bench in registry.values():
            print(f"{bench.name:28s} {bench.description}")
        return 0
    size: harness.Size = "smoke" if args.smoke else "full"
    info = harness.machine()
    try:
        results = harness.run(args.only, size, args.repeat,
                              echo=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    info["load_average_end"] = harness.load_average()  # the machine is shared: say how busy
    print()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(harness.render_table(results))
    write = not args.no_write and (not args.smoke or args.write)
    if write:
        command = "python -m benchmarks" + "".join(
            " " + shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        md, js = harness.write_reports(results, info, command)
        print(f"\nwrote {md} and {js}")
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
