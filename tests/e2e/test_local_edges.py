"""Issue 10, point 9 as behaviour: the local stack's HTTP server under a burst, on a taken port, and
scripts/sign_webhook.py against a stack that is not running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.http_api import LocalHttpApi, PortInUseError
from local.template import ROOT


def _connects(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def test_a_burst_of_50_connections_is_queued_not_refused() -> None:
    # Given the stack's HTTP server, bound but busy (not accepting yet, as when every thread is serving)
    api = LocalHttpApi([], lambda function, event: None, port=0)
    try:
        # When 50 clients connect at once
        with ThreadPoolExecutor(max_workers=50) as pool:
            connected = list(pool.map(_connects, [api.port] * 50))
        # Then every connection is queued in the listen backlog (socketserver's default of 5 dropped most)
        assert sum(connected) == 50
    finally:
        api.stop()


@pytest.fixture
def taken_port() -> Any:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    yield holder.getsockname()[1]
    holder.close()


def test_a_taken_port_is_named_with_the_way_out(taken_port: int) -> None:
    with pytest.raises(PortInUseError) as refused:
        LocalHttpApi([], lambda function, event: None, port=taken_port)
    assert f"port {taken_port}" in str(refused.value)
    assert "LOCAL_STACK_PORT" in str(refused.value)


def test_make_run_on_a_taken_port_says_which_and_how_to_choose_another(taken_port: int) -> None:
    environment = {**os.environ, "LOCAL_STACK_PORT": str(taken_port)}
    finished = subprocess.run(
        [sys.executable, "-m", "local", "--quiet"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 1
    assert f"port {taken_port}" in finished.stderr and "LOCAL_STACK_PORT" in finished.stderr
    assert "Traceback" not in finished.stderr


def test_sign_webhook_against_a_stack_that_is_not_running_is_one_clear_line(taken_port: int) -> None:
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()  # nothing listens there now
    finished = subprocess.run(
        [sys.executable, "scripts/sign_webhook.py", "--text", "hi", "--url", f"http://127.0.0.1:{port}/webhook"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.count("\n") == 1 and "make run" in finished.stderr
    assert "Traceback" not in finished.stderr
