"""`make build` from a clean clone: sam build for python3.13 on arm64, then every module compiled to .pyc.

It runs the Makefile's own target (reusing this checkout's tools venv, which `make test` builds), so CI
proves on every run that the committed files build, not only that the template validates.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from e2e.harness import clean_environment
from local.template import ROOT

TOOLS = ROOT / ".venv-tools"
FUNCTIONS = ("WebhookFunction", "ResponderFunction", "SendFunction", "ConversationsFunction", "TemplatesFunction")


def test_make_build_from_a_clean_clone_ships_arm64_code_compiled_to_bytecode(tmp_path: Path) -> None:
    assert shutil.which("git") and shutil.which("make"), "needs git and make"
    assert (TOOLS / ".installed").exists(), "no tools venv (make tools)"
    clone, build_dir = tmp_path / "clone", tmp_path / "build"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = clean_environment()
    for name in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL"):
        env.pop(name, None)

    # When the README's build command runs in the clone
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "build",
            f"TOOLS={TOOLS}",
            "-o",
            f"{TOOLS}/.installed",
            f"BUILD_DIR={build_dir}",
        ],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    # Then it succeeds, with every function and the layer built
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for function in FUNCTIONS:
        assert (build_dir / function / "app.py").is_file()
        assert list((build_dir / function / "__pycache__").glob("app.cpython-313.pyc"))
    layer = build_dir / "WhatsAppLayer" / "python"
    assert (layer / "whatsapp_crm" / "__pycache__").is_dir()
    assert list((layer / "whatsapp_crm" / "__pycache__").glob("ingest.cpython-313.pyc"))
    # And the intent engine's data files ship with it, the model's weights file beside its model file
    data = layer / "whatsapp_crm" / "intent" / "data"
    for name in ("intents.json", "intent_model.json", "intent_model.bin"):
        assert (data / name).read_bytes() == (ROOT / "layers/whatsapp/whatsapp_crm/intent/data" / name).read_bytes()
    # And the layer's native code is for Lambda's arm64, not this machine's architecture
    (pydantic_core,) = (layer / "pydantic_core").glob("_pydantic_core*.so")
    assert "aarch64" in pydantic_core.name
    # And the built template is what `sam deploy` uploads: the same functions, on arm64
    built_template = (build_dir / "template.yaml").read_text(encoding="utf-8")
    assert "arm64" in built_template and all(function in built_template for function in FUNCTIONS)
