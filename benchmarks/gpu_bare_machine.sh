#!/usr/bin/env bash
# Run benchmarks/gpu_step_time.sh on a bare CUDA machine that has python3 + torch but none of
# the OpenMMLab stack and no network (the lent device machine of this workplace).
#
# Here (with network): `bash benchmarks/gpu_bare_machine.sh --fetch` puts cp312 wheels of the
# stack, built pure-Python wheels of sam2 / iopath / antlr4 and the mmcv 2.1.0 sdist in .whl/.
# There: `bash benchmarks/gpu_bare_machine.sh [gpu_step_time.py args]` installs them into
# .gpu_site/, builds mmcv's ops (CUDA for the local GPU's arch; when that build fails or runs
# past MMCV_CUDA_BUILD_S the CPU ops are built instead and the benchmark records that the
# deformable attention ran as mmcv's PyTorch implementation), then runs the benchmark within
# DEADLINE_S seconds of the start. Logs and results go to $OUT when it is set.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHL=$ROOT/.whl
SITE=$ROOT/.gpu_site
if [[ "${1:-}" == "--fetch" ]]; then
  set -e
  PY=${PY:-.venv/bin/python}
  mkdir -p "$WHL"
  plat=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
  "$PY" -m pip download -q --no-deps --only-binary=:all: "${plat[@]}" -d "$WHL" \
    mmengine==0.10.7 mmdet==3.3.0 pycocotools==2.0.11 terminaltables shapely addict yapf \
    termcolor platformdirs hydra-core==1.3.8 omegaconf==2.3.1 portalocker segment-anything==1.0 \
    setuptools==80.9.0
  "$PY" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$WHL" mmcv==2.1.0
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHL" \
    antlr4-python3-runtime==4.9.3 iopath==0.1.10
  SAM2_BUILD_CUDA=0 "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WHL" sam2==1.1.0
  du -sh "$WHL"
  exit 0
fi
T0=$(date +%s)
DEADLINE_S=${DEADLINE_S:-560}
OUT=${OUT:-$ROOT/work_dirs/gpu_bare}
mkdir -p "$OUT"
left() { echo $(( DEADLINE_S - ($(date +%s) - T0) )); }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; lscpu | grep 'Model name';
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; } \
  > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"
export PYTHONPATH=$SITE:$SITE/mmcv-2.1.0:$ROOT
if [[ ! -f $SITE/.installed ]]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$SITE" \
    "$WHL"/*.whl || { echo "wheel install failed"; exit 3; }
  tar -xzf "$WHL"/mmcv-2.1.0.tar.gz -C "$SITE"
  touch "$SITE/.installed"
fi
if [[ ! -f $SITE/.mmcv_kind && "${MMCV_OPS:-cuda}" == cuda ]]; then
  arch=$(python3 -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')
  t=$(date +%s)
  (cd "$SITE/mmcv-2.1.0" && MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=$arch \
     MAX_JOBS=$(nproc) timeout "${MMCV_CUDA_BUILD_S:-300}" python3 setup.py build_ext --inplace \
     > "$OUT/mmcv_build_cuda.log" 2>&1) && echo cuda > "$SITE/.mmcv_kind"
  echo "mmcv CUDA build: $( [[ -f $SITE/.mmcv_kind ]] && echo ok || echo FAILED) in $(( $(date +%s) - t )) s"
  [[ -f $SITE/.mmcv_kind ]] || tail -30 "$OUT/mmcv_build_cuda.log"
fi
if [[ ! -f $SITE/.mmcv_kind ]]; then
    # MMCV_OPS=cpu (a quick build when only the step's behaviour matters) or a failed CUDA
    # build: CPU ops, the deformable attention then runs as mmcv's PyTorch implementation.
    rm -rf "$SITE/mmcv-2.1.0/build"; rm -f "$SITE"/mmcv-2.1.0/mmcv/_ext*.so
    t=$(date +%s)
    (cd "$SITE/mmcv-2.1.0" && CUDA_VISIBLE_DEVICES= MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=$(nproc) \
       python3 setup.py build_ext --inplace > "$OUT/mmcv_build_cpu.log" 2>&1) \
       && echo cpu > "$SITE/.mmcv_kind" || { tail -30 "$OUT/mmcv_build_cpu.log"; exit 4; }
    echo "mmcv CPU-ops build in $(( $(date +%s) - t )) s"
fi
python3 -c 'import mmcv.ops, mmdet, sam2, mmssis; print("imports ok", mmcv.__version__)' || exit 5
echo "starting the benchmark with $(left) s left"
GPU_STEP_TIME_LIMIT=$(( $(left) - 10 )) PY=python3 bash benchmarks/gpu_step_time.sh "$@" \
  2>&1 | grep -v 'paramwise_options' | tee "$OUT/gpu_step_time.log"
cp benchmarks/results/gpu_step_time.md benchmarks/results/gpu_step_time.json "$OUT"/ 2>/dev/null
echo "done in $(( $(date +%s) - T0 )) s"
