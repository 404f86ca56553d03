"""Every benchmark behind docs/performance.md and docs/cost.md, one after another. Run: `make bench`.

Each one is its own script in a fresh interpreter (their cold-start measurements need one), printing its own
report; this only runs them in order and exits non-zero when any of them failed. The full replay is separate
(`make replay`): it takes far longer and checks promises rather than measuring speed.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

# (script, arguments): bench_pyc builds the SAM artifacts first, so it measures the code as it is now.
BENCHMARKS: list[tuple[str, list[str]]] = [
    ("bench_intent.py", []),
    ("bench_webhook.py", []),
    ("bench_entry.py", []),
    ("bench_coldstart.py", []),
    ("bench_batches.py", []),
    ("bench_pyc.py", ["--build"]),
    ("cost_profile.py", []),
    ("bench_inbox_live.py", []),
]


def main() -> int:
    failed: list[str] = []
    for script, arguments in BENCHMARKS:
        print(f"\n=== {script} {' '.join(arguments)}".rstrip(), flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(BENCH / script), *arguments], cwd=BENCH.parent, check=False)
        print(f"=== {script}: exit {result.returncode} after {time.monotonic() - started:.0f} s", flush=True)
        if result.returncode != 0:
            failed.append(script)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        return 1
    print("\nall benchmarks ran")
    return 0


if __name__ == "__main__":
    sys.exit(main())
