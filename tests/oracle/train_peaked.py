#!/usr/bin/env python3
"""Train the oracle's small synthetic models briefly, so that their next-token distributions are peaked.

Random-weight models have flat logits: over 2048 tokens the top two are often closer than bf16's rounding
noise (~0.08 here), so "top-1 equal" between two bf16 implementations measures noise, not correctness (HF
bf16 itself agrees with HF fp32 on only 97-99% of positions of those models). A trained model, as users
run, has margins far above that noise at most positions; there top-1 agreement measures whether two
implementations compute the same function.

The task (every position predictable, and the prediction needs attention across blocks):
  - tokens 0..3 are headers; header k selects one of 4 fixed random permutations P_k of tokens 4..V-1;
  - a training sequence is a run of segments sharing one k; a segment starts with header k (or, sometimes,
    without one: it continues the previous segment) followed by a chain t[i+1] = P_k[t[i]] with probability
    0.9, otherwise a uniformly random token.
So the next token is P_k[current] (probability ~0.9), where k is the most recent header in context. The
oracle prompt written here has 4 blocks that each start with header k and a 200-token final block without
one: its predictions need the earlier blocks (in block mode, the final block's attention to them).

Usage: train_peaked.py SRC_DIR OUT_DIR [--steps N]
  SRC_DIR holds ARCH/model for llama3, llama2, mistral, qwen2 (what `blockkv bench --oracle-out` writes).
  Writes OUT_DIR/ARCH/model (bf16 safetensors, via save_pretrained), OUT_DIR/prompt.json (blockkv's
  prompt format) and OUT_DIR/train.json (losses, margins). Needs torch, transformers and a GPU.
"""
import argparse
import json
import os
import random
import sys
import time

import torch
import transformers

HEADERS = 4
P_CHAIN = 0.9


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    dev = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True  # training only; the comparison runs without TF32

    rnd = random.Random(args.seed)
    src_cfg = transformers.AutoConfig.from_pretrained(os.path.join(args.src, "llama3", "model"))
    V = src_cfg.vocab_size
    perms = []  # perms[k][t]: the chain's successor of token t under header k (tokens >= HEADERS)
    for _ in range(HEADERS):
        p = list(range(HEADERS, V))
        rnd.shuffle(p)
        perms.append([0] * HEADERS + p)

    def segment(k, n, header, r):
        toks = [k] if header else []
        t = r.randrange(HEADERS, V)
        while len(toks) < n:
            toks.append(t)
            t = perms[k][t] if r.random() < P_CHAIN else r.randrange(HEADERS, V)
        return toks

    def sequence(r):
        k = r.randrange(HEADERS)
        out = []
        while len(out) < args.seq:
            header = not out or r.random() < 0.8
            out += segment(k, r.randrange(30, 220), header, r)
        return out[: args.seq]

    # A fixed pool of training sequences, built once.
    pool_rnd = random.Random(args.seed + 1)
    pool = torch.tensor([sequence(pool_rnd) for _ in range(4096)], dtype=torch.long)

    # The oracle prompt: 4 blocks of sizes 40, 73, 55, 120 (each starting with header k), and a 200-token
    # final block continuing the same chain without a header.
    pr = random.Random(args.seed + 2)
    k = 2
    blocks = [segment(k, n, True, pr) for n in (40, 73, 55, 120)] + [segment(k, 200, False, pr)]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "prompt.json"), "w") as f:
        json.dump({"blocks": blocks}, f)

    report = {"steps": args.steps, "batch": args.batch, "seq": args.seq, "archs": {}}
    for arch in ["llama3", "llama2", "mistral", "qwen2"]:
        t0 = time.time()
        torch.manual_seed(args.seed)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            os.path.join(args.src, arch, "model"), dtype=torch.float32).to(dev).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 30) * max(0.05, 1 - s / args.steps))
        losses = []
        for step in range(args.steps):
            idx = torch.randint(0, pool.shape[0], (args.batch,))
            x = pool[idx].to(dev)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = model(input_ids=x, labels=x).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if step % 50 == 0 or step == args.steps - 1:
                losses.append((step, float(loss)))
        model.eval()
        # Margins of the trained model (fp32, no TF32) on the oracle prompt's final block, full causal.
        torch.backends.cuda.matmul.allow_tf32 = False
        ids = torch.tensor([[t for b in blocks for t in b]], device=dev)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0, -200:].float()
        top2 = logits.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).cpu()
        target = torch.tensor(blocks[-1][1:], device=dev)
        acc = float((logits[:-1].argmax(-1) == target).float().mean())
        torch.backends.cuda.matmul.allow_tf32 = True
        out_dir = os.path.join(args.out, arch, "model")
        model.to(torch.bfloat16).save_pretrained(out_dir, safe_serialization=True)
        r = {"losses": losses, "seconds": round(time.time() - t0, 1),
             "final_block_next_token_accuracy": acc,
             "margin_min": float(margin.min()), "margin_p01": float(margin.quantile(0.01)),
             "margin_median": float(margin.median())}
        report["archs"][arch] = r
        print(f"train_peaked: {arch}: loss {losses[0][1]:.3f} -> {losses[-1][1]:.3f} in {r['seconds']} s; "
              f"final-block accuracy {acc:.3f}; top1-top2 margin min {r['margin_min']:.2f}, "
              f"1% {r['margin_p01']:.2f}, median {r['margin_median']:.2f}", flush=True)
        del model, opt
    with open(os.path.join(args.out, "train.json"), "w") as f:
        json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
