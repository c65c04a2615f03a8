#!/usr/bin/env bash
# sgm (CPU backend) beside PyTorch CPU on this machine, one sitting: conv3x3 128→128 at
# [8,128,32,32] fwd+bwd and the 4×[conv3x3, GroupNorm, SiLU] stack (sgm-nets' `conv` bench, dev
# profile), then `cargo xtask bench` (release: NCSN++ cont. deep and DDPM++ cont. at nf 32 / 128,
# batch 8 — forward, fwd+bwd and the full train step — plus the sampler and Inception tables),
# then the same rows on the official PyTorch models (`bench_vs_pytorch.py`, whose train step is
# the reference's `losses.get_step_fn`). Prints both times and sgm / PyTorch.
#
# Env: SGM_TORCH_VENV   virtualenv with torch (created with `pip install torch numpy
#                        ml_collections` when missing; default ~/.cache/sgm-torch-venv)
#      SCORE_SDE_PYTORCH checkout of yang-song/score_sde_pytorch (required)
#      SGM_BENCH_ITERS   timed iterations (default 3; one warm-up on both sides)
#      SGM_BENCH_OUT     folder for the raw results (default: a temp folder; sgm.json is the
#                        full `xtask bench --json` report)
#      CARGO_TARGET_DIR  as usual
# Both sides use 2 threads' worth of cores: torch.set_num_threads(2), rayon's default pool.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${SGM_TORCH_VENV:-$HOME/.cache/sgm-torch-venv}
ref=${SCORE_SDE_PYTORCH:?set SCORE_SDE_PYTORCH to a checkout of yang-song/score_sde_pytorch}
iters=${SGM_BENCH_ITERS:-3}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch numpy ml_collections
fi
out=${SGM_BENCH_OUT:-$(mktemp -d)}
mkdir -p "$out"
SGM_BENCH_ITERS=$iters cargo test -q -p sgm-nets --bench conv | tee "$out/sgm.txt"
cargo xtask bench --runs "$iters" --json "$out/sgm.json" | tee "$out/xtask-bench.md"
"$venv/bin/python" - "$out/sgm.json" >> "$out/sgm.txt" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["rows"]:
    if r["timing"]:
        print(f"ROW {r['id']} {r['timing']['median_s']:.4f}")
PY
"$venv/bin/python" scripts/bench_vs_pytorch.py "$ref" "$iters" | tee "$out/torch.txt"
echo
printf '%-18s %10s %10s %8s\n' row sgm_s torch_s ratio
awk 'FNR == NR && $1 == "ROW" { t[$2] = $3; next }
     $1 == "ROW" && ($2 in t) { printf "%-18s %10.4f %10.4f %8.2f\n", $2, $3, t[$2], $3 / t[$2] }' \
    "$out/torch.txt" "$out/sgm.txt"
