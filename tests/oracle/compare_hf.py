#!/usr/bin/env python3
"""Compare blockkv's logits with HF transformers' on the same model, prompt and attention mask.

Usage:
  compare_hf.py --model DIR --prompt PROMPT.json --logits LOGITS.npy --mode block|full [--json OUT]

PROMPT.json is blockkv's prompt format (DESIGN §6): {"blocks": [[ids...], ..., [final ids...]]}.
LOGITS.npy is what `blockkv run --all-logits --logits-out` writes: float32 (final_block_tokens, vocab),
or (vocab,) for the last position only.

The model is loaded in float32 with eager attention. Block mode passes a 4D additive mask (1, 1, T, T):
0 where Block-Attention allows attention (each non-final block causally within itself; the final block
to everything before it and causally to itself), the dtype's minimum elsewhere, and explicit position ids
0..T-1. Full mode is ordinary causal attention. The logits of the final block's positions are compared:
max abs diff, max rel diff (relative to the largest |logit|), top-1 agreement at every position.

Prints one JSON line and exits 1 if top-1 disagrees at any position or max abs diff > 1e-3 (2 on a usage
or input error). Without torch, transformers or numpy it prints why, and exits 0 (skipped).
"""
import argparse
import json
import sys

ABS_TOLERANCE = 1e-3


def version_tuple(v):
    parts = []
    for p in v.split(".")[:2]:
        digits = "".join(c for c in p if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def block_allowed(sizes):
    """allowed[i][j] per DESIGN §2, as nested lists of bools."""
    T = sum(sizes)
    allowed = [[False] * T for _ in range(T)]
    start = 0
    for b, n in enumerate(sizes):
        final = b == len(sizes) - 1
        for i in range(start, start + n):
            for j in range(0 if final else start, i + 1):
                allowed[i][j] = True
        start += n
    return allowed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--logits", required=True)
    ap.add_argument("--mode", choices=["block", "full"], required=True)
    ap.add_argument("--json", help="also write the result JSON to this file")
    args = ap.parse_args()

    try:
        import numpy as np
        import torch
        import transformers
    except ImportError as e:
        reason = f"{e.name} is not installed (compare_hf.py needs torch, transformers and numpy)"
        print(f"compare_hf.py: SKIPPED: {reason}", file=sys.stderr)
        result = {"skipped": True, "reason": reason, "model": args.model, "mode": args.mode}
        print(json.dumps(result))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f)
        return 0

    with open(args.prompt) as f:
        prompt = json.load(f)
    blocks = prompt.get("blocks")
    if not isinstance(blocks, list) or not blocks or not all(isinstance(b, list) and b for b in blocks):
        print(f"{args.prompt}: 'blocks' must be a non-empty list of non-empty token lists", file=sys.stderr)
        return 2
    sizes = [len(b) for b in blocks]
    ids = [int(t) for b in blocks for t in b]
    T, F = len(ids), sizes[-1]

    ours = np.load(args.logits).astype(np.float32)
    if ours.ndim == 1:
        ours = ours[None, :]
        positions_compared = [T - 1]
    elif ours.ndim == 2 and ours.shape[0] == F:
        positions_compared = list(range(T - F, T))
    else:
        print(f"{args.logits}: shape {ours.shape} is neither (vocab,) nor ({F}, vocab)", file=sys.stderr)
        return 2

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # Exact float32 matmuls (no TF32) so that the comparison measures blockkv, not the reference.
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    except Exception:
        pass
    tv = version_tuple(transformers.__version__)
    load_kwargs = {"attn_implementation": "eager"}
    # transformers 4.56 renamed from_pretrained's torch_dtype to dtype (5.x drops the old name).
    load_kwargs["dtype" if tv >= (4, 56) else "torch_dtype"] = torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(args.model, **load_kwargs).to(device).eval()

    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    position_ids = torch.arange(T, dtype=torch.long, device=device)[None, :]

    def run(mask4d):
        with torch.no_grad():
            kw = {"input_ids": input_ids, "position_ids": position_ids, "use_cache": False}
            if mask4d is not None:
                # Recent transformers (>= 4.4x, 5.x) use a 4D float mask as given: added to the scores
                # by eager attention.
                kw["attention_mask"] = mask4d
            return model(**kw).logits[0].float()

    if args.mode == "block":
        allowed = torch.tensor(block_allowed(sizes), dtype=torch.bool, device=device)
        mask = torch.full((1, 1, T, T), torch.finfo(torch.float32).min, dtype=torch.float32, device=device)
        mask[0, 0][allowed] = 0.0
        hf_all = run(mask)
    else:
        hf_all = run(None)
    hf = hf_all[positions_compared].cpu().numpy()

    if hf.shape != ours.shape:
        print(f"vocab mismatch: HF logits {hf.shape}, {args.logits} {ours.shape}", file=sys.stderr)
        return 2
    diff = np.abs(hf.astype(np.float64) - ours.astype(np.float64))
    max_abs = float(diff.max())
    max_rel = float(max_abs / max(float(np.abs(hf).max()), 1e-30))
    top_hf = hf.argmax(axis=-1)
    top_ours = ours.argmax(axis=-1)
    agree = (top_hf == top_ours)
    disagreements = []
    for r in np.nonzero(~agree)[0].tolist():
        disagreements.append({"position": positions_compared[r], "hf": int(top_hf[r]), "blockkv": int(top_ours[r]),
                              "hf_margin": float(hf[r, top_hf[r]] - hf[r, top_ours[r]])})
    result = {
        "model": args.model,
        "mode": args.mode,
        "tokens": T,
        "blocks": len(sizes),
        "positions_compared": len(positions_compared),
        "max_abs_diff": max_abs,
        "max_rel_diff": max_rel,
        "top1_agreement": float(agree.mean()),
        "disagreements": disagreements,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "device": device,
        "ok": bool(agree.all() and max_abs <= ABS_TOLERANCE),
    }
    if args.mode == "block":
        # How far the block mask moves HF's own logits from causal ones: shows that the mask was applied.
        causal = run(None)[positions_compared].cpu().numpy()
        result["hf_block_vs_causal_max_abs_diff"] = float(np.abs(causal - hf).max())
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
