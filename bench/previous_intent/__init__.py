"""The intent engine as it was on main at commit 75749ac (2026-11-26), before the learned model: frozen here,
unchanged but for its import path, so that bench/bench_intent.py can score it on the same files as the
current engine. Never edit it; it is the "previous engine" column of docs/performance.md."""
