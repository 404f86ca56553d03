"""The README's run command (and `make demo`) from a clean `git clone`: started, used, stopped with Ctrl-C.

The clone reuses this checkout's venv (`make VENV=... -o <venv>/.installed`): creating a venv needs the
package index, and `make test` (CI's command) already builds the venv through the same `venv` target that
`make run` depends on. What this test proves is the rest: that a fresh clone holds everything the run
command needs (committed files only), that the Makefile target starts the stack, and that Ctrl-C in the
terminal (SIGINT to the whole foreground process group) leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from e2e.harness import StackProcess, alive, clean_environment, descendants, eventually, free_port, http, port_refuses
from local.defaults import LOCAL_VERIFY_TOKEN, PORT_ENV
from local.template import ROOT

VENV = ROOT / ".venv"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs git and make")
    if not (VENV / ".installed").exists():
        pytest.skip("no built venv to reuse (run `make venv`)")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    return target


def _make(target: str) -> list[str]:
    return ["make", "--no-print-directory", target, f"VENV={VENV}", "-o", f"{VENV}/.installed"]


def test_make_run_from_a_clean_clone_serves_the_webhook_and_stops_on_ctrl_c(clone: Path) -> None:
    # Given the README's run command
    readme = (clone / "README.md").read_text(encoding="utf-8")
    assert "`make run`" in readme
    port = free_port()
    env = clean_environment(**{PORT_ENV: str(port)})
    # Under `make test` this runs inside make: a fresh terminal's make would not inherit its flags.
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    # When it runs in a fresh clone
    process = subprocess.Popen(
        _make("run"), cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    stack = StackProcess(process)
    try:
        stack.wait_ready()
        url = f"http://127.0.0.1:{port}"
        children = descendants(process.pid)
        # Then Meta's handshake works on the advertised port
        answer = http("GET", f"{url}/webhook?hub.mode=subscribe&hub.verify_token={LOCAL_VERIFY_TOKEN}&hub.challenge=7")
        assert (answer.status, answer.body) == (200, b"7")
        # And the demo, the README's second command, plays its conversation against it
        demo = subprocess.run(_make("demo"), cwd=clone, env=env, capture_output=True, timeout=180)
        assert demo.returncode == 0, demo.stdout.decode() + demo.stderr.decode()
        assert "GET /conversations/" in demo.stdout.decode()
        # When Ctrl-C reaches the terminal's foreground process group
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        # Then every process it started is gone and the port is free
        eventually("the stack's processes to exit", lambda: None if any(alive(pid) for pid in children) else [], 30)
        assert port_refuses(url)
        assert "nothing left running" in stack.log()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
