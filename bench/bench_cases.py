"""The --cases / --list flags of the benchmarks that compare named cases (bench_ipi_step, bench_remd_step,
bench_mts). Benchmarks run as scripts, so this folder is on sys.path: ``from bench_cases import chosen_cases``."""

from __future__ import annotations


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
