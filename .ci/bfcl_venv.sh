#!/usr/bin/env bash
# The BFCL tests in a side venv: bfcl-eval pins numpy==1.26.4, filelock and networkx, which the project's
# pins exclude, so it cannot join the README's install. The side venv reads BASE_VENV's packages after its
# own (a .pth line) and adds, with --no-deps, bfcl-eval and the modules its checker imports
# (.ci/bfcl-requirements.txt), keeping the project's numpy. Usage: .ci/bfcl_venv.sh VENV_DIR BASE_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-bfcl}
base=${2:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    base_lib=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    own_lib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    echo "$base_lib" > "$own_lib/ftrl_base_venv.pth"
fi
export PIP_PROGRESS_BAR=off PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/pip" install -q --no-deps -r .ci/bfcl-requirements.txt
"$venv/bin/pip" install -q --no-deps -e .
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/bfcl tests/envs/test_task_machinery.py
