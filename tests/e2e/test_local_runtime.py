"""The local stack's function workers: each function instance is a process with exactly its own environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from local.runtime import FunctionPool, function_specs, worker_environment
from local.template import CreatedResources, load_template

PROBE = "tests/data/local_functions/probe/"
TEMPLATE = f"""
Transform: AWS::Serverless-2016-10-31
Globals:
  Function:
    Runtime: python3.13
    Timeout: 5
    Environment:
      Variables:
        TABLE_NAME: !Ref Table
Resources:
  ProbeA:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: app.environment
      Environment:
        Variables:
          PROBE_VALUE: a
  ProbeB:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: app.environment
      Environment:
        Variables:
          PROBE_VALUE: b
  Sleeper:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: app.sleep
      Timeout: 1
  Failing:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: app.fail
  Crashing:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: app.crash
  Broken:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: {PROBE}
      Handler: missing_module.handler
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def pools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, FunctionPool]]:
    # A developer's shell with a real AWS profile must not leak into a function.
    monkeypatch.setenv("AWS_PROFILE", "production")
    template_path = tmp_path / "template.yaml"
    template_path.write_text(TEMPLATE, encoding="utf-8")
    template = load_template(template_path)
    specs = function_specs(template, CreatedResources(refs={"Table": "local-table"}), template_path=template_path)
    created = {
        logical_id: FunctionPool(spec, worker_environment(spec, "http://127.0.0.1:9"), log=lambda _id, _line: None)
        for logical_id, spec in specs.items()
    }
    yield created
    for pool in created.values():
        pool.stop()


def test_each_function_sees_only_its_own_environment(pools: dict[str, FunctionPool]) -> None:
    # Given two functions with the same code and different template environments
    # When both are invoked at the same time
    with ThreadPoolExecutor(max_workers=2) as executor:
        a, b = executor.map(lambda name: pools[name].invoke({"echo": name}), ["ProbeA", "ProbeB"])
    # Then each saw its own variables, the Globals resolved to local resources, and nothing from the shell
    assert a.ok and b.ok
    assert (a.payload["probe"], b.payload["probe"]) == ("a", "b")
    assert a.payload["table"] == b.payload["table"] == "local-table"
    assert a.payload["shell_secret"] is None
    assert a.payload["pid"] != b.payload["pid"]
    assert a.payload["function_name"] == "ProbeA"
    assert a.payload["echo"] == "ProbeA"


def test_an_instance_keeps_its_module_state_between_invocations(pools: dict[str, FunctionPool]) -> None:
    first = pools["ProbeA"].invoke({})
    second = pools["ProbeA"].invoke({})
    assert first.init_ms is not None and second.init_ms is None  # cold, then warm
    assert (first.payload["invocations"], second.payload["invocations"]) == (1, 2)
    assert first.payload["pid"] == second.payload["pid"]


def test_a_timeout_ends_the_instance_and_the_next_call_cold_starts(pools: dict[str, FunctionPool]) -> None:
    # Given a function with a 1 s timeout that is asked to sleep for 10 s
    timed_out = pools["Sleeper"].invoke({"seconds": 10})
    # Then the invocation fails the way Lambda reports it, and its process is gone
    assert timed_out.error is not None
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert pools["Sleeper"].pids() == []
    # And the next invocation runs in a fresh instance
    after = pools["Sleeper"].invoke({"seconds": 0})
    assert after.ok
    assert after.init_ms is not None


def test_a_function_error_is_reported_and_the_instance_survives(pools: dict[str, FunctionPool]) -> None:
    first = pools["Failing"].invoke({})
    pids = pools["Failing"].pids()
    second = pools["Failing"].invoke({})
    assert first.error is not None and second.error is not None
    assert first.error["errorType"] == "ValueError"
    assert first.error["errorMessage"] == "the probe was asked to fail"
    assert pools["Failing"].pids() == pids


def test_a_crash_costs_one_invocation(pools: dict[str, FunctionPool]) -> None:
    crashed = pools["Crashing"].invoke({})
    assert crashed.error is not None
    assert crashed.error["errorType"] == "Runtime.ExitError"
    assert pools["Crashing"].pids() == []


def test_an_import_error_is_reported_as_an_init_error(pools: dict[str, FunctionPool]) -> None:
    # Given a function whose handler module does not exist
    # When it is warmed at start, and then invoked
    at_start = pools["Broken"].warm()
    invoked = pools["Broken"].invoke({})
    # Then both report Lambda's init error, naming the module
    assert at_start is not None and invoked.error is not None
    assert at_start["errorType"] == invoked.error["errorType"] == "Runtime.ImportModuleError"
    assert "missing_module" in at_start["errorMessage"]


def test_stop_leaves_no_process_behind(pools: dict[str, FunctionPool]) -> None:
    pools["ProbeA"].invoke({})
    pools["ProbeB"].invoke({})
    pids = pools["ProbeA"].pids() + pools["ProbeB"].pids()
    assert len(pids) == 2
    pools["ProbeA"].stop()
    pools["ProbeB"].stop()
    assert not any(_alive(pid) for pid in pids)
