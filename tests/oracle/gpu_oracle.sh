#!/usr/bin/env bash
# The CUDA runtime against HF transformers on small synthetic models of the four architecture presets
# (llama3, llama2, mistral, qwen2; bf16 weights, head_dim 64), in block mode and full mode (DESIGN §8.3).
#
# `blockkv bench --oracle-out` writes the models, a prompt of 4 blocks (288 tokens) + a 200-token final block, and the
# CUDA runtime's bf16 logits of every final-block position. HF then computes the same logits twice: in bf16
# (the same storage precision: the comparison the done-criteria name) and in fp32 (the truth). HF's own
# bf16-vs-fp32 error is the size of bf16 noise; a preset passes when top-1 agrees with HF bf16 on >= 99%
# of positions and blockkv's max abs error against fp32 is no more than twice HF bf16's own.
#
# Usage: gpu_oracle.sh BLOCKKV_BIN OUTDIR      (needs a GPU, torch, transformers, numpy)
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 BLOCKKV_BIN OUTDIR" >&2; exit 2; }
BIN=$1
OUT=$2
PY=${PYTHON:-python3}
mkdir -p "$OUT"
"$BIN" bench --oracle-out "$OUT"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
import numpy as np
import torch, transformers

out = sys.argv[1]
prompt = json.load(open(f"{out}/prompt.json"))
sizes = [len(b) for b in prompt["blocks"]]
ids = [t for b in prompt["blocks"] for t in b]
T, F = len(ids), sizes[-1]
torch.backends.cuda.matmul.allow_tf32 = False

def allowed_mask():
    a = torch.zeros(T, T, dtype=torch.bool)
    start = 0
    for b, n in enumerate(sizes):
        final = b == len(sizes) - 1
        for i in range(start, start + n):
            a[i, (0 if final else start):i + 1] = True
        start += n
    return a

def hf_logits(model_dir, dtype, mode):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="eager").cuda().eval()
    x = torch.tensor([ids], device="cuda")
    pos = torch.arange(T, device="cuda")[None]
    kw = {"input_ids": x, "position_ids": pos, "use_cache": False}
    if mode == "block":
        m = torch.full((1, 1, T, T), torch.finfo(dtype).min, dtype=dtype, device="cuda")
        m[0, 0][allowed_mask().cuda()] = 0
        kw["attention_mask"] = m
    with torch.no_grad():
        return model(**kw).logits[0, T - F:].float().cpu().numpy()

rows, ok = [], True
for arch in ["llama3", "llama2", "mistral", "qwen2"]:
    for mode in ["block", "full"]:
        ours = np.load(f"{out}/{arch}/{mode}.npy").astype(np.float64)
        bf = hf_logits(f"{out}/{arch}/model", torch.bfloat16, mode).astype(np.float64)
        f32 = hf_logits(f"{out}/{arch}/model", torch.float32, mode).astype(np.float64)
        r = {
            "arch": arch, "mode": mode, "positions": F,
            "top1_vs_hf_bf16": float((ours.argmax(-1) == bf.argmax(-1)).mean()),
            "top1_vs_hf_fp32": float((ours.argmax(-1) == f32.argmax(-1)).mean()),
            "max_abs_vs_hf_bf16": float(np.abs(ours - bf).max()),
            "max_abs_vs_hf_fp32": float(np.abs(ours - f32).max()),
            "hf_bf16_max_abs_vs_hf_fp32": float(np.abs(bf - f32).max()),
            "hf_bf16_top1_vs_hf_fp32": float((bf.argmax(-1) == f32.argmax(-1)).mean()),
            "max_abs_logit": float(np.abs(f32).max()),
        }
        r["ok"] = r["top1_vs_hf_bf16"] >= 0.99 and r["max_abs_vs_hf_fp32"] <= 2 * r["hf_bf16_max_abs_vs_hf_fp32"]
        ok &= r["ok"]
        rows.append(r)
json.dump({"rows": rows, "torch": torch.__version__, "transformers": transformers.__version__}, open(f"{out}/gpu_oracle.json", "w"), indent=2)
print(f"{'arch':8} {'mode':6} {'top1/bf16':>9} {'top1/fp32':>9} {'abs/bf16':>9} {'abs/fp32':>9} {'HFbf16/fp32':>11} {'HFtop1':>6} {'max|logit|':>10} ok")
for r in rows:
    print(f"{r['arch']:8} {r['mode']:6} {r['top1_vs_hf_bf16']:9.3f} {r['top1_vs_hf_fp32']:9.3f} {r['max_abs_vs_hf_bf16']:9.4f} "
          f"{r['max_abs_vs_hf_fp32']:9.4f} {r['hf_bf16_max_abs_vs_hf_fp32']:11.4f} {r['hf_bf16_top1_vs_hf_fp32']:6.3f} {r['max_abs_logit']:10.2f} {r['ok']}")
sys.exit(0 if ok else 1)
PYEOF
