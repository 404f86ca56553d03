"""What `make deploy`, `make secret` and `make smoke` share: samconfig.toml's environments, template.yaml's
parameters (read at run time, never listed here) and a deployed stack's outputs.

These scripts run with .venv-tools' Python (boto3 comes with the SAM CLI there); they import nothing of the
layer. Errors a user can fix are `DeployError`s whose message says what to do; the scripts print them and
exit 2.
"""

from __future__ import annotations

import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from local.template import TEMPLATE_PATH, load_template

SAMCONFIG_PATH = ROOT / "samconfig.toml"
# The names of the secret's fields and the environment variables that fill them (`make run` reads the same).
SECRET_FIELDS = {
    "access_token": "WHATSAPP_ACCESS_TOKEN",
    "app_secret": "WHATSAPP_APP_SECRET",
    "verify_token": "WHATSAPP_VERIFY_TOKEN",
}


class DeployError(Exception):
    """Something the user can fix; the message says how."""


@dataclass(frozen=True)
class Environment:
    """One `[<name>.*]` environment of samconfig.toml, as `sam deploy --config-env <name>` reads it."""

    name: str
    stack_name: str
    region: str | None
    parameter_overrides: dict[str, str] = field(default_factory=dict)


def environment_names(path: Path = SAMCONFIG_PATH) -> list[str]:
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    return [name for name, section in config.items() if isinstance(section, dict) and name != "default"]


def load_environment(name: str, path: Path = SAMCONFIG_PATH) -> Environment:
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    section = config.get(name)
    if not isinstance(section, dict) or name == "default":
        known = ", ".join(environment_names(path))
        raise DeployError(f"samconfig.toml has no environment {name!r}: use ENV= one of {known}")
    merged: dict[str, Any] = {
        **section.get("global", {}).get("parameters", {}),
        **section.get("deploy", {}).get("parameters", {}),
    }
    stack_name = merged.get("stack_name")
    if not stack_name:
        raise DeployError(f"samconfig.toml's [{name}.global.parameters] has no stack_name")
    region = merged.get("region")
    return Environment(
        name=name,
        stack_name=str(stack_name),
        region=str(region) if region else None,
        parameter_overrides=parse_overrides(merged.get("parameter_overrides", "")),
    )


def parse_overrides(overrides: str | list[str]) -> dict[str, str]:
    """`sam deploy`'s parameter_overrides: `Name=value Other="two words"` (a string, or a list of them)."""
    words = (
        shlex.split(overrides) if isinstance(overrides, str) else [w for item in overrides for w in shlex.split(item)]
    )
    parsed: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise DeployError(f"parameter override {word!r} is not Name=value")
        parsed[name] = value
    return parsed


def format_overrides(values: dict[str, str]) -> list[str]:
    """For `sam deploy --parameter-overrides`: one `Name=value` argument each (sam splits on the first =)."""
    return [f"{name}={value}" for name, value in values.items()]


@dataclass(frozen=True)
class Parameter:
    """One template parameter and CloudFormation's own checks of a value for it."""

    name: str
    spec: dict[str, Any]

    @property
    def default(self) -> str | None:
        return None if "Default" not in self.spec else str(self.spec["Default"])

    @property
    def description(self) -> str:
        return " ".join(str(self.spec.get("Description", "")).split())

    @property
    def required(self) -> bool:
        """No default, or a default CloudFormation itself would refuse: a deploy must give a value."""
        return self.default is None or self.problem(self.default) is not None

    def problem(self, value: str) -> str | None:
        """Why CloudFormation would refuse `value`, in words; None when it is acceptable."""
        kind = str(self.spec.get("Type", "String"))
        items = [item.strip() for item in value.split(",")] if kind == "CommaDelimitedList" else [value]
        hint = self.spec.get("ConstraintDescription")
        for item in items:
            reason = self._item_problem(kind, item)
            if reason is not None:
                return f"{reason}" + (f" ({hint})" if hint else "")
        return None

    def _item_problem(self, kind: str, value: str) -> str | None:
        allowed = self.spec.get("AllowedValues")
        if allowed is not None and value not in [str(option) for option in allowed]:
            return f"must be one of {', '.join(str(option) for option in allowed)}"
        pattern = self.spec.get("AllowedPattern")
        if pattern is not None and re.fullmatch(str(pattern), value) is None:
            return f"must match {pattern}"
        if kind == "Number":
            try:
                number = float(value)
            except ValueError:
                return "must be a number"
            if "MinValue" in self.spec and number < float(self.spec["MinValue"]):
                return f"must be at least {self.spec['MinValue']}"
            if "MaxValue" in self.spec and number > float(self.spec["MaxValue"]):
                return f"must be at most {self.spec['MaxValue']}"
        if "MinLength" in self.spec and len(value) < int(self.spec["MinLength"]):
            return f"must be at least {self.spec['MinLength']} characters"
        if "MaxLength" in self.spec and len(value) > int(self.spec["MaxLength"]):
            return f"must be at most {self.spec['MaxLength']} characters"
        return None


def template_parameters(path: Path = TEMPLATE_PATH) -> dict[str, Parameter]:
    template = load_template(path)
    return {name: Parameter(name, dict(spec)) for name, spec in template.get("Parameters", {}).items()}


def aws_session(region: str | None) -> Any:
    """The caller's credentials (profile, environment, SSO...) as boto3 finds them; AWS_ENDPOINT_URL is honoured."""
    import boto3

    return boto3.session.Session(region_name=region) if region else boto3.session.Session()


def caller_identity(session: Any) -> dict[str, str]:
    from botocore.exceptions import BotoCoreError, ClientError

    if session.region_name is None:
        raise DeployError("no AWS region: set region in samconfig.toml's environment, or AWS_REGION")
    try:
        identity = session.client("sts").get_caller_identity()
    except (BotoCoreError, ClientError) as failure:
        raise DeployError(
            f"AWS credentials do not work ({failure}): run `aws configure` or `aws sso login`, "
            "or set AWS_PROFILE / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ) from None
    return {"account": str(identity["Account"]), "arn": str(identity["Arn"])}


def stack_outputs(session: Any, stack_name: str) -> dict[str, str] | None:
    """The deployed stack's outputs, or None when there is no such stack (yet)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as failure:
        if "does not exist" in str(failure):
            return None
        raise DeployError(f"cannot read stack {stack_name}: {failure}") from None
    except BotoCoreError as failure:
        raise DeployError(f"cannot read stack {stack_name}: {failure}") from None
    outputs = stacks[0].get("Outputs", []) if stacks else []
    return {str(output["OutputKey"]): str(output["OutputValue"]) for output in outputs}


def fail(error: DeployError) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 2
