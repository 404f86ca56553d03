#!/usr/bin/env python3
"""`make deploy ENV=dev`: check what a deploy needs, then `sam build` and `sam deploy` (guided the first time).

    make deploy ENV=dev                                   # asks for what is missing when run in a terminal
    make deploy ENV=prod PARAMS="WhatsAppBusinessAccountId=102290129340398 ..."
    make deploy ENV=dev DRY_RUN=1                         # the checks, then print the commands only

Checked before anything is built, from template.yaml's Parameters as they are now: every parameter without a
usable default has a value (samconfig.toml's environment, then PARAMS, then a prompt), every value passes the
template's own constraints, no value names a parameter the template does not have, and the AWS credentials
work. The first deploy of an environment (no stack yet) is `sam deploy --guided`, which saves the answers to
that environment of samconfig.toml; later ones are plain `sam deploy --config-env <env>`.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys

from deploy_config import (
    DeployError,
    Environment,
    Parameter,
    aws_session,
    caller_identity,
    fail,
    format_overrides,
    load_environment,
    parse_overrides,
    stack_outputs,
    template_parameters,
)

NEXT_STEPS = """Next:
  make secret ENV={env}          # the access token, app secret and verify token into the stack's secret
  then in Meta's dashboard: Callback URL = WebhookUrl above, Verify token = `make verify-token ENV={env}`
  make smoke ENV={env}           # checks the deployed stack end to end (README: Deploy)"""


def resolve_values(
    environment: Environment, given: dict[str, str], parameters: dict[str, Parameter], interactive: bool
) -> dict[str, str]:
    """samconfig's values, PARAMS over them, then a prompt for each required one still missing (in a terminal)."""
    values = {**environment.parameter_overrides, **given}
    unknown = sorted(set(values) - set(parameters))
    if unknown:
        raise DeployError(
            f"not parameters of template.yaml: {', '.join(unknown)} (renamed? README's parameter table lists "
            f"them all; fix samconfig.toml's [{environment.name}.deploy.parameters] or PARAMS)"
        )
    problems = []
    for name, value in values.items():
        problem = parameters[name].problem(value)
        if problem is not None:
            problems.append(f"  {name}={value!r}: {problem}")
    if problems:
        raise DeployError("values CloudFormation would refuse:\n" + "\n".join(problems))
    missing = [parameter for name, parameter in parameters.items() if parameter.required and name not in values]
    if missing and not interactive:
        lines = [f"  {parameter.name}: {parameter.description}" for parameter in missing]
        example = " ".join(f"{parameter.name}=..." for parameter in missing)
        raise DeployError(
            "these parameters have no default and no value:\n"
            + "\n".join(lines)
            + f'\ngive them with PARAMS="{example}" (or in samconfig.toml\'s [{environment.name}.deploy.parameters]'
            " parameter_overrides), or run make deploy in a terminal to be asked"
        )
    for parameter in missing:
        values[parameter.name] = ask(parameter)
    return values


def ask(parameter: Parameter) -> str:
    print(f"{parameter.name}: {parameter.description}")
    while True:
        value = input(f"  {parameter.name} = ").strip()
        problem = parameter.problem(value)
        if problem is None:
            return value
        print(f"  {problem}; try again")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check, build and deploy the stack of one samconfig.toml environment.")
    parser.add_argument("--env", default="dev", help="samconfig.toml environment (dev, prod)")
    parser.add_argument("--params", default="", help='extra parameter overrides: "Name=value Other=value"')
    parser.add_argument("--guided", action="store_true", help="sam deploy --guided even when the stack exists")
    parser.add_argument("--dry-run", action="store_true", help="check, then print the commands instead of running them")
    parser.add_argument("--sam", default=".venv-tools/bin/sam", help="the SAM CLI")
    parser.add_argument("--build", default="make --no-print-directory build", help="the build command")
    args = parser.parse_args(argv)
    interactive = sys.stdin.isatty() and not args.dry_run
    try:
        environment = load_environment(args.env)
        parameters = template_parameters()
        values = resolve_values(environment, parse_overrides(args.params), parameters, interactive)
        session = aws_session(environment.region)
        identity = caller_identity(session)
        exists = stack_outputs(session, environment.stack_name) is not None
    except DeployError as error:
        return fail(error)
    print(
        f"ok  {len(parameters)} template parameters, required ones given: "
        + ", ".join(f"{name}={values[name]}" for name, parameter in parameters.items() if parameter.required)
    )
    print(f"ok  AWS account {identity['account']} ({identity['arn']}), region {session.region_name}")
    print(f"ok  stack {environment.stack_name}: " + ("exists, updating" if exists else "new, first deploy"))
    guided = (args.guided or not exists) and sys.stdin.isatty()
    deploy = [args.sam, "deploy", "--config-env", environment.name]
    deploy += ["--guided"] if guided else []
    deploy += ["--parameter-overrides", *format_overrides(values)]
    commands = [shlex.split(args.build), deploy]
    for command in commands:
        print("$ " + shlex.join(command), flush=True)
        if args.dry_run:
            continue
        if subprocess.run(command, check=False).returncode != 0:
            print(f"error: {shlex.join(command[:2])} failed (its output is above)", file=sys.stderr)
            return 1
    if args.dry_run:
        return 0
    outputs = stack_outputs(session, environment.stack_name) or {}
    for key, value in sorted(outputs.items()):
        print(f"  {key:<24} {value}")
    print(NEXT_STEPS.format(env=environment.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
