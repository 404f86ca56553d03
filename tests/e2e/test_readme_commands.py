"""A newcomer's first hour, from a clean `git clone`, as the README tells it: `make run`, every command of its
"Try:" list and of the README's own, `make demo`, `make smoke` against the local stack, then Ctrl-C.

The clone reuses this checkout's venvs (`make VENV=... TOOLS=... -o <venv>/.installed`): creating a venv
needs the package index, and `make test` (CI's command) already builds both through the same `venv` and
`tools` targets. What this test proves is the rest: that a fresh clone holds everything the commands need
(committed files only), that each command does what its comment says (fresh timestamps: the replayed
event gets its auto-reply), and that Ctrl-C in the terminal (SIGINT to the whole foreground process group)
leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from e2e.harness import StackProcess, alive, clean_environment, descendants, eventually, free_port, http, port_refuses
from local.defaults import PORT_ENV
from local.stack import DEMO_LEAD
from local.template import ROOT

VENV = ROOT / ".venv"
TOOLS = ROOT / ".venv-tools"
SECOND_LEAD = "972525550002"


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    if shutil.which("git") is None or shutil.which("make") is None:
        pytest.skip("needs git and make")
    if not (VENV / ".installed").exists() or not (TOOLS / ".installed").exists():
        pytest.skip("no built venvs to reuse (run `make venv tools`)")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True)
    # Where `make run` would have made it, for the README's `.venv/bin/python ...` lines.
    (target / ".venv").symlink_to(VENV)
    return target


def _make(target: str, *arguments: str) -> list[str]:
    reuse = [f"VENV={VENV}", "-o", f"{VENV}/.installed", f"TOOLS={TOOLS}", "-o", f"{TOOLS}/.installed"]
    return ["make", "--no-print-directory", target, *reuse, *arguments]


def _shell(line: str, clone: Path, env: dict[str, str]) -> str:
    """Run one line as a user pastes it (bash; a trailing `# comment` is a comment); its output."""
    result = subprocess.run(["bash", "-c", line], cwd=clone, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{line}\n{result.stdout}{result.stderr}"
    return result.stdout


def _try_list(stack: StackProcess) -> list[str]:
    """The commands `make run` printed under "Try:"."""
    eventually("the Try list", lambda: True if "make demo" in stack.log(400) else None, 30)
    lines = stack.log(400).splitlines()
    start = lines.index("Try:") + 1
    # The list ends at its blank line, or where a function's log line (printed as it comes) interrupts it.
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("  ")), len(lines))
    return [line.strip() for line in lines[start:end]]


def _readme_try_block(readme: str, port: int) -> list[str]:
    """The README's "Try it" block, continuation lines joined, on the test's port."""
    block = readme.split("Try it (the stack prints these with the right port):", 1)[1].split("```")[1]
    text = block.replace("\\\n", " ").replace("127.0.0.1:3000", f"127.0.0.1:{port}")
    return [line for line in text.splitlines() if line.strip()]


def _replied_to(url: str, *leads: str) -> bool | None:
    sent = http("GET", f"{url}/_local/graph/requests").json()["requests"]
    bodies = [request["body"] for request in sent if isinstance(request["body"], dict)]  # template listings: None
    recipients = {str(body.get("to", "")).lstrip("+") for body in bodies if body.get("type")}
    return True if set(leads) <= recipients else None


def _check_try_output(command: str, output: str) -> None:
    """What each command of the Try list says it does, seen in its output."""
    if "hub.challenge=42" in command:
        assert output == "42"
    elif "sign_webhook.py" in command:
        assert output.startswith("200 "), output
    elif "/_local/graph/requests" in command:
        # the replayed event (re-stamped to now) and the English lead were both answered
        requests = json.loads(output)["requests"]
        recipients = {request["body"].get("to") for request in requests if isinstance(request["body"], dict)}
        assert {f"+{DEMO_LEAD}", f"+{SECOND_LEAD}"} <= recipients
    elif "-X POST" in command and "/messages" in command:
        assert json.loads(output)["status"] == "accepted"
    elif "/conversations/" in command:
        directions = {message["direction"] for message in json.loads(output)["messages"]}
        assert directions == {"inbound", "outbound"}
    elif "/health" in command:
        assert json.loads(output)["status"] == "healthy"


def test_the_first_hour_from_a_clean_clone_as_the_readme_tells_it(clone: Path) -> None:
    # Given the README's commands
    readme = (clone / "README.md").read_text(encoding="utf-8")
    assert "`make run`" in readme and "make smoke URL=http://127.0.0.1:3000" in readme
    port = free_port()
    env = clean_environment(**{PORT_ENV: str(port)})
    # Under `make test` this runs inside make: a fresh terminal's make would not inherit its flags.
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)
    # When `make run` runs in a fresh clone
    process = subprocess.Popen(
        _make("run"), cwd=clone, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    stack = StackProcess(process)
    try:
        stack.wait_ready()
        url = f"http://127.0.0.1:{port}"
        children = descendants(process.pid)
        # Then every command of its Try list does what its comment says
        commands = _try_list(stack)
        assert not any("--keep-timestamp" in command for command in commands)
        for command in commands:
            if command.endswith("end to end") and "make demo" in command:
                continue  # played below, through the Makefile with the reused venvs
            if "/_local/graph/requests" in command:
                # The replies come through the queue: wait for both before reading them as the user would
                eventually("the auto-replies", lambda: _replied_to(url, DEMO_LEAD, SECOND_LEAD), 60)
            _check_try_output(command, _shell(command, clone, env))
        # And so does the README's own block (the same event again: stored once, answered 200)
        for line in _readme_try_block(readme, port):
            output = _shell(line, clone, env)
            if "sign_webhook.py" in line and "--curl" not in line:
                assert output.startswith("200 "), (line, output)
        # And the demo, the README's second command, plays its conversation against it
        demo = subprocess.run(_make("demo"), cwd=clone, env=env, capture_output=True, timeout=180)
        assert demo.returncode == 0, demo.stdout.decode() + demo.stderr.decode()
        assert "GET /conversations/" in demo.stdout.decode()
        # And `make smoke` passes against the local stack (the same script as against AWS, nothing signed)
        smoke = subprocess.run(
            _make("smoke", f"URL={url}", "TO=+972525550003"), cwd=clone, env=env, capture_output=True, timeout=180
        )
        report = smoke.stdout.decode()
        assert smoke.returncode == 0, report + smoke.stderr.decode()
        checks = [line.split()[:2] for line in report.splitlines() if line.startswith(("ok", "FAIL", "skip"))]
        assert checks == [["ok", "handshake"], ["ok", "webhook"], ["ok", "health"], ["ok", "read"], ["ok", "send"]]
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
