#!/usr/bin/env python3
"""`make secret ENV=dev`: put the access token, app secret and verify token into the deployed stack's secrets.

The access token goes to its own secret (output WhatsAppAccessTokenSecretArn; the public webhook cannot read
it) and is removed from the app secret's one, where stacks deployed before that split kept it.

Each value comes from the environment (WHATSAPP_ACCESS_TOKEN, WHATSAPP_APP_SECRET, WHATSAPP_VERIFY_TOKEN) or,
in a terminal, from a prompt that does not echo; Enter keeps what the secret holds (the stack generates the
verify token). Nothing here prints a value, except `--show-verify-token` (`make verify-token`), which prints the
verify token alone for Meta's webhook settings. boto3 comes from .venv-tools; no AWS CLI is needed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from typing import Any

from deploy_config import (
    SECRET_FIELDS,
    DeployError,
    aws_session,
    caller_identity,
    fail,
    load_environment,
    stack_outputs,
)

SECRET_OUTPUT = "WhatsAppSecretArn"
# The access token has a secret of its own (issue 10: the public webhook must not be able to read it).
TOKEN_SECRET_OUTPUT = "WhatsAppAccessTokenSecretArn"
PROMPTS = {
    "access_token": "System-user access token (Business settings > System users > Generate token)",
    "app_secret": "App Secret (App Dashboard > App settings > Basic)",
    "verify_token": "Verify token for Meta's webhook settings",
}


def check(name: str, value: str) -> str | None:
    """Why `value` cannot be the secret's `name`; None when it can. Warnings never block."""
    if not value:
        return "is empty"
    if re.search(r"\s", value):
        return "contains white space (a copy-paste slip?)"
    if name == "app_secret" and re.fullmatch(r"[0-9a-f]{32}", value) is None:
        return "is not 32 hexadecimal characters, the form of Meta's App Secret"
    return None


def secret_ids(session: Any, stack_name: str) -> tuple[str, str | None]:
    """The stack's secret and its access token's secret (None for a stack deployed before the split)."""
    outputs = stack_outputs(session, stack_name)
    if outputs is None:
        raise DeployError(f"no stack {stack_name} in {session.region_name}: deploy it first (make deploy)")
    if SECRET_OUTPUT not in outputs:
        raise DeployError(f"stack {stack_name} has no {SECRET_OUTPUT} output: is it this template's stack?")
    return outputs[SECRET_OUTPUT], outputs.get(TOKEN_SECRET_OUTPUT)


def secret_id(session: Any, stack_name: str) -> str:
    return secret_ids(session, stack_name)[0]


def read_secret(client: Any, secret_arn: str) -> dict[str, str]:
    from botocore.exceptions import ClientError

    try:
        text = client.get_secret_value(SecretId=secret_arn)["SecretString"]
    except ClientError as failure:
        raise DeployError(f"cannot read the secret {secret_arn}: {failure}") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        # Never quote the text: it may hold a credential.
        raise DeployError(f"the secret {secret_arn} is not a JSON object; fix or recreate it by hand")
    return {str(key): str(value) for key, value in document.items()}


def new_values(current: dict[str, str], interactive: bool) -> tuple[dict[str, str], list[str]]:
    """The secret's fields after this run and one report line each (never a value)."""
    updated = dict(current)
    report: list[str] = []
    missing: list[str] = []
    for name, variable in SECRET_FIELDS.items():
        have = current.get(name, "")
        value = os.environ.get(variable, "")
        source = variable
        if not value and interactive:
            keep = " (Enter keeps the current one)" if have else ""
            value = getpass.getpass(f"{PROMPTS[name]}{keep}: ").strip()
            source = "prompt"
        if not value:
            if have:
                report.append(f"kept  {name}")
                continue
            missing.append(f"{name} ({variable})")
            continue
        problem = check(name, value)
        if problem is not None:
            raise DeployError(f"{name} from {source} {problem}; nothing was written")
        updated[name] = value
        report.append(f"{'same' if value == have else 'set '}  {name} (from {source})")
    if missing:
        raise DeployError(
            f"no value for {', '.join(missing)}: export the variable, or run make secret in a terminal to be asked;"
            " nothing was written"
        )
    return updated, report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fill the WhatsApp secret of a deployed stack.")
    parser.add_argument("--env", default="dev", help="samconfig.toml environment (dev, prod)")
    parser.add_argument("--show-verify-token", action="store_true", help="print the verify token only and stop")
    args = parser.parse_args(argv)
    try:
        environment = load_environment(args.env)
        session = aws_session(environment.region)
        caller_identity(session)
        arn, token_arn = secret_ids(session, environment.stack_name)
        client = session.client("secretsmanager")
        current = read_secret(client, arn)
        if args.show_verify_token:
            if not current.get("verify_token"):
                raise DeployError("the secret has no verify_token yet: make secret")
            print(current["verify_token"])
            return 0
        token_current = read_secret(client, token_arn) if token_arn else {}
        combined = {
            **current,
            **({"access_token": token_current["access_token"]} if token_current.get("access_token") else {}),
        }
        updated_all, report = new_values(combined, sys.stdin.isatty())
        if token_arn:
            # The token goes to its own secret, and leaves the webhook's (where an older stack kept it).
            token_updated = {**token_current, "access_token": updated_all.get("access_token", "")}
            updated = {key: value for key, value in updated_all.items() if key != "access_token"}
            if token_updated != token_current:
                client.put_secret_value(SecretId=token_arn, SecretString=json.dumps(token_updated))
        else:
            updated = updated_all
        if updated != current:
            client.put_secret_value(SecretId=arn, SecretString=json.dumps(updated))
    except DeployError as error:
        return fail(error)
    for line in report:
        print(line)
    print(
        f"{'written' if updated != current else 'unchanged'}: {arn}\n"
        "The functions pick it up within 5 minutes (their cache), no deploy needed.\n"
        f"Next: the verify token for Meta's webhook settings is `make verify-token ENV={environment.name}`;"
        f" then `make smoke ENV={environment.name}`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
