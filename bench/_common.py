"""Shared bits for the benchmarks: paths, the venv's Python, and small statistics."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAYER = ROOT / "layers" / "whatsapp"


def ensure_paths() -> None:
    for path in (str(ROOT), str(LAYER)):
        if path not in sys.path:
            sys.path.insert(0, path)


def print_and_save(results: dict[str, Any], path: Path | None) -> None:
    """A benchmark's results as indented JSON on stdout, and in `path` too when one is given (--json)."""
    text = json.dumps(results, indent=2)
    print(text)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def fresh_process_seconds(code: str, runs: int, env: dict[str, str] | None = None) -> list[float]:
    """Wall time of `code` measured inside fresh interpreters (startup itself excluded)."""
    timer = "import time, sys; t0 = time.perf_counter()\n" + code + "\nsys.stdout.write(repr(time.perf_counter() - t0))"
    samples = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", timer], check=True, capture_output=True, text=True, env=env, cwd=ROOT
        ).stdout
        samples.append(float(output.strip().splitlines()[-1]))
    return samples
