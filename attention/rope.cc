#include "attention/rope.h"

#include <cassert>
#include <cmath>

namespace blockkv {

std::vector<float> ComputeInvFreq(const RopeConfig& rope) {
  const int dim = rope.rotary_dim;
  assert(dim > 0 && dim % 2 == 0);
  const int half = dim / 2;
  std::vector<float> inv(half);
  // _compute_default_rope_parameters: base ** (arange(0, dim, 2, int64).float() / dim) in float32
  // (the python-float base becomes a float32 operand), then 1.0 / x.
  const float base = static_cast<float>(rope.theta);
  for (int i = 0; i < half; ++i) {
    float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    float p = std::pow(base, exponent);
    inv[i] = 1.0f / p;
  }
  if (rope.type == RopeConfig::Type::kLinear) {
    const float factor = static_cast<float>(rope.factor);
    for (float& f : inv) f = f / factor;  // inv_freq /= factor
  } else if (rope.type == RopeConfig::Type::kLlama3) {
    // _compute_llama3_parameters, one float32 operation at a time. Python-scalar operands become
    // float32; `scalar / tensor` is tensor.reciprocal() * scalar in torch.
    const float factor = static_cast<float>(rope.factor);
    const float low = static_cast<float>(rope.low_freq_factor);
    const float high = static_cast<float>(rope.high_freq_factor);
    const double old_ctx = static_cast<double>(rope.original_max_position_embeddings);
    const double low_freq_wavelen = old_ctx / rope.low_freq_factor;    // python floats
    const double high_freq_wavelen = old_ctx / rope.high_freq_factor;  // python floats
    const float two_pi = static_cast<float>(2 * M_PI);
    const float old_ctx_f = static_cast<float>(old_ctx);
    const float high_minus_low = static_cast<float>(rope.high_freq_factor - rope.low_freq_factor);
    for (int i = 0; i < half; ++i) {
      const float f = inv[i];
      const float wavelen = (1.0f / f) * two_pi;
      const float f_llama = (wavelen > static_cast<float>(low_freq_wavelen)) ? f / factor : f;
      const float smooth = ((1.0f / wavelen) * old_ctx_f - low) / high_minus_low;
      const float smoothed = ((1.0f - smooth) * f_llama) / factor + smooth * f_llama;
      const bool is_medium = !(wavelen < static_cast<float>(high_freq_wavelen)) &&
                             !(wavelen > static_cast<float>(low_freq_wavelen));
      inv[i] = is_medium ? smoothed : f_llama;
    }
    (void)high;
  }
  return inv;
}

RopeTable BuildRopeTable(const std::vector<float>& inv_freq, int64_t first_position,
                         int64_t count) {
  RopeTable t;
  t.first_position = first_position;
  t.count = count;
  t.half = static_cast<int>(inv_freq.size());
  t.cos.resize(static_cast<size_t>(count) * t.half);
  t.sin.resize(t.cos.size());
  for (int64_t p = 0; p < count; ++p) {
    const float pos = static_cast<float>(first_position + p);
    for (int i = 0; i < t.half; ++i) {
      const float angle =
          inv_freq[i] * pos;  // float32 product, as HF's float32 matmul of 1-wide inner dim
      t.cos[p * t.half + i] = std::cos(angle);
      t.sin[p * t.half + i] = std::sin(angle);
    }
  }
  return t;
}

void ApplyRope(const RopeTable& table, float* x, int64_t tokens, int heads, int head_dim) {
  assert(tokens <= table.count && head_dim >= 2 * table.half);
  const int half = table.half;
  for (int64_t t = 0; t < tokens; ++t) {
    const float* c = table.cos.data() + t * half;
    const float* s = table.sin.data() + t * half;
    for (int h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * head_dim;
      // q * cos + rotate_half(q) * sin, with rotate_half(q) = cat(-q[half:], q[:half]).
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] + (-b) * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

}  // namespace blockkv
