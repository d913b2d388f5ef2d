#!/usr/bin/env python3
"""torch's fused attention backends on blockkv_attn_bench's cases, for comparison with blockkv's kernels.

Cases (Llama-3.1-8B heads: 32 query heads, 8 KV heads, head_dim 128, bf16, batch 1), as
tests/attention_kernel_bench.cu times them:
  final50@32K  50 query tokens over 32718 + 50 keys (timed without a mask: the causal part is the last 50
               keys, 0.15% of the work)
  prefill8K    causal, 8192 tokens
  prefill32K   causal, 32768 tokens
  decode@32K   one token over 32767 + 1 keys
  encode32K    32718 tokens of passages of 100-200 tokens, each causal over itself: here a batch of one
               passage per row, padded to 200 tokens (blockkv runs one ragged call); FLOP counts the real
               tokens only, as blockkv_attn_bench does
Backends: cuDNN (SDPBackend.CUDNN_ATTENTION) and FlashAttention-2 (SDPBackend.FLASH_ATTENTION). Keys and
values are expanded to 32 heads beforehand (not timed), since not every backend takes grouped heads.
3 warm-up calls, then the mean of 20 (3 for 32K prefill) timed with CUDA events; FLOP 4 * rows * keys *
head_dim (causal: half the square). Prints a table; --json FILE writes the rows.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

CASES = [("final50@32K", 50, 32718), ("prefill8K", 8192, 0), ("prefill32K", 32768, 0), ("encode32K", 32718, 0),
         ("decode@32K", 1, 32767)]


def passage_lengths(n):
    """blockkv_attn_bench's encode case: 100 + (37 i mod 101) tokens, n in all."""
    lengths, total, i = [], 0, 0
    while total < n:
        lengths.append(min(100 + (37 * i) % 101, n - total))
        total += lengths[-1]
        i += 1
    return lengths


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json")
    args = ap.parse_args()
    heads, kv_heads, d = 32, 8, 128
    rows = []
    for name, n, past in CASES:
        causal = past == 0
        batch, nq, keys = 1, n, n + past
        flop = 4.0 * heads * n * keys * d * (0.5 if causal else 1.0)
        if name == "encode32K":
            lengths = passage_lengths(n)
            batch, nq, keys = len(lengths), max(lengths), max(lengths)
            flop = sum(4.0 * heads * d * x * x / 2 for x in lengths)
        g = torch.Generator(device="cuda").manual_seed(1)
        q = (torch.rand(batch, heads, nq, d, device="cuda", generator=g) * 2 - 1).bfloat16()
        k = (torch.rand(batch, kv_heads, keys, d, device="cuda", generator=g) * 2 - 1).bfloat16()
        v = (torch.rand(batch, kv_heads, keys, d, device="cuda", generator=g) * 2 - 1).bfloat16()
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        for label, backend in [("torch cuDNN", SDPBackend.CUDNN_ATTENTION), ("torch FA2", SDPBackend.FLASH_ATTENTION)]:
            row = {"case": name, "backend": label}
            try:
                with sdpa_kernel(backend):
                    run = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    for _ in range(3):
                        run()
                    reps = 3 if name == "prefill32K" else 20
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    torch.cuda.synchronize()
                    start.record()
                    for _ in range(reps):
                        run()
                    end.record()
                    torch.cuda.synchronize()
                    ms = start.elapsed_time(end) / reps
                row.update({"ms": ms, "tflops": flop / ms / 1e9})
            except Exception as e:  # a backend that refuses the shape
                row["error"] = str(e).splitlines()[0][:200]
            rows.append(row)
    print("| case | backend | ms per layer call | TFLOP/s |\n|---|---|---:|---:|")
    for r in rows:
        if "ms" in r:
            print(f"| {r['case']} | {r['backend']} | {r['ms']:.3f} | {r['tflops']:.1f} |")
        else:
            print(f"| {r['case']} | {r['backend']} | refused: {r['error']} | |")
    if args.json:
        json.dump({"rows": rows, "torch": torch.__version__, "device": torch.cuda.get_device_name()},
                  open(args.json, "w"), indent=2)


if __name__ == "__main__":
    main()
