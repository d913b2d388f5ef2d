#include "attention/cpu/ops.h"

#include <cblas.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/cpu/parallel.h"

namespace blockkv::cpu {

void Embed(const float* table, const int32_t* ids, int64_t n, int dim, float* out) {
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(out + t * dim, table + static_cast<int64_t>(ids[t]) * dim, sizeof(float) * dim);
  }
}

void RmsNorm(const float* x, const float* w, int64_t n, int dim, float eps, float* out,
             int threads) {
  ParallelFor(n, 64, threads, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const float* xr = x + t * dim;
      float* o = out + t * dim;
      float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
      for (int i = 0; i < dim; ++i) ss += xr[i] * xr[i];
      const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
      for (int i = 0; i < dim; ++i) o[i] = w[i] * (xr[i] * inv);
    }
  });
}

void Linear(const float* x, const float* w, const float* b, int64_t n, int in, int out, float* y) {
  if (b != nullptr) {
    for (int64_t t = 0; t < n; ++t) std::memcpy(y + t * out, b, sizeof(float) * out);
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), out, in, 1.0f, x, in, w,
              in, b != nullptr ? 1.0f : 0.0f, y, out);
}

void LinearAccumulate(const float* x, const float* w, int64_t n, int in, int out, float* y) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), out, in, 1.0f, x, in, w,
              in, 1.0f, y, out);
}

void SwiGlu(float* gate, const float* up, int64_t n, int threads) {
  ParallelFor(n, 1 << 14, threads, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float g = gate[i];
      gate[i] = (g / (1.0f + std::exp(-g))) * up[i];
    }
  });
}

void CausalAttention(const float* q, const float* k, const float* v, int64_t n, int64_t past,
                     int heads, int kv_heads, int head_dim, float scale, float* out, int threads) {
  const int group = heads / kv_heads;
  const int64_t q_stride = static_cast<int64_t>(heads) * head_dim;
  const int64_t kv_stride = static_cast<int64_t>(kv_heads) * head_dim;
  // One work item per (query, head); later queries see more keys, so chunks are handed out
  // dynamically.
  ParallelFor(n * heads, 4, threads, [&](int64_t begin, int64_t end) {
    std::vector<float> p(static_cast<size_t>(past + n));
    for (int64_t item = begin; item < end; ++item) {
      const int64_t i = item / heads;
      const int h = static_cast<int>(item % heads);
      const float* qi = q + i * q_stride + static_cast<int64_t>(h) * head_dim;
      const float* kh = k + static_cast<int64_t>(h / group) * head_dim;
      const float* vh = v + static_cast<int64_t>(h / group) * head_dim;
      const int64_t keys = past + i + 1;
      float m = -INFINITY;
      for (int64_t j = 0; j < keys; ++j) {
        const float* kj = kh + j * kv_stride;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (int d = 0; d < head_dim; ++d) dot += qi[d] * kj[d];
        const float s = dot * scale;
        p[j] = s;
        m = std::max(m, s);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < keys; ++j) {
        p[j] = std::exp(p[j] - m);
        sum += p[j];
      }
      const float inv = 1.0f / sum;
      float* o = out + i * q_stride + static_cast<int64_t>(h) * head_dim;
      for (int d = 0; d < head_dim; ++d) o[d] = 0.0f;
      for (int64_t j = 0; j < keys; ++j) {
        const float pj = p[j] * inv;
        const float* vj = vh + j * kv_stride;
#pragma omp simd
        for (int d = 0; d < head_dim; ++d) o[d] += pj * vj[d];
      }
    }
  });
}

}  // namespace blockkv::cpu
