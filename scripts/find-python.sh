#!/usr/bin/env bash
# Prints the path of a Python 3.13 interpreter (the Lambda runtime's version), or fails loudly.
# Order: a working `python3.13` on PATH, then pyenv's newest installed 3.13.x (whose shim needs
# PYENV_VERSION, so we ask pyenv for the real prefix instead of relying on the shim).
set -euo pipefail

if command -v python3.13 >/dev/null 2>&1 && python3.13 -c 'import sys' >/dev/null 2>&1; then
  python3.13 -c 'import sys; print(sys.executable)'
  exit 0
fi

if command -v pyenv >/dev/null 2>&1; then
  version=$(pyenv versions --bare 2>/dev/null | grep -E '^3\.13(\.[0-9]+)?$' | sort -V | tail -n 1 || true)
  if [ -n "$version" ]; then
    prefix=$(pyenv prefix "$version")
    if [ -x "$prefix/bin/python3.13" ]; then
      echo "$prefix/bin/python3.13"
      exit 0
    fi
  fi
fi

echo "error: Python 3.13 not found (install it, e.g. 'pyenv install 3.13', or put python3.13 on PATH)" >&2
exit 1
