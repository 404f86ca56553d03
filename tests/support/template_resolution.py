"""Template parameters and conditions resolved the way AWS::LanguageExtensions and CloudFormation resolve them,
so template tests can look at the resources a given deployment (ApiAuth, JwtIssuer) really gets."""

from __future__ import annotations

from typing import Any

EXTERNAL_ISSUER = "https://issuer.example"


def _resolve(value: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> Any:
    """Fn::If / Ref of parameters / AWS::NoValue, as AWS::LanguageExtensions resolves them before SAM."""
    if isinstance(value, dict):
        if set(value) == {"Fn::If"}:
            name, when_true, when_false = value["Fn::If"]
            return _resolve(when_true if conditions[name] else when_false, parameters, conditions)
        if set(value) == {"Ref"} and value["Ref"] == "AWS::NoValue":
            return None
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        resolved = {key: _resolve(item, parameters, conditions) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not None}
    if isinstance(value, list):
        return [_resolve(item, parameters, conditions) for item in value]
    return value


def _condition(expression: Any, parameters: dict[str, str], conditions: dict[str, bool]) -> bool:
    if "Condition" in expression:
        return conditions[expression["Condition"]]
    if "Fn::Equals" in expression:
        left, right = expression["Fn::Equals"]
        return bool(_resolve(left, parameters, {}) == _resolve(right, parameters, {}))
    if "Fn::Not" in expression:
        return not _condition(expression["Fn::Not"][0], parameters, conditions)
    if "Fn::And" in expression:
        return all(_condition(item, parameters, conditions) for item in expression["Fn::And"])
    if "Fn::Or" in expression:
        return any(_condition(item, parameters, conditions) for item in expression["Fn::Or"])
    raise AssertionError(f"unknown condition {expression}")


def _conditions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, bool]:
    conditions: dict[str, bool] = {}
    for name, expression in template.get("Conditions", {}).items():  # conditions only name earlier ones
        conditions[name] = _condition(expression, parameters, conditions)
    return conditions


def resources_as_deployed(template: dict[str, Any], api_auth: str, issuer: str = EXTERNAL_ISSUER) -> dict[str, Any]:
    """The template's resources as deployed with these parameters: conditional resources dropped."""
    parameters = {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}
    parameters.update(ApiAuth=api_auth, JwtIssuer=issuer, JwtAudience="client")
    conditions = _conditions(template, parameters)
    kept = {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if conditions.get(resource.get("Condition", ""), True)
    }
    resolved: dict[str, Any] = _resolve(kept, parameters, conditions)
    return resolved
