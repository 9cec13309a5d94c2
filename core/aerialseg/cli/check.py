"""``aerialseg check``: does the installation work (versions, GPU or CPU and why, models)?"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter, log


def add_parser(sub: Any) -> None:
    p = add_command(sub, "check", run, "check the installation works: versions, GPU or CPU and why, models",
                    writes=False)
    p.add_argument("--json", action="store_true", help="print the report as one JSON line (a 'result' object)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="the device that must work: auto (CUDA if it works, else CPU), cpu, or cuda")
    p.add_argument("--train", action="store_true", help="also check the training stack (imports torch: slower)")
    p.add_argument("--cluster", action="store_true", help="also check the Dask cluster extra")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    """The report is the result, also when the set-up does not work (then: status 1 and one error line)."""
    from aerialseg.checkup import environment_report

    if not args.verbose and rep.mode != "json":
        log.setLevel(logging.WARNING)  # the report says which device runs; no "runtime: ..." line on stderr
    report = environment_report(args.device, train=args.train, cluster=args.cluster)
    if rep.mode == "json":
        rep.result(**report)
    elif args.json:  # one line: the last line of stdout is the result, as in every other command
        print(json.dumps({"type": "result", **report}), flush=True)
    else:
        rep.result(_text(report))
    if report["ok"]:
        return 0
    problems = report["problems"]
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
    return rep.fail(f"the set-up does not work: {problems[0]}{more}", 1)


def _text(report: dict[str, Any]) -> str:
    lines = [f"{key:>22}: {', '.join(map(str, value)) if isinstance(value, list) else value}"
             for key, value in report.items() if key not in ("ok", "problems")]
    lines += [f"{'problem':>22}: {problem}" for problem in report["problems"]]
    lines.append(f"{'set-up':>22}: {'works' if report['ok'] else 'does NOT work'}")
    return "\n".join(lines)
