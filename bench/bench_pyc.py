"""Cold import of a built handler with and without compiled bytecode. Run: `.venv/bin/python bench/bench_pyc.py`.

It compares what `sam build` alone ships (sources only: sam's Python builder drops every .pyc) with what
`make build` ships (the same tree after `compileall --invalidation-mode unchecked-hash`):

- both trees are copies of .aws-sam/build (run `make build` first, or pass --build);
- each sample is a fresh interpreter that imports the handler module with Lambda's path order (function
  code, then the layer) and Lambda-like environment, and may not write bytecode (Lambda's code directories
  are read-only, so a missing .pyc is recompiled on every cold start);
- boto3 comes from the venv, already compiled, as the Lambda runtime provides it;
- the layer is built for arm64; on another host its native extension modules (.so) are replaced by the
  venv's copies of the same pinned versions (bytecode is what differs between the variants, not .so files).

Prints a Markdown table for docs/performance.md ("Compiled bytecode").
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from _common import ROOT

BUILD = ROOT / ".aws-sam" / "build"
COMPILE = [sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
IMPORT_TIMER = """
import sys, time
sys.path[:0] = {paths!r}
started = time.perf_counter()
import {module}
sys.stdout.write(repr(time.perf_counter() - started))
"""


def _strip_bytecode(tree: Path) -> None:
    for cache in list(tree.rglob("__pycache__")):
        shutil.rmtree(cache)


def _use_host_native_modules(layer: Path) -> None:
    """Replace the layer's foreign-architecture extension modules by the venv's builds of the same versions."""
    site = Path(sysconfig.get_paths()["purelib"])
    foreign = [native for native in layer.rglob("*.so") if platform.machine() not in native.name]
    for package in sorted({native.relative_to(layer).parts[0] for native in foreign}):
        if not (layer / package).is_dir() or not (site / package).is_dir():
            raise SystemExit(f"{package}: no package directory to take host native code from")
        layer_dists = sorted(dist.name for dist in layer.glob(f"{package}-*.dist-info"))
        venv_dists = sorted(dist.name for dist in site.glob(f"{package}-*.dist-info"))
        if layer_dists != venv_dists:
            raise SystemExit(f"{package}: layer has {layer_dists}, venv has {venv_dists}; versions differ")
        for native in (layer / package).rglob("*.so"):
            native.unlink()
        for native in (site / package).rglob("*.so"):
            shutil.copy2(native, layer / native.relative_to(site))


def _lambda_environment(function_dir: Path, function: str) -> dict[str, str]:
    """What the Lambda runtime and the template set; PYTHONDONTWRITEBYTECODE stands in for a read-only disk."""
    sys.path.insert(0, str(ROOT))
    from local.template import CreatedResources, function_environment, load_template

    template = load_template(BUILD / "template.yaml")
    logical = {key: key for key in template.get("Resources", {})}
    created = CreatedResources(refs=logical, attributes={})
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "LAMBDA_TASK_ROOT": str(function_dir),
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    try:
        env.update(function_environment(template, function, created))
    except KeyError:
        pass  # a reference this bench does not resolve: imports do not read it
    return env


def _samples(paths: list[str], module: str, env: dict[str, str], runs: int) -> list[float]:
    code = IMPORT_TIMER.format(paths=paths, module=module)
    samples = []
    for _ in range(runs):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
        if result.returncode != 0:
            raise SystemExit(f"import failed:\n{result.stderr}")
        samples.append(float(result.stdout.strip()) * 1000)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--function", default="WebhookFunction")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--build", action="store_true", help="run `make build` first")
    args = parser.parse_args()
    if args.build:
        subprocess.run(["make", "build"], cwd=ROOT, check=True)
    if not (BUILD / args.function).is_dir():
        raise SystemExit(f"no {BUILD / args.function}: run `make build` first (or --build)")
    handler = _handler_module(args.function)
    with tempfile.TemporaryDirectory() as scratch:
        trees: dict[str, Path] = {}
        for variant in ("sources only (sam build)", "compiled .pyc (make build)"):
            tree = Path(scratch) / str(len(trees))
            shutil.copytree(BUILD, tree, symlinks=True)
            _strip_bytecode(tree)
            for layer in tree.glob("*/python"):
                _use_host_native_modules(layer)
            if "compiled" in variant:
                subprocess.run([*COMPILE, str(tree)], check=True)
            trees[variant] = tree
        results: dict[str, list[float]] = {variant: [] for variant in trees}
        # Interleaved, so a noisy neighbour hurts both variants alike.
        for _ in range(args.runs):
            for variant, tree in trees.items():
                function_dir = tree / args.function
                paths = [str(function_dir), *(str(layer) for layer in sorted(tree.glob("*/python")))]
                env = _lambda_environment(function_dir, args.function)
                results[variant] += _samples(paths, handler, env, 1)
    print(f"Cold import of {args.function}'s handler module (`import {handler}`), {args.runs} fresh processes each,")
    print(f"CPython {platform.python_version()} on {platform.machine()}, interpreter start-up excluded:\n")
    print("| artifact | median ms | min ms | max ms |")
    print("|---|---|---|---|")
    for variant, samples in results.items():
        print(f"| {variant} | {statistics.median(samples):.1f} | {min(samples):.1f} | {max(samples):.1f} |")
    without, with_pyc = (statistics.median(samples) for samples in results.values())
    print(
        f"\nCompiled bytecode saves {without - with_pyc:.0f} ms ({(1 - with_pyc / without) * 100:.0f}%) per cold start."
    )
    return 0


def _handler_module(function: str) -> str:
    sys.path.insert(0, str(ROOT))
    from local.template import load_template

    handler = load_template(BUILD / "template.yaml")["Resources"][function]["Properties"]["Handler"]
    return str(handler).rpartition(".")[0]


if __name__ == "__main__":
    sys.exit(main())
