#!/usr/bin/env bash
# Every GPU check of issue 16 in one go (docs/gpu-cudnn.md):
#   conv    sgm-conv's cuDNN tests against the CPU reference (fwd / input grad / weight grad of every
#           net conv shape, raw CubeCL + Fusion + Autodiff, deterministic and TF32 modes) and the
#           extension-vs-Burn-CUDA-conv test (against_burn on the cudnn test backend)
#   parity  the GPU parity suite (the parity tests over every fixture case, sgm-testkit/cudnn)
#   bench   the conv / stack / net figures at b128 (crates/sgm-train/benches/gpu.rs), then the same rows on the reference
#           PyTorch code on the same GPU (scripts/bench_vs_pytorch.py --cuda; needs python3 with
#           torch there; the reference sources and ml_collections travel in .gpu/)
#   grid    the CPU-vs-GPU network grid (crates/sgm-nets/tests/backend_grid.rs, SGM_GRID=full;
#           SGM_GRID_ONLY=official: the two full-size official networks — give it minutes)
# The bench and the tests read their own env (SGM_BENCH_SECTIONS, SGM_BENCH_BURN_ROWS=0, SGM_CASES,
# SGM_CUDNN_MODE, …); a device run passes them on the command line.
# Everything is written to $OUT (three files: a device run brings back 8 at most):
# gpu_check.txt (one STEP line per step, test summaries, figures), bench_rows.txt (the bench's
# rows) and steps.log (every step's full output). Nothing is recorded that was not measured.
#
# Usage:
#   scripts/gpu_check.sh build [STEPS]   any machine with cargo (no GPU): build the binaries of STEPS
#                                        (default conv,bench,grid,parity), stripped and xz-packed, into
#                                        .gpu/ (git-excluded; carry it to the GPU machine)
#   scripts/gpu_check.sh run [STEPS]     the GPU machine (no cargo needed): run what .gpu/ holds
#   scripts/gpu_check.sh all [STEPS]     a GPU machine with cargo: build, then run
#
# Steps run in the order conv, grid, bench, parity; budgets (seconds): cuDNN tests 80, extension
# vs Burn 40, grid 60, bench 130, PyTorch rows 70, parity what is left; each cut to what is left
# of SGM_GPU_BUDGET (default 480 s) so a run leaves time for a second one inside a 15-minute
# lease. A step stopped by its budget shows rc=124 (what it printed before is kept).
# The GPU machine needs the NVIDIA driver, libnvrtc (CubeCL's JIT) and cuDNN 9 (libcudnn.so.9 and
# its sub-libraries: apt libcudnn9-cuda-12/13, or pip nvidia-cudnn-cu12/cu13); the script looks
# for libcudnn.so.9 in LD_LIBRARY_PATH, the system paths and python's nvidia/cudnn wheel.
set -uo pipefail

cmd=${1:-all}
steps=${2:-conv,bench,grid,parity}
root=$(cd "$(dirname "$0")/.." && pwd)
pack=${SGM_GPU_PACK:-$root/.gpu}
out=${OUT:-$root/gpu-out}
report=$out/gpu_check.txt

has_step() { [[ ",$steps," == *",$1,"* ]]; }

# The parity tests: every test target that checks fixture cases.
PARITY_PKGS=(-p sde-core -p sgm-nets -p sgm-sample -p sgm-train)
PARITY_TESTS=(parity_sde parity_nets parity_losses sampling_parity likelihood_parity
  controllable_parity fast_samplers_parity parity_training)

# cargo test --no-run ARGS → "target-name executable-path" per test/bench executable.
executables() {
  cargo test --no-run --message-format=json "$@" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])
'
}

pack_exes() {
  local name path
  while read -r name path; do
    strip -o "$pack/bin/$name" "$path" && echo "stripped $name"
  done
}

# All binaries in one xz stream whose dictionary spans them all: they share most of their code
# (Burn, CubeCL), so one solid archive is several times smaller than each packed alone.
pack_bins() {
  local raw
  raw=$(du -sm "$pack/bin" | cut -f1)
  tar -C "$pack" -cf - bin | xz -T1 --lzma2=preset=6,dict=1536MiB >"$pack/bin.tar.xz" || exit 1
  rm -rf "$pack/bin"
  echo "packed ${raw} MiB of binaries into $(du -m "$pack/bin.tar.xz" | cut -f1) MiB"
}

build_step() {
  cargo test --no-run "$@" || exit 1
  executables "$@" | pack_exes
}

build() {
  cd "$root" || exit 1
  # Without nvcc, cudarc must be told the GPU machine's CUDA version (13.0 on the lent H200).
  export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
  rm -rf "$pack/bin" "$pack/bin.tar.xz" "$pack/fixtures.tar.xz"
  mkdir -p "$pack/bin"
  local exclude t fixtures size
  exclude=$(git rev-parse --git-path info/exclude)
  grep -qx '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >>"$exclude"
  echo "$root" >"$pack/build_root"
  if has_step conv; then
    build_step -p sgm-conv --features cudnn,sgm-testkit/cudnn --test cudnn_gpu --test against_burn
  fi
  if has_step parity; then
    local args=("${PARITY_PKGS[@]}" --features sgm-testkit/cudnn)
    for t in "${PARITY_TESTS[@]}"; do args+=(--test "$t"); done
    build_step "${args[@]}"
    fixtures=${SGM_FIXTURES:-$root/../shared/fixtures}
    tar -C "$(dirname "$fixtures")" -cJf "$pack/fixtures.tar.xz" "$(basename "$fixtures")"
  fi
  if has_step grid; then
    build_step -p sgm-nets --features sgm-testkit/cudnn --test backend_grid
  fi
  if has_step bench; then
    build_step -p sgm-train --features sgm-testkit/cudnn --bench gpu
    # The reference's sources (SCORE_SDE_PYTORCH, a checkout of yang-song/score_sde_pytorch) and
    # ml_collections (pure Python, which its configs import) for the PyTorch rows.
    local ref=${SCORE_SDE_PYTORCH:-} mlc
    rm -rf "$pack/py" && mkdir -p "$pack/py/score_sde_pytorch"
    if [[ -n $ref ]]; then
      (cd "$ref" && cp -r configs models op losses.py sde_lib.py "$pack/py/score_sde_pytorch/")
    else
      echo "note: SCORE_SDE_PYTORCH unset: the PyTorch rows will be skipped"
    fi
    mlc=$("${SGM_TORCH_VENV:+$SGM_TORCH_VENV/bin/}python3" -c 'import ml_collections, os; print(os.path.dirname(ml_collections.__file__))' \
      2>/dev/null || true)
    [[ -n $mlc ]] && cp -r "$mlc" "$pack/py/"
  fi
  pack_bins
  size=$(du -sm "$pack" | cut -f1)
  echo "$pack: ${size} MiB"
  if ((size > 60)); then
    echo "note: a device run carries 64 MiB at most: build and run fewer STEPS at a time"
  fi
}

# The directory holding libcudnn.so.9, or nothing.
find_cudnn() {
  local d dirs
  IFS=: read -r -a dirs <<<"${LD_LIBRARY_PATH:-}"
  for d in "${dirs[@]}" /usr/lib/x86_64-linux-gnu /usr/local/cuda/lib64 /usr/lib64; do
    if [[ -e $d/libcudnn.so.9 ]]; then
      echo "$d"
      return
    fi
  done
  python3 - <<'EOF' 2>/dev/null
import importlib.util, os
spec = importlib.util.find_spec("nvidia.cudnn")
for base in (spec.submodule_search_locations or []) if spec else []:
    lib = os.path.join(base, "lib")
    if os.path.exists(os.path.join(lib, "libcudnn.so.9")):
        print(lib)
        break
EOF
}

# step NAME BUDGET_S COMMAND...: runs COMMAND with a time limit (cut to what is left of the run's
# budget), full output to $out/NAME.log, summary lines to the report.
step() {
  local name=$1 budget=$2 t0 rc left
  shift 2
  t0=$(date +%s)
  left=$((deadline - t0))
  ((budget > left)) && budget=$left
  if ((budget < 5)); then
    echo "STEP $name skipped: the run's time budget is spent" | tee -a "$report"
    return 0
  fi
  timeout --kill-after=10 "$budget" "$@" >"$work/$name.log" 2>&1
  rc=$?
  echo "STEP $name rc=$rc seconds=$(($(date +%s) - t0)) budget=$budget" | tee -a "$report"
  grep -E '^test result:|worst relative error|^(ROW|AGREE|grid) |panicked|FAIL' "$work/$name.log" |
    tail -n 60 >>"$report"
  { echo "=== STEP $name rc=$rc"; cat "$work/$name.log"; } >>"$out/steps.log"
  return 0
}

run() {
  local bin build_root cudnn f t
  work=/tmp/sgm-gpu
  deadline=$(($(date +%s) + ${SGM_GPU_BUDGET:-480}))
  bin=$work/bin
  mkdir -p "$out" "$bin"
  : >"$report"
  : >"$out/steps.log"
  {
    echo "# scripts/gpu_check.sh run $steps, $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
    echo "commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  } | tee -a "$report"
  if [[ ! -f $pack/bin.tar.xz ]]; then
    echo "no $pack/bin.tar.xz: run 'scripts/gpu_check.sh build' first" | tee -a "$report"
    exit 1
  fi
  # Tests find data beside their sources through the build machine's path: make it resolve.
  build_root=$(cat "$pack/build_root" 2>/dev/null || echo "$root")
  if [[ $build_root != "$root" && ! -e $build_root ]]; then
    mkdir -p "$(dirname "$build_root")" && ln -s "$root" "$build_root"
  fi
  # CubeCL's JIT needs libnvrtc (the CUDA toolkit's, or python's nvidia wheels'): make it findable.
  if ! ldconfig -p 2>/dev/null | grep -q 'libnvrtc\.so'; then
    for f in /usr/local/cuda/lib64 $(python3 -c 'import nvidia, os; [print(os.path.join(p, d, "lib"))
      for p in nvidia.__path__ for d in os.listdir(p)]' 2>/dev/null); do
      if compgen -G "$f/libnvrtc.so*" >/dev/null; then
        export LD_LIBRARY_PATH=$f${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        echo "libnvrtc from $f" | tee -a "$report"
        break
      fi
    done
  fi
  cudnn=$(find_cudnn)
  if [[ -n $cudnn ]]; then
    export LD_LIBRARY_PATH=$cudnn${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "libcudnn.so.9 from $cudnn" | tee -a "$report"
  else
    echo "libcudnn.so.9 not found (the cuDNN steps will say so)" | tee -a "$report"
  fi
  xz -dc "$pack/bin.tar.xz" | tar -C "$work" -xf - && chmod +x "$bin"/*
  if has_step conv; then
    step conv_cudnn 80 "$bin/cudnn_gpu" --test-threads=1
    step conv_vs_burn 40 "$bin/against_burn"
  fi
  if has_step grid && [[ -x $bin/backend_grid ]]; then
    # SGM_GRID_ONLY (e.g. `official`: the full-size networks) narrows it; else the whole grid.
    SGM_GRID=full step grid 60 "$bin/backend_grid" --nocapture
  fi
  if has_step bench; then
    export SGM_BENCH_OUT=$out/bench_rows.txt
    step bench 130 "$bin/gpu"
    if [[ -f $pack/py/score_sde_pytorch/losses.py ]]; then
      PYTHONPATH=$pack/py${PYTHONPATH:+:$PYTHONPATH} step torch 70 \
        python3 "$root/scripts/bench_vs_pytorch.py" "$pack/py/score_sde_pytorch" 10 --cuda 128
      grep '^ROW torch_' "$work/torch.log" >>"$SGM_BENCH_OUT"
    fi
  fi
  if has_step parity; then
    if [[ -f $pack/fixtures.tar.xz ]]; then
      tar -C "$work" -xJf "$pack/fixtures.tar.xz"
      export SGM_FIXTURES=$work/fixtures
    fi
    for t in "${PARITY_TESTS[@]}"; do
      if [[ -x $bin/$t ]]; then
        step "parity_$t" $((deadline - $(date +%s))) "$bin/$t"
      fi
    done
  fi
  echo "# done $(date -u +%FT%TZ)" | tee -a "$report"
}

case $cmd in
  build) build ;;
  run) run ;;
  all) build && run ;;
  *)
    echo "usage: $0 build|run|all [conv,parity,bench]" >&2
    exit 2
    ;;
esac
