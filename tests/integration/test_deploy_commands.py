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
from pathlib import Path
from typing import Any

import pytest

from local.template import ROOT

TOOLS_PYTHON = ROOT / ".venv-tools" / "bin" / "python"
# Values for the parameters that have no usable default. A new required parameter fails
# test_every_required_parameter_has_a_sample_here until it has one (and a row in README's table).
SAMPLES = {
    "WhatsAppBusinessAccountId": "102290129340398",
    "WhatsAppPhoneNumberIds": "106540352242922",
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
    assert any(name.startswith("WhatsAppPhoneNumberIds") for name in _required_parameters())


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


def test_secret_puts_the_access_token_in_its_own_secret_out_of_the_webhooks_reach(
    moto_endpoint: str, deployed: dict[str, Any]
) -> None:
    # Given a stack with the access token's own secret (issue 10), whose first secret still holds an old token
    import boto3

    session = boto3.session.Session(region_name="il-central-1")
    secrets = session.client("secretsmanager", endpoint_url=moto_endpoint)
    token_arn = secrets.create_secret(
        Name=f"WhatsAppAccessTokenSecret-{uuid.uuid4().hex[:8]}", SecretString=json.dumps({"access_token": ""})
    )["ARN"]
    secrets.put_secret_value(
        SecretId=deployed["arn"],
        SecretString=json.dumps({"access_token": "EAAG-old", "app_secret": "", "verify_token": deployed["generated"]}),
    )
    cloudformation = session.client("cloudformation", endpoint_url=moto_endpoint)
    cloudformation.delete_stack(StackName="whatsapp-crm-dev")
    body = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {
            "WhatsAppSecretArn": {"Value": deployed["arn"]},
            "WhatsAppAccessTokenSecretArn": {"Value": token_arn},
        },
    }
    cloudformation.create_stack(StackName="whatsapp-crm-dev", TemplateBody=json.dumps(body))
    # When make secret runs with the token and the app secret
    env = _environment(moto_endpoint, WHATSAPP_ACCESS_TOKEN=ACCESS_TOKEN, WHATSAPP_APP_SECRET=APP_SECRET)
    result = _make("secret", "ENV=dev", env=env)
    # Then the token is in its own secret only, and the webhook's secret holds what the webhook needs
    assert result.returncode == 0, result.stderr
    token = json.loads(secrets.get_secret_value(SecretId=token_arn)["SecretString"])
    assert token == {"access_token": ACCESS_TOKEN}
    assert _secret(deployed) == {"app_secret": APP_SECRET, "verify_token": deployed["generated"]}
    assert ACCESS_TOKEN not in result.stdout + result.stderr


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
    """Run `command` on a terminal of its own, answer each prompt (ending in ': ' or ' = '), return what it showed."""
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
        if pending and shown.rstrip(b" ").endswith((b":", b"=")):
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


# -- make smoke against a deployed stack --------------------------------------------------------------------


class FakeApi:
    """API Gateway and the functions as `make smoke` sees them: the webhook checks the verify token and Meta's
    signature; every other route refuses a request whose SigV4 signature botocore does not reproduce."""

    def __init__(self, app_secret: str, verify_token: str) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.app_secret, self.verify_token = app_secret, verify_token
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.signed_scopes: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: Any) -> None:
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, answer = api.handle(method, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self._answer(status, answer)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def sigv4_valid(self, method: str, path: str, headers: dict[str, str], body: bytes) -> bool:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        authorization = headers.get("authorization", "")
        fields = dict(part.strip().split("=", 1) for part in authorization.removeprefix("AWS4-HMAC-SHA256 ").split(","))
        if "Credential" not in fields:
            return False
        access_key, day, region, service, _ = fields["Credential"].split("/")
        self.signed_scopes.append(f"{region}/{service}")
        signed = {name: headers[name] for name in fields["SignedHeaders"].split(";")}
        request = AWSRequest(method=method, url=self.url + path, data=body or None, headers=signed)
        request.context["timestamp"] = headers["x-amz-date"]
        signer = SigV4Auth(Credentials(access_key, "testing", headers.get("x-amz-security-token")), service, region)
        expected = signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)
        return bool(expected == fields["Signature"])

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        from urllib.parse import parse_qs, urlsplit

        from whatsapp_crm.signature import sign

        parts = urlsplit(path)
        if parts.path == "/webhook" and method == "GET":
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            if query.get("hub.verify_token") != self.verify_token:
                return 403, {"error": {"code": "verification_failed", "message": "verify token mismatch"}}
            return 200, query["hub.challenge"].encode()
        if parts.path == "/webhook":
            if headers.get("x-hub-signature-256") != sign(body, self.app_secret):
                return 403, {"error": {"code": "signature_mismatch", "message": "bad signature"}}
            for entry in json.loads(body)["entry"]:
                for change in entry["changes"]:
                    for message in change["value"].get("messages", []):
                        self.messages.setdefault(message["from"], []).append({"id": message["id"], "status": None})
            return 200, {"status": "ok"}
        if not self.sigv4_valid(method, path, headers, body):
            return 403, {"message": "Forbidden"}
        if parts.path == "/health":
            checks = {"table": {"ok": True}, "secret": {"ok": bool(self.app_secret)}}
            return 200, {"status": "healthy" if all(c["ok"] for c in checks.values()) else "degraded", "checks": checks}
        if parts.path == "/messages":
            to = json.loads(body)["to"].lstrip("+")
            message_id = f"wamid.OUT{len(self.messages)}"
            self.messages.setdefault(to, []).append({"id": message_id, "status": "sent"})
            return 200, {"message_id": message_id, "wa_id": to, "status": "accepted"}
        wa_id = parts.path.split("/")[2]
        return 200, {"wa_id": wa_id, "messages": self.messages.get(wa_id, [])}


@pytest.fixture
def api(deployed: dict[str, Any], moto_endpoint: str) -> Iterator[FakeApi]:
    """The deployed stack's API, its secret filled, its ApiBaseUrl an output of the stack."""
    import boto3

    secret = {"access_token": ACCESS_TOKEN, "app_secret": APP_SECRET, "verify_token": deployed["generated"]}
    deployed["secrets"].put_secret_value(SecretId=deployed["arn"], SecretString=json.dumps(secret))
    fake = FakeApi(APP_SECRET, deployed["generated"])
    cloudformation = boto3.client("cloudformation", region_name="il-central-1", endpoint_url=moto_endpoint)
    body = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {"WhatsAppSecretArn": {"Value": deployed["arn"]}, "ApiBaseUrl": {"Value": fake.url}},
    }
    cloudformation.update_stack(StackName="whatsapp-crm-dev", TemplateBody=json.dumps(body))
    yield fake
    fake.server.shutdown()


def test_smoke_against_the_deployed_stack_signs_with_sigv4_and_reads_its_secret(
    moto_endpoint: str, api: FakeApi
) -> None:
    # When make smoke runs against the dev stack (URL, verify token and app secret from the stack)
    result = _make("smoke", "ENV=dev", "TO=+972525550003", env=_environment(moto_endpoint))
    # Then every check passes, one line each
    assert result.returncode == 0, result.stdout + result.stderr
    checks = [line.split()[:2] for line in result.stdout.splitlines() if line.startswith(("ok", "FAIL", "skip"))]
    assert checks == [["ok", "handshake"], ["ok", "webhook"], ["ok", "health"], ["ok", "read"], ["ok", "send"]]
    # And the API calls were SigV4 for execute-api in the stack's region (the fake refuses any other)
    assert api.signed_scopes and set(api.signed_scopes) == {"il-central-1/execute-api"}
    # And no secret value was printed
    for value in (ACCESS_TOKEN, APP_SECRET, api.verify_token):
        assert value not in result.stdout + result.stderr


def test_smoke_says_what_to_do_when_the_secret_does_not_match(
    moto_endpoint: str, api: FakeApi, deployed: dict[str, Any]
) -> None:
    # Given a stack whose functions hold another app secret and verify token than its secret (not refreshed)
    api.app_secret, api.verify_token = uuid.uuid4().hex, "another-token"
    result = _make("smoke", "ENV=dev", env=_environment(moto_endpoint))
    # Then the failing checks say so and what to run, and make smoke fails (the script exits 1)
    assert result.returncode != 0 and "Error 1" in result.stderr
    lines = result.stdout.splitlines()
    handshake = next(i for i, line in enumerate(lines) if line.startswith("FAIL  handshake"))
    assert "make verify-token" in lines[handshake + 1]
    webhook = next(i for i, line in enumerate(lines) if line.startswith("FAIL  webhook"))
    assert "make secret" in lines[webhook + 1]
    assert any(line.startswith("ok    health") for line in lines)
    assert any(line.startswith("skip  send") for line in lines)


@pytest.fixture
def dev_stack_removed_after(moto_endpoint: str) -> Iterator[None]:
    """The stand-in deploy creates whatsapp-crm-dev in the session's moto: the other tests expect none."""
    import boto3

    yield
    boto3.client("cloudformation", region_name="il-central-1", endpoint_url=moto_endpoint).delete_stack(
        StackName="whatsapp-crm-dev"
    )


def _stand_in_sam(tmp_path: Path) -> tuple[Path, Path]:
    """An executable that records its arguments (one JSON line per call) and creates whatsapp-crm-dev in moto."""
    import sys

    calls = tmp_path / "calls.jsonl"
    sam = tmp_path / "sam"
    sam.write_text(
        f"#!{sys.executable}\n"
        "import json, sys, boto3\n"
        f"open({str(calls)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "boto3.client('cloudformation', region_name='il-central-1').create_stack(\n"
        "    StackName='whatsapp-crm-dev', TemplateBody=json.dumps({\n"
        "        'Resources': {'Topic': {'Type': 'AWS::SNS::Topic'}},\n"
        "        'Outputs': {'WebhookUrl': {'Value': 'https://abc.execute-api.il-central-1.amazonaws.com/webhook'}}}))\n",
        encoding="utf-8",
    )
    sam.chmod(0o755)
    return sam, calls


@pytest.mark.usefixtures("dev_stack_removed_after")
def test_deploy_runs_the_build_then_sam_deploy_then_prints_the_outputs_and_next_steps(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a stand-in for the SAM CLI that records its arguments and creates the stack as sam deploy would
    sam, calls = _stand_in_sam(tmp_path)
    build = f"touch {tmp_path / 'built'}"
    # When make deploy's script runs its non-dry path
    command = [str(TOOLS_PYTHON), str(ROOT / "scripts" / "deploy.py"), "--env", "dev", "--sam", str(sam)]
    command += ["--build", build, "--params", " ".join(f"{k}={v}" for k, v in SAMPLES.items())]
    result = subprocess.run(
        command, cwd=ROOT, env=_environment(moto_endpoint), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    # Then it built, deployed once with every value, and printed the stack's outputs and what to do next
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "built").exists()
    (deploy_arguments,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert deploy_arguments[:3] == ["deploy", "--config-env", "dev"]
    assert "WhatsAppBusinessAccountId=102290129340398" in deploy_arguments
    assert "WebhookUrl               https://abc.execute-api.il-central-1.amazonaws.com/webhook" in result.stdout
    assert "make secret ENV=dev" in result.stdout and "make smoke ENV=dev" in result.stdout


def test_deploy_stops_when_sam_deploy_fails(moto_endpoint: str) -> None:
    command = [str(TOOLS_PYTHON), str(ROOT / "scripts" / "deploy.py"), "--env", "dev", "--sam", "false"]
    command += ["--build", "true", "--params", " ".join(f"{k}={v}" for k, v in SAMPLES.items())]
    result = subprocess.run(
        command, cwd=ROOT, env=_environment(moto_endpoint), stdin=subprocess.DEVNULL, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "error: false deploy failed (its output is above)" in result.stderr
    assert "make secret" not in result.stdout


@pytest.mark.usefixtures("dev_stack_removed_after")
def test_a_first_deploy_in_a_terminal_asks_for_the_required_values_then_runs_guided(
    moto_endpoint: str, tmp_path: Path
) -> None:
    # Given a terminal, no stack yet and no required value anywhere
    sam, calls = _stand_in_sam(tmp_path)
    command = [str(TOOLS_PYTHON), str(ROOT / "scripts" / "deploy.py"), "--env", "dev", "--sam", str(sam)]
    required = _required_parameters()
    answers = ["WABA-1"] + [SAMPLES[name] for name in required]
    # When the user answers each question, the first one wrongly
    code, shown = _converse([*command, "--build", "true"], _environment(moto_endpoint), answers)
    # Then each required parameter was asked with its description, the wrong value refused with the reason
    assert code == 0, shown
    for name in required:
        assert f"{name} = " in shown
    assert "must match ^[0-9]+" in shown and "try again" in shown  # (WhatsAppPhoneNumberIds: ^[0-9]+(,[0-9]+)*$)
    # And the first deploy is guided (SAM asks the rest and saves them), carrying the answers
    (deploy_arguments,) = [json.loads(line) for line in calls.read_text().splitlines()]
    assert "--guided" in deploy_arguments
    for name in required:
        assert f"{name}={SAMPLES[name]}" in deploy_arguments
