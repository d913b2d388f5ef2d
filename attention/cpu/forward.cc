#include "attention/cpu/forward.h"

#include <cmath>
#include <cstring>

#include "attention/cpu/ops.h"
#include "attention/rope.h"

namespace blockkv::cpu {

void Forward(const Model& model, const std::vector<float>& inv_freq,
             std::span<const int32_t> tokens, KVCache* cache, const ForwardOutputs& outputs,
             int threads) {
  const ModelConfig& c = model.config();
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t past = cache->length;
  const int hidden = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), inter = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));  // head_dim ** -0.5
  // When only the keys and values are wanted, the last layer's attention and MLP are dead code.
  const bool need_hidden = outputs.logits != nullptr;

  const RopeTable rope = BuildRopeTable(inv_freq, past, n);
  // x: (n, hidden) the residual stream; xn: its normalized copy; q: (n, heads, head_dim);
  // k, v: (n, kv_heads, head_dim); attn: (n, heads, head_dim); gate, up: (n, inter).
  std::vector<float> x(n * hidden), xn(n * hidden), q(n * qd), k(n * kvd), v(n * kvd), attn(n * qd);
  std::vector<float> gate(n * inter), up(n * inter);
  Embed(model.embed().data(), tokens.data(), n, hidden, x.data());
  if (outputs.pre_rope != nullptr) {
    outputs.pre_rope->tokens = static_cast<uint32_t>(n);
    outputs.pre_rope->k.assign(c.num_layers, {});
    outputs.pre_rope->v.assign(c.num_layers, {});
  }
  auto bias = [](const std::vector<float>& b) { return b.empty() ? nullptr : b.data(); };

  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = model.layer(l);
    RmsNorm(x.data(), w.input_norm.data(), n, hidden, eps, xn.data(), threads);
    Linear(xn.data(), w.wq.data(), bias(w.bq), n, hidden, qd, q.data());
    Linear(xn.data(), w.wk.data(), bias(w.bk), n, hidden, kvd, k.data());
    Linear(xn.data(), w.wv.data(), bias(w.bv), n, hidden, kvd, v.data());
    if (outputs.pre_rope != nullptr) {
      outputs.pre_rope->k[l] = k;
      outputs.pre_rope->v[l] = v;
    }
    ApplyRope(rope, k.data(), n, c.num_kv_heads, c.head_dim);
    std::vector<float>& ck = cache->k[l];
    std::vector<float>& cv = cache->v[l];
    ck.insert(ck.end(), k.begin(), k.end());
    cv.insert(cv.end(), v.begin(), v.end());
    if (!need_hidden && l == c.num_layers - 1) break;

    ApplyRope(rope, q.data(), n, c.num_heads, c.head_dim);
    CausalAttention(q.data(), ck.data(), cv.data(), n, past, c.num_heads, c.num_kv_heads,
                    c.head_dim, scale, attn.data(), threads);
    if (w.bo.empty()) {
      LinearAccumulate(attn.data(), w.wo.data(), n, qd, hidden, x.data());
    } else {
      Linear(attn.data(), w.wo.data(), w.bo.data(), n, qd, hidden, xn.data());
      for (int64_t i = 0; i < n * hidden; ++i) x[i] += xn[i];
    }
    RmsNorm(x.data(), w.post_norm.data(), n, hidden, eps, xn.data(), threads);
    Linear(xn.data(), w.w_gate.data(), nullptr, n, hidden, inter, gate.data());
    Linear(xn.data(), w.w_up.data(), nullptr, n, hidden, inter, up.data());
    SwiGlu(gate.data(), up.data(), n * inter, threads);
    LinearAccumulate(gate.data(), w.w_down.data(), n, inter, hidden, x.data());
  }
  cache->length = past + n;

  if (outputs.logits != nullptr) {
    const int64_t rows = outputs.all_logits ? n : 1;
    const float* last = x.data() + (n - rows) * hidden;
    RmsNorm(last, model.final_norm().data(), rows, hidden, eps, xn.data(), threads);
    outputs.logits->assign(rows * c.vocab_size, 0.0f);
    Linear(xn.data(), model.lm_head().data(), nullptr, rows, hidden, c.vocab_size,
           outputs.logits->data());
  }
}

}  // namespace blockkv::cpu
