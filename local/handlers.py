"""Import a function's handler module the way Lambda would: from its CodeUri and Handler in template.yaml."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import Any

from local.template import ROOT, load_template


def load_function_module(logical_id: str, template: dict[str, Any] | None = None) -> ModuleType:
    template = template or load_template()
    properties = template["Resources"][logical_id]["Properties"]
    module_name, _, _ = properties["Handler"].rpartition(".")
    path = ROOT / properties["CodeUri"] / f"{module_name.replace('.', '/')}.py"
    unique_name = f"function_{logical_id}"
    if unique_name in sys.modules:
        return sys.modules[unique_name]
    spec = importlib.util.spec_from_file_location(unique_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    spec.loader.exec_module(module)
    return module


def handler_name(logical_id: str, template: dict[str, Any] | None = None) -> str:
    template = template or load_template()
    return str(template["Resources"][logical_id]["Properties"]["Handler"].rpartition(".")[2])
