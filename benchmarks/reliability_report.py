"""The reliability report: faults injected and survived, load held, bad inputs tried.

    python benchmarks/reliability_report.py                  # run the suite, print the table
    python benchmarks/reliability_report.py --results FILE   # only format a results file
    python benchmarks/reliability_report.py --soak FILE      # with that soak's figures

By default it runs ``pytest tests/reliability`` — and, alongside, the older cases elsewhere
in the suite that inject faults or bad input (:data:`EXISTING`) — with
``CASCADE_RELIABILITY_RESULTS`` set, so every reliability case appends one JSON line (area,
case, outcome, evidence: what arrived at the surviving targets, recovery times, error
messages). It then prints three Markdown tables, the figures for the README:

- **Faults**: each fault, whether it was survived, and the evidence;
- **Load**: targets, minutes, the agent's RSS (start / end / max) and open files, the
  largest gap between stats events, with the normal suite's run and the latest soak
  (``scripts/soak.py`` writes ``cascade-soak.json`` in the temporary folder);
- **Bad input**: each input tried and its outcome;

and a line per older case group: how many of its tests passed. It exits 1 if a case failed.
Loaded as a pytest plugin (``-p benchmarks.reliability_report``) it records the outcome of
every test to ``CASCADE_RELIABILITY_OUTCOMES``, which is how the older cases are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_ENV = "CASCADE_RELIABILITY_RESULTS"
OUTCOMES_ENV = "CASCADE_RELIABILITY_OUTCOMES"
DEFAULT_SOAK = Path(tempfile.gettempdir()) / "cascade-soak.json"

#: Older cases that inject faults or bad input, run and counted alongside the suite.
EXISTING: dict[str, list[str]] = {
    "fault": [
        "tests/core/test_relay_e2e.py::test_a_dead_server_makes_only_its_target_retry_and_it_streams_again",
        "tests/core/test_relay_e2e.py::test_a_server_that_stops_reading_is_cut_off_without_slowing_the_others",
        "tests/core/test_relay_e2e.py::test_toggling_one_target_leaves_the_others_untouched",
        "tests/core/test_supervisor_ffmpeg.py",
        "tests/platform/test_containment.py",
        "tests/store/test_atomic.py::TestKilledWriter",
        "tests/store/test_atomic.py::TestInterruptedWrites",
    ],
    "bad input": [
        "tests/core/test_relay_e2e.py::test_a_publisher_with_a_wrong_key_is_refused",
        "tests/api/test_fuzz.py",
        "tests/api/test_routes.py::TestBadBodies",
        "tests/api/test_routes.py::TestInvalid",
        "tests/api/test_routes.py::TestNotFound",
        "tests/store/test_atomic.py::TestDamagedFiles",
        "tests/store/test_profiles.py::TestDamage",
        "tests/store/test_codec.py::TestWrongValues",
        "tests/media/test_ffmpeg.py::TestExplicitChoice",
        "tests/media/test_flv.py::TestGarbage",
        "tests/core/test_platforms.py::TestRefusals",
    ],
}


# -- the pytest plugin --------------------------------------------------------------------------


def pytest_runtest_logreport(report: Any) -> None:
    """Append each test's outcome (``nodeid``, ``when``, ``outcome``) to OUTCOMES_ENV."""
    target = os.environ.get(OUTCOMES_ENV)
    if not target or (report.when != "call" and report.passed):
        return
    line = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome}
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


# -- reading ------------------------------------------------------------------------------------


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def existing_counts(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, tuple[int, int]]]:
    """Per area and case group: (passed, run) over the tests it holds."""
    verdict: dict[str, str] = {}  # a test passed if none of its phases did otherwise
    for o in outcomes:
        if o["outcome"] != "passed":
            verdict[o["nodeid"]] = o["outcome"]
        else:
            verdict.setdefault(o["nodeid"], "passed")
    counts: dict[str, dict[str, tuple[int, int]]] = {}
    for area, groups in EXISTING.items():
        for group in groups:
            held = [v for node, v in verdict.items() if node == group or node.startswith(group)]
            if held:
                counts.setdefault(area, {})[group] = (held.count("passed"), len(held))
    return counts


# -- formatting ---------------------------------------------------------------------------------


def _short(text: object, width: int = 70) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= width else line[: width - 1] + "…"


def _witnesses(facts: Any) -> str:
    if not isinstance(facts, dict) or not facts:
        return ""
    gaps = [w.get("max_gap_s", 0) for w in facts.values() if isinstance(w, dict)]
    return f"{len(facts)} untouched targets: 1 session each, largest hole {max(gaps):.3f} s"


def evidence_text(facts: dict[str, Any]) -> str:
    """The evidence of one case in a line: recovery, what was said, what arrived."""
    parts: list[str] = []
    for key, label in (
        ("back_after_s", "back after {} s"),
        ("detected_after_s", "cut off after {} s"),
        ("failed_after_s", "failed after {} s"),
        ("children_gone_after_s", "children gone {} s after"),
        ("relisten_max_s", "listening again within {} s"),
        ("kills", "{} kills"),
        ("tried", "{} tried"),
    ):
        if key in facts:
            value = facts[key]
            if isinstance(value, list):
                value = f"≤ {max(value)}" if value else "-"
            parts.append(label.format(value))
    for key in ("error", "reason", "message", "problem", "outcome"):
        if key in facts:
            parts.append(f"“{_short(facts[key], 60)}”")
            break
    if "answers" in facts:
        parts.append("answers " + ", ".join(f"{k}×{v}" for k, v in facts["answers"].items()))
    for key in ("passthrough", "reencoded", "late_joiner", "profile", "stored_key_kept"):
        if key in facts:
            parts.append(f"{key.replace('_', ' ')}: {_short(facts[key], 50)}")
    if "witnesses" in facts:
        parts.append(_witnesses(facts["witnesses"]))
    if not parts:
        parts = [f"{k}: {_short(v, 40)}" for k, v in list(facts.items())[:2]]
    return "; ".join(p for p in parts if p)


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _load_row(name: str, s: dict[str, Any]) -> list[str]:
    rss = s.get("rss_mb") or [0, 0, 0]
    fds = s.get("fds") or [0, 0, 0]
    bounds = s.get("bounds", {})
    return [
        name,
        str(s.get("targets")),
        str(s.get("minutes")),
        "{:.1f} / {:.1f} / {:.1f} (≤ {})".format(*rss, bounds.get("rss_max_mb", "?")),
        f"{s.get('rss_growth_mb', 0):+.1f} / {s.get('rss_late_growth_mb', 0):+.1f} "
        f"(≤ {bounds.get('rss_late_growth_mb', '?')})",
        "{} / {} / {}".format(*fds),
        f"{s.get('stats_max_gap_s')} s (≤ {bounds.get('stats_max_gap_s', '?')})",
        f"{s.get('largest_hole_s')} s in {s.get('streams_checked')} streams",
        f"{s.get('subscribers')} subscribers, {s.get('toggles')} toggles",
        f"{s.get('agent_cpu_percent')} %",
    ]


def render(
    records: list[dict[str, Any]],
    soak: dict[str, Any] | None = None,
    existing: dict[str, dict[str, tuple[int, int]]] | None = None,
) -> str:
    """The report as Markdown."""
    out: list[str] = ["# Cascade reliability", ""]
    faults = [r for r in records if r["area"] == "fault"]
    bad = [r for r in records if r["area"] == "bad input"]
    load = [r for r in records if r["area"] == "load"]
    out.append(f"## Faults injected: {sum(r['outcome'] == 'passed' for r in faults)} of "
               f"{len(faults)} survived")  # fmt: skip
    out.append("")
    out += _table(
        ["fault", "survived", "evidence"],
        (
            [
                r["case"],
                "yes" if r["outcome"] == "passed" else "**NO**",
                evidence_text(r["evidence"]),
            ]
            for r in faults
        ),
    )
    out += ["", "## Load held", ""]
    rows = [_load_row(r["case"], r["evidence"]) for r in load if r["evidence"]]
    if soak is not None:
        summary = soak.get("summary", {})
        verdict = "held" if not soak.get("missed") else "MISSED: " + "; ".join(soak["missed"])
        rows.append(_load_row(f"soak script ({soak.get('finished_at', '?')}, {verdict})", summary))
    out += _table(
        ["run", "targets", "minutes", "agent RSS MB start / end / max",
         "RSS growth MB whole / 2nd half", "agent fds start / end / max", "stats gap max",
         "largest hole", "API storm", "agent CPU"],
        rows,
    )  # fmt: skip
    out.append("")
    out.append(f"## Bad input tried: {sum(r['outcome'] == 'passed' for r in bad)} of "
               f"{len(bad)} handled")  # fmt: skip
    out.append("")
    out += _table(
        ["input", "handled", "outcome"],
        (
            [
                r["case"],
                "yes" if r["outcome"] == "passed" else "**NO**",
                evidence_text(r["evidence"]),
            ]
            for r in bad
        ),
    )
    if existing:
        out += ["", "## Older cases run alongside", ""]
        rows = [
            [area, group, f"{passed} of {run} passed"]
            for area, groups in existing.items()
            for group, (passed, run) in groups.items()
        ]
        out += _table(["area", "cases", "result"], rows)
    return "\n".join(out) + "\n"


# -- running ------------------------------------------------------------------------------------


def run_suite(results: Path, outcomes: Path, *, existing: bool, extra: list[str]) -> int:
    """``pytest tests/reliability`` (and the older cases) writing records; pytest's code."""
    targets = ["tests/reliability"]
    if existing:
        targets += [case for cases in EXISTING.values() for case in cases]
    env = {**os.environ, RESULTS_ENV: str(results), OUTCOMES_ENV: str(outcomes)}
    argv = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "benchmarks.reliability_report"]
    return subprocess.run([*argv, *extra], cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cascade's reliability report.")
    parser.add_argument("--results", type=Path, help="format this results file; run nothing")
    parser.add_argument("--outcomes", type=Path, help="with --results: older cases' outcomes")
    parser.add_argument("--soak", type=Path, default=DEFAULT_SOAK, help="a soak's JSON figures")
    parser.add_argument("--no-existing", action="store_true", help="run the new suite only")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest")
    args = parser.parse_args(argv)

    code = 0
    if args.results is not None:
        results, outcomes = args.results, args.outcomes
    else:
        folder = Path(tempfile.mkdtemp(prefix="cascade-reliability-"))
        results, outcomes = folder / "results.jsonl", folder / "outcomes.jsonl"
        code = run_suite(results, outcomes, existing=not args.no_existing, extra=args.pytest_args)
    records = read_lines(results)
    if not records:
        print(f"no reliability records in {results}", file=sys.stderr)
        return 2
    soak = json.loads(args.soak.read_text()) if args.soak and args.soak.exists() else None
    counts = existing_counts(read_lines(outcomes)) if outcomes is not None else None
    text = render(records, soak, counts)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    failed = any(r["outcome"] != "passed" for r in records)
    return 1 if failed or code not in (0, 5) else 0


if __name__ == "__main__":
    sys.exit(main())
