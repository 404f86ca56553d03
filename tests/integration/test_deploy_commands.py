"""`make deploy` and `make secret` as a user runs them, against moto's server (AWS_ENDPOINT_URL) instead of AWS.

`make deploy` stops before building when a parameter is missing or wrong (its checks read template.yaml's
Parameters as they are, so a parameter added or renamed there is checked without touching the script);
with DRY_RUN=1 it prints the build and deploy commands it would run. The real `sam deploy` needs
CloudFormation's SAM transform, which moto does not run. `make secret` writes the stack's secret from the
environment or from a prompt that does not echo, and never prints a value.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from local.template import ROOT

TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
# Values for the parameters that have no usable default. A new required parameter fails
# test_every_required_parameter_has_a_sample_here until it has one (and a row in README's table).
SAMPLES = {
    "WhatsAppBusinessAccountId": "102290129340398",
    "WhatsAppPhoneNumberId": "106540352242922",
}
ACCESS_TOKEN = "EAAGsmoke" + uuid.uuid4().hex
APP_SECRET = uuid.uuid4().hex
VERIFY_TOKEN = "verify-" + uuid.uuid4().hex[:12]


def _required_parameters() -> list[str]:
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    from deploy_config import template_parameters

    return [name for name, parameter in template_parameters().items() if parameter.required]


@pytest.fixture(autouse=True)
def _needs_the_tools_venv() -> None:
    if not (ROOT / ".venv-tools" / ".installed").exists():
        pytest.skip("no .venv-tools (make tools)")


def _environment(moto_endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WHATSAPP_", "MAKE", "MFLAGS"))}
    env.update(AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env.pop("AWS_SESSION_TOKEN", None)
    env.update(extra)
    return env


def _make(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv-tools/.installed", *arguments],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _params(**values: str) -> str:
    return "PARAMS=" + " ".join(f"{name}={value}" for name, value in values.items())


def test_every_required_parameter_has_a_sample_here() -> None:
    assert set(_required_parameters()) <= set(SAMPLES)


def test_the_waba_and_phone_number_ids_are_required_parameters() -> None:
    assert {"WhatsAppBusinessAccountId"} <= set(_required_parameters())
    assert any(name.startswith("WhatsAppPhoneNumberId") for name in _required_parameters())


def test_deploy_without_the_required_parameters_stops_before_building_and_names_them(moto_endpoint: str) -> None:
    # When a user runs make deploy outside a terminal without the values only they can give
    result = _make("deploy", "ENV=dev", env=_environment(moto_endpoint))
    # Then it stops before the build, naming each one with its description and how to give it
    assert result.returncode == 2, result.stdout + result.stderr
    for name in _required_parameters():
        assert name in result.stderr
    assert 'PARAMS="' in result.stderr
    assert "sam build" not in result.stdout + result.stderr
    assert "$ " not in result.stdout


def test_deploy_refuses_a_value_cloudformation_would_refuse(moto_endpoint: str) -> None:
    values = {**SAMPLES, "WhatsAppBusinessAccountId": "WABA-1022", "LogLevel": "LOUD"}
    result = _make("deploy", "ENV=dev", _params(**values), env=_environment(moto_endpoint))
    assert result.returncode == 2
    assert "WhatsAppBusinessAccountId='WABA-1022': must match ^[0-9]+$" in result.stderr
    assert "LogLevel='LOUD': must be one of DEBUG, INFO, WARNING, ERROR" in result.stderr


def test_deploy_refuses_a_parameter_the_template_does_not_have(moto_endpoint: str) -> None:
    result = _make("deploy", "ENV=dev", _params(**SAMPLES, WhatsAppNumber="1"), env=_environment(moto_endpoint))
    assert result.returncode == 2
    assert "not parameters of template.yaml: WhatsAppNumber" in result.stderr


def test_deploy_with_broken_credentials_says_how_to_fix_them(moto_endpoint: str) -> None:
    env = _environment("http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1")
    result = _make("deploy", "ENV=dev", _params(**SAMPLES), env=env)
    assert result.returncode == 2
    assert "aws configure" in result.stderr


def test_deploy_dry_run_checks_then_prints_build_and_deploy_with_every_value(moto_endpoint: str) -> None:
    # Given the dev environment's own choices in samconfig.toml and the required values in PARAMS
    result = _make("deploy", "ENV=dev", "DRY_RUN=1", _params(**SAMPLES), env=_environment(moto_endpoint))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Then the checks report the account (moto's), the region and a first deploy of whatsapp-crm-dev
    assert any(line.startswith("ok  AWS account 123456789012") and "il-central-1" in line for line in lines)
    assert "ok  stack whatsapp-crm-dev: new, first deploy" in lines
    # And the build comes before the deploy, which carries samconfig's values and the given ones together
    commands = [line for line in lines if line.startswith("$ ")]
    assert len(commands) == 2
    assert commands[0].endswith("build")
    assert "sam deploy --config-env dev --parameter-overrides" in commands[1]
    for name, value in {**SAMPLES, "LogLevel": "DEBUG", "LogRetentionDays": "7"}.items():
        assert f"{name}={value}" in commands[1]
    # Outside a terminal there is nobody to answer --guided's questions
    assert "--guided" not in commands[1]


def test_deploy_of_prod_uses_the_prod_environment(moto_endpoint: str) -> None:
    result = _make("deploy", "ENV=prod", "DRY_RUN=1", _params(**SAMPLES), env=_environment(moto_endpoint))
    assert result.returncode == 0, result.stderr
    assert "ok  stack whatsapp-crm: new, first deploy" in result.stdout
    assert "--config-env prod" in result.stdout
    assert "LogRetentionDays=90" in result.stdout


def test_an_unknown_environment_is_named(moto_endpoint: str) -> None:
    result = _make("deploy", "ENV=staging", env=_environment(moto_endpoint))
    assert result.returncode == 2
    assert "no environment 'staging': use ENV= one of dev, prod" in result.stderr


# -- make secret ------------------------------------------------------------------------------------------


@pytest.fixture
def deployed(moto_endpoint: str) -> Iterator[dict[str, Any]]:
    """A stack named as samconfig's dev environment, whose WhatsAppSecretArn output names a secret shaped as
    template.yaml's (a generated verify_token, empty access_token and app_secret)."""
    import boto3

    session = boto3.session.Session(region_name="il-central-1")
    secrets = session.client("secretsmanager", endpoint_url=moto_endpoint)
    generated = "generated" + uuid.uuid4().hex
    arn = secrets.create_secret(
        Name=f"WhatsAppSecret-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps({"access_token": "", "app_secret": "", "verify_token": generated}),
    )["ARN"]
    cloudformation = session.client("cloudformation", endpoint_url=moto_endpoint)
    body = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"WhatsAppSecretArn": {"Value": arn}},
    }
    cloudformation.create_stack(StackName="whatsapp-crm-dev", TemplateBody=json.dumps(body))
    yield {"arn": arn, "secrets": secrets, "generated": generated}
    cloudformation.delete_stack(StackName="whatsapp-crm-dev")


def _secret(deployed: dict[str, Any]) -> dict[str, str]:
    return dict(json.loads(deployed["secrets"].get_secret_value(SecretId=deployed["arn"])["SecretString"]))


def test_secret_from_the_environment_fills_the_stack_secret_and_prints_no_value(
    moto_endpoint: str, deployed: dict[str, Any]
) -> None:
    # Given the token and the app secret in the environment, the verify token left to the stack's
    env = _environment(moto_endpoint, WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN, WHATSAPP_APP_SECRET=APP_SECRET)
    result = _make("secret", "ENV=dev", env=env)
    # Then the secret holds them and keeps its generated verify token
    assert result.returncode == 0, result.stderr
    assert _secret(deployed) == {
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": deployed["generated"],
    }
    # And nothing printed holds a value
    output = result.stdout + result.stderr
    for value in (ACCESS_TOKEN, APP_SECRET, deployed["generated"]):
        assert value not in output
    assert "set   access_token (from WHATSAPP_ACCESS_TOKEN)" in output
    assert "kept  verify_token" in output
    # And make verify-token prints the verify token alone, for Meta's webhook settings
    shown = _make("verify-token", "ENV=dev", env=env)
    assert shown.stdout.strip() == deployed["generated"]


def test_secret_without_values_outside_a_terminal_writes_nothing_and_names_the_variables(
    moto_endpoint: str, deployed: dict[str, Any]
) -> None:
    result = _make("secret", "ENV=dev", env=_environment(moto_endpoint))
    assert result.returncode == 2
    assert "WHATSAPP_ACCESS_TOKEN" in result.stderr and "WHATSAPP_APP_SECRET" in result.stderr
    assert _secret(deployed)["access_token"] == ""


def test_secret_refuses_an_app_secret_that_is_not_meta_s_form(moto_endpoint: str, deployed: dict[str, Any]) -> None:
    env = _environment(moto_endpoint, WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN, WHATSAPP_APP_SECRET="my app secret")
    result = _make("secret", "ENV=dev", env=env)
    assert result.returncode == 2
    assert "app_secret from WHATSAPP_APP_SECRET contains white space" in result.stderr
    assert "my app secret" not in result.stdout + result.stderr
    assert _secret(deployed)["app_secret"] == ""


def test_secret_before_the_stack_exists_says_to_deploy_first(moto_endpoint: str) -> None:
    result = _make("secret", "ENV=prod", env=_environment(moto_endpoint, WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN))
    assert result.returncode == 2
    assert "no stack whatsapp-crm in il-central-1: deploy it first (make deploy)" in result.stderr


def _converse(command: list[str], env: dict[str, str], answers: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run `command` on a terminal of its own, answer each prompt (a line ending in ': '), return what it showed."""
    terminal, child_side = pty.openpty()
    # A new session with the pty as stdin: getpass turns the echo off on it, as on a user's terminal.
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdin=child_side, stdout=child_side, stderr=child_side, start_new_session=True
    )
    os.close(child_side)
    shown = b""
    pending = list(answers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        shown += chunk
        if pending and shown.rstrip(b" ").endswith(b":"):
            os.write(terminal, pending.pop(0).encode() + b"\n")
    code = process.wait(timeout=30)
    os.close(terminal)
    return code, shown.decode("utf-8", errors="replace")


def test_secret_in_a_terminal_asks_without_echoing(moto_endpoint: str, deployed: dict[str, Any]) -> None:
    # Given a terminal and no values in the environment
    env = _environment(moto_endpoint)
    command = [str(TOOLS_PYTHON), str(ROOT / "scripts" / "put_secret.py"), "--env", "dev"]
    # When the user types the token and the app secret and presses Enter for the verify token
    code, shown = _converse(command, env, [ACCESS_TOKEN, APP_SECRET, ""])
    # Then they are stored, the generated verify token is kept, and the terminal never showed what was typed
    assert code == 0, shown
    assert _secret(deployed) == {
        "access_token": ACCESS_TOKEN,
        "app_secret": APP_SECRET,
        "verify_token": deployed["generated"],
    }
    assert "System-user access token" in shown and "(Enter keeps the current one)" in shown
    for value in (ACCESS_TOKEN, APP_SECRET, deployed["generated"]):
        assert value not in shown
