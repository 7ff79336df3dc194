#!/usr/bin/env bash
# One run on a bare GPU machine (nvcc + cmake; no Node, no network): build the CUDA backend for sm_90,
# run every CUDA op against the CPU op, then the op benchmarks at the Llama-3-8B shape (Q4_0) and the
# attention op next to PyTorch SDPA when torch is there. Prints a compact summary last; full logs go
# to $OUT (the device tool's result folder) or build/gpu/logs. Meant to finish in under 6 minutes.
#   bash bench/gpu/run.sh            # everything
#   QUICK=1 bash bench/gpu/run.sh    # build + tests + one short benchmark
set -uo pipefail
cd "$(dirname "$0")/../.."
LOGS=${OUT:-build/gpu/logs}
mkdir -p "$LOGS"
BUILD=build/gpu
t0=$(date +%s)
elapsed() { echo $(( $(date +%s) - t0 )); }

echo "== machine"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv,noheader || true
nvcc --version | tail -1

echo "== build (sm_90)"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if ! cmake -S native -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DHCATTN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      >"$LOGS/configure.log" 2>&1; then
  tail -30 "$LOGS/configure.log"; echo "configure failed"; exit 1
fi
if ! cmake --build "$BUILD" -j"$(nproc)" --target hcattn-cuda hcattn-cli test_cuda_matmul test_cuda_ops test_cuda_hcattn \
      >"$LOGS/build.log" 2>&1; then
  grep -E "error|Error" "$LOGS/build.log" | head -40; echo "build failed"; exit 1
fi
echo "built in $(elapsed) s"

echo "== tests: every CUDA op against the CPU op"
(cd "$BUILD" && ctest -R test_cuda --output-on-failure --timeout 240) 2>&1 | tee "$LOGS/ctest.log" | grep -E "FAIL|tests passed|Test +#" || true
"$BUILD/hcattn-cuda" test 2>&1 | tee "$LOGS/selftest.log" | tail -3
echo "tests done at $(elapsed) s"

echo "== benchmarks"
BENCH="$BUILD/hcattn-cuda bench --random --shape llama3-8b --qtype q4_0"
runs=("--ctx 131072 --kv 12.5%" "--ctx 131072 --kv 25% --quick" "--ctx 1048576 --kv 12.5% --quick" "--ctx 1048576 --kv 25% --quick")
[ "${QUICK:-0}" = 1 ] && runs=("--ctx 131072 --kv 12.5% --quick")
i=0
for r in "${runs[@]}"; do
  i=$((i + 1))
  echo "-- $r"
  timeout 120 $BENCH $r 2>&1 | tee "$LOGS/bench$i.log"
done
if [ "${QUICK:-0}" != 1 ]; then
  timeout 60 "$BUILD/hcattn-cuda" bench --random --shape llama32-1b --qtype q8_0 --ctx 131072 --kv 25% --quick 2>&1 \
    | tee "$LOGS/bench_1b.log" | grep -E "gemv|gemm|estimate decode"
fi

echo "== PyTorch SDPA (same attention shapes, f16)"
if python3 -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  timeout 90 python3 - <<'PY' 2>&1 | tee "$LOGS/sdpa.log"
import torch, torch.nn.functional as F
torch.manual_seed(0)
def bench(n_q, n_k, causal):
    q = torch.randn(1, 32, n_q, 128, device="cuda", dtype=torch.float16)
    k = torch.randn(1, 32, n_k, 128, device="cuda", dtype=torch.float16)  # GQA expanded: 32 heads
    v = torch.randn_like(k)
    for _ in range(2):
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    times = []
    for _ in range(5):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record(); F.scaled_dot_product_attention(q, k, v, is_causal=causal); b.record()
        torch.cuda.synchronize(); times.append(a.elapsed_time(b))
    ms = sorted(times)[2]
    pairs = n_q * n_k / 2 if causal else n_q * n_k
    print(f"sdpa   {n_q:6d} queries over {n_k:7d} keys ({'causal' if causal else 'no mask'}): {ms:9.3f} ms/layer  {4*128*32*pairs/ms/1e9:6.1f} TFLOP/s")
bench(4096, 4096, True)
bench(8192, 8192, True)
# SDPA's causal mask is top-left aligned when n_q < n_k, so the chunk-over-long-context shape runs unmasked.
bench(4096, 131072, False)
PY
else
  echo "torch with CUDA not available: no SDPA comparison"
fi

echo
echo "================ summary ($(elapsed) s) ================"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
grep -E "tests passed|tests failed" "$LOGS/ctest.log" | tail -1
grep -E "^cuda test:" "$LOGS/selftest.log" | tail -1
grep -hE "^(gemv|gemm|attn|hc|memory|estimate|bench|sdpa|host)" "$LOGS"/bench1.log 2>/dev/null
for f in "$LOGS"/bench[2-9].log; do [ -f "$f" ] && grep -hE "^(bench|hc  |estimate decode|memory)" "$f"; done
[ -f "$LOGS/sdpa.log" ] && grep -E "^sdpa" "$LOGS/sdpa.log"
