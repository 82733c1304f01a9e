"""Run every harness for a while and report what each did; ``make fuzz`` calls this.

    python -m fuzz.run [--seconds N] [--dir .fuzz] [HARNESS ...]

Each harness runs for ``--seconds`` (by default 30 minutes shared equally), its corpus in
``<dir>/corpus/<harness>/`` (seeded by fuzz.seeds, grown by libFuzzer), findings written to
``<dir>/crashes/<harness>/`` and its output to ``<dir>/logs/<harness>.log``. A harness that
finds a crash is started again on its corpus for the rest of its time, up to MAX_CRASHES.
The table goes to stdout and ``<dir>/summary.txt``; the exit status is 1 if anything crashed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOTAL_SECONDS = 1800
# -max_len per harness: room for the largest real input plus what mutations add to it.
HARNESSES = {
    "receive": 4096,
    "codec": 4096,
    "joinstring": 1100,
    "tokens": 64,
    "names": 300,
    "csr": 6000,
    "delivery": 8192,
    "ticket": 17000,  # past MAX_TICKET_BYTES, so the size cap is fuzzed too
}
MAX_CRASHES = 5
INPUT_TIMEOUT_S = 25  # one input running longer than this is a hang, and a finding
RSS_LIMIT_MB = 2048
ARTIFACTS = ("crash-", "timeout-", "oom-", "leak-")

_STATUS = re.compile(r"^#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)", re.M)
_EXECUTED = re.compile(r"^stat::number_of_executed_units: (\d+)", re.M)
_WRITTEN = re.compile(r"Test unit written to (\S+)")


@dataclass
class Result:
    harness: str
    seconds: float = 0.0
    executions: int = 0
    cov: int = 0
    ft: int = 0
    corpus: int = 0
    crashes: list[tuple[str, str]] = field(default_factory=list)  # (file, what went wrong)


def what_went_wrong(output: str) -> str:
    """The exception line of an uncaught Python exception, or libFuzzer's own verdict."""
    if "Uncaught Python exception" in output:
        block = output.split("Uncaught Python exception", 1)[1]
        lines = [line for line in block.splitlines()[1:] if line.strip()]
        trace = []
        for line in lines:
            if line.startswith(("==", "MS:", "INFO:")):
                break
            trace.append(line.strip())
        return trace[-1] if trace else "uncaught Python exception"
    for verdict in ("timeout", "out-of-memory", "deadly signal", "leak"):
        if f"libFuzzer: {verdict}" in output:
            return verdict
    return "libFuzzer stopped (see the log)"


def run_once(harness: str, dirs: dict[str, Path], seconds: int, log: Path) -> tuple[int, str]:
    command = [
        sys.executable,
        "-m",
        f"fuzz.{harness}",
        str(dirs["corpus"]),
        f"-max_total_time={seconds}",
        f"-max_len={HARNESSES[harness]}",
        f"-timeout={INPUT_TIMEOUT_S}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-artifact_prefix={dirs['crashes']}/",
        "-print_final_stats=1",
    ]
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    text = log.read_text(errors="replace")
    return done.returncode, text[text.rfind("\n$ ") :]


def fuzz(harness: str, seconds: int, base: Path) -> Result:
    dirs = {kind: base / kind / harness for kind in ("corpus", "crashes")}
    for directory in dirs.values():
        directory.mkdir(parents=True, exist_ok=True)
    log = base / "logs" / f"{harness}.log"
    log.write_text("")
    result = Result(harness)
    start = time.monotonic()
    while len(result.crashes) < MAX_CRASHES:
        left = int(seconds - (time.monotonic() - start))
        if left < 1:
            break
        status, output = run_once(harness, dirs, left, log)
        executed = _EXECUTED.findall(output) or [m[0] for m in _STATUS.findall(output)[-1:]]
        result.executions += int(executed[-1]) if executed else 0
        for _, cov, ft in _STATUS.findall(output):
            result.cov, result.ft = max(result.cov, int(cov)), max(result.ft, int(ft))
        if status == 0:
            break
        written = _WRITTEN.findall(output)
        found = written[-1] if written else f"(no input saved; see {log})"
        result.crashes.append((found, what_went_wrong(output)))
    result.seconds = time.monotonic() - start
    result.corpus = sum(1 for _ in dirs["corpus"].iterdir())
    return result


def table(results: list[Result]) -> str:
    header = ("harness", "seconds", "executions", "exec/s", "corpus", "cov", "ft", "crashes")
    rows = [
        (
            r.harness,
            f"{r.seconds:.0f}",
            str(r.executions),
            f"{r.executions / r.seconds:.0f}" if r.seconds else "0",
            str(r.corpus),
            str(r.cov),
            str(r.ft),
            str(len(r.crashes)),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *rows]
    ]
    found = [(r.harness, path, why) for r in results for path, why in r.crashes]
    if found:
        lines += ["", "Findings (replay one with: .venv/bin/python -m fuzz.<harness> <file>):"]
        lines += [f"  {harness}: {path}\n      {why}" for harness, path, why in found]
    else:
        lines += ["", "No findings."]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz.run", description=__doc__.split("\n")[0])
    parser.add_argument("harnesses", nargs="*", metavar="HARNESS", help=", ".join(HARNESSES))
    parser.add_argument("--seconds", type=int, help="per harness (default: 30 min in all)")
    parser.add_argument("--dir", type=Path, default=ROOT / ".fuzz")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.harnesses) - set(HARNESSES))
    if unknown:
        parser.error(f"no harness {', '.join(unknown)}; choose from {', '.join(HARNESSES)}")
    chosen = args.harnesses or list(HARNESSES)
    seconds = args.seconds or TOTAL_SECONDS // len(chosen)
    (args.dir / "logs").mkdir(parents=True, exist_ok=True)
    with (args.dir / "logs" / "seeds.log").open("w") as out:
        subprocess.run(
            [sys.executable, "-m", "fuzz.seeds", str(args.dir / "corpus")],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
        )
    results = []
    for harness in chosen:
        print(f"fuzzing {harness} for {seconds} s (log: {args.dir / 'logs' / harness}.log)")
        sys.stdout.flush()
        results.append(fuzz(harness, seconds, args.dir))
    summary = table(results)
    (args.dir / "summary.txt").write_text(summary)
    print(summary, end="")
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
