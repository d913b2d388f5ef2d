#!/usr/bin/env python3
"""HF transformers' side of `blockkv bench`: full prefill of the same shapes with sdpa attention in bf16.

Usage:
  hf_bench.py --config DIR --lengths 512,2048,... [--final 50] [--repeats 5] [--json OUT]

DIR holds the config.json that `blockkv bench` wrote for its model shape. The model is built from it with
random weights directly on the GPU (no weights file), bf16, attn_implementation="sdpa". For each length L:
  full_prefill_ms  model(input_ids of L tokens, use_cache=True, logits_to_keep=1), last logits copied to
                   the host: the same work as blockkv's full prefill (KV cache written, one logits row);
  block_ttft_ms    a `final`-token block over a DynamicCache already holding L - final tokens (cropped back
                   after each run), logits_to_keep=1: HF's equivalent of a final block over a ready cache.
Median of `repeats` timed runs after one warm-up, torch.cuda.synchronize() around each.
"""
import argparse
import json
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--lengths", required=True)
    ap.add_argument("--final", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]

    import torch
    import transformers

    cfg = transformers.AutoConfig.from_pretrained(args.config)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
    model.eval()
    torch.cuda.synchronize()
    init_s = time.perf_counter() - t0

    def timed(fn, reset=None):
        fn()
        torch.cuda.synchronize()
        ts = []
        for _ in range(args.repeats):
            if reset:
                reset()
            torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            ts.append((time.perf_counter() - t) * 1000)
        return statistics.median(ts)

    # Which fused SDPA kernel torch picks for this shape (causal, bf16), when it says.
    sdpa_choice = None
    try:
        h, kvh, d = cfg.num_attention_heads, cfg.num_key_value_heads, getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        q = torch.randn(1, h, 1024, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, h, 1024, d, device="cuda", dtype=torch.bfloat16)
        sdpa_choice = str(torch.nn.attention.SDPBackend(torch._fused_sdp_choice(q, k, k, is_causal=True)))
    except Exception as e:  # private API; informational only
        sdpa_choice = f"unknown ({type(e).__name__})"

    rows = []
    gen = torch.Generator(device="cuda").manual_seed(1)
    with torch.inference_mode():
        for L in lengths:
            ids = torch.randint(0, cfg.vocab_size, (1, L), device="cuda", generator=gen)

            def full():
                out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
                out.logits[0, -1].float().cpu()

            row = {"tokens": L, "full_prefill_ms": timed(full)}
            if L > args.final:
                ctx = L - args.final
                cache = transformers.DynamicCache(config=cfg) if "config" in transformers.DynamicCache.__init__.__code__.co_varnames else transformers.DynamicCache()
                model(input_ids=ids[:, :ctx], past_key_values=cache, use_cache=True, logits_to_keep=1)
                q_ids = ids[:, ctx:]

                def block():
                    out = model(input_ids=q_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
                    out.logits[0, -1].float().cpu()

                row["block_ttft_ms"] = timed(block, reset=lambda: cache.crop(ctx))
                del cache
            torch.cuda.empty_cache()
            print(f"hf_bench: {json.dumps(row)}", file=sys.stderr, flush=True)
            rows.append(row)

    result = {
        "rows": rows,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "attn_implementation": "sdpa",
        "sdpa_backend_for_causal_bf16": sdpa_choice,
        "device": torch.cuda.get_device_name(),
        "model_init_s": init_s,
    }
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
