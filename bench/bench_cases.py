"""What the benchmarks that compare named cases share (bench_ipi_step, bench_remd_step, bench_mts): the
--cases / --list flags and the median [min-max] cell of their tables. Benchmarks run as scripts, so this
folder is on sys.path: ``from bench_cases import chosen_cases, spread``."""

from __future__ import annotations

import statistics


def spread(values) -> str:
    """'median [min-max]' of the values that are not None ('-' when none are)."""
    values = [v for v in values if v is not None]
    if not values:
        return "           -"
    return f"{statistics.median(values):6.2f} [{min(values):5.2f}-{max(values):5.2f}]"


def chosen_cases(parser, args, cases, describe=lambda case: case.what):
    """The cases named in args.cases (comma-separated, in that order), or None once --list has printed
    every case with describe(case). An unknown name is a usage error (parser.error: one line, exit 2)."""
    if args.list:
        width = max(len(case.name) for case in cases)
        for case in cases:
            print(f"{case.name:<{width}}  {describe(case)}")
        return None
    known = {case.name: case for case in cases}
    names = args.cases.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown case(s) {', '.join(unknown)}; --list shows them")
    return [known[name] for name in names]
