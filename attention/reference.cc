#include "attention/reference.h"

#include <cmath>

#include "attention/rope.h"

namespace blockkv {

namespace {

using Mat = std::vector<double>;  // row-major

// out (T, rows) = x (T, cols) · W^T, W (rows, cols) float, + b.
Mat Project(const Mat& x, int64_t T, int cols, const std::vector<float>& w, int rows,
            const std::vector<float>& b) {
  Mat out(T * rows);
  for (int64_t t = 0; t < T; ++t) {
    for (int r = 0; r < rows; ++r) {
      double acc = b.empty() ? 0.0 : b[r];
      for (int c = 0; c < cols; ++c) acc += x[t * cols + c] * static_cast<double>(w[r * cols + c]);
      out[t * rows + r] = acc;
    }
  }
  return out;
}

Mat Norm(const Mat& x, int64_t T, int dim, const std::vector<float>& w, double eps) {
  Mat out(T * dim);
  for (int64_t t = 0; t < T; ++t) {
    double ms = 0;
    for (int i = 0; i < dim; ++i) ms += x[t * dim + i] * x[t * dim + i];
    ms /= dim;
    const double r = 1.0 / std::sqrt(ms + eps);
    for (int i = 0; i < dim; ++i) out[t * dim + i] = w[i] * (x[t * dim + i] * r);
  }
  return out;
}

// Rotates each head of x (T, heads, head_dim): pairs (i, i + rot/2) for i < rot/2, angle =
// float32(position) * inv_freq[i] rounded to float32 (HF's definition of the angle).
void Rotate(Mat& x, int64_t T, int heads, int head_dim, const std::vector<float>& inv_freq,
            std::span<const int64_t> positions) {
  const int half = static_cast<int>(inv_freq.size());
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const float angle = static_cast<float>(positions[t]) * inv_freq[i];
      const double c = std::cos(static_cast<double>(angle)),
                   s = std::sin(static_cast<double>(angle));
      for (int h = 0; h < heads; ++h) {
        double* v = &x[(t * heads + h) * head_dim];
        const double a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

}  // namespace

AttentionMask BlockAttentionMask(std::span<const int64_t> block_sizes) {
  int64_t T = 0;
  for (int64_t s : block_sizes) T += s;
  AttentionMask m(T * T, 0);
  int64_t start = 0;
  for (size_t b = 0; b < block_sizes.size(); ++b) {
    const bool final_block = b + 1 == block_sizes.size();
    for (int64_t i = start; i < start + block_sizes[b]; ++i) {
      for (int64_t j = final_block ? 0 : start; j <= i; ++j) m[i * T + j] = 1;
    }
    start += block_sizes[b];
  }
  return m;
}

AttentionMask CausalMask(int64_t tokens) {
  const int64_t sizes[1] = {tokens};
  return BlockAttentionMask(sizes);
}

StatusOr<std::vector<float>> ReferenceForward(const Model& model, std::span<const int32_t> tokens,
                                              std::span<const int64_t> positions,
                                              const AttentionMask& mask,
                                              std::vector<double>* residual_rms) {
  const ModelConfig& c = model.config();
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (positions.size() != tokens.size() || mask.size() != static_cast<size_t>(T * T)) {
    return Status::InvalidArgument("reference: tokens, positions and mask sizes disagree");
  }
  for (int32_t id : tokens) {
    if (id < 0 || id >= c.vocab_size)
      return Status::InvalidArgument("reference: token id out of range");
  }
  const int H = c.hidden_size, hd = c.head_dim, nh = c.num_heads, nkv = c.num_kv_heads;
  const std::vector<float> inv_freq = ComputeInvFreq(c.rope);
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));

  Mat x(T * H);
  for (int64_t t = 0; t < T; ++t) {
    for (int i = 0; i < H; ++i)
      x[t * H + i] = model.embed()[static_cast<int64_t>(tokens[t]) * H + i];
  }
  auto record_rms = [&] {
    if (residual_rms == nullptr) return;
    double ss = 0;
    for (double e : x) ss += e * e;
    residual_rms->push_back(std::sqrt(ss / static_cast<double>(x.size())));
  };
  if (residual_rms != nullptr) residual_rms->clear();
  record_rms();
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = model.layer(l);
    Mat xn = Norm(x, T, H, w.input_norm, c.rms_norm_eps);
    Mat q = Project(xn, T, H, w.wq, nh * hd, w.bq);
    Mat k = Project(xn, T, H, w.wk, nkv * hd, w.bk);
    Mat v = Project(xn, T, H, w.wv, nkv * hd, w.bv);
    Rotate(q, T, nh, hd, inv_freq, positions);
    Rotate(k, T, nkv, hd, inv_freq, positions);
    Mat attn(T * nh * hd, 0.0);
    std::vector<double> score(T);
    for (int h = 0; h < nh; ++h) {
      const int g = h / (nh / nkv);
      for (int64_t i = 0; i < T; ++i) {
        double best = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          if (!mask[i * T + j]) continue;
          double dot = 0;
          for (int d = 0; d < hd; ++d) dot += q[(i * nh + h) * hd + d] * k[(j * nkv + g) * hd + d];
          score[j] = dot * scale;
          best = std::max(best, score[j]);
        }
        double total = 0;
        for (int64_t j = 0; j < T; ++j) {
          if (!mask[i * T + j]) continue;
          score[j] = std::exp(score[j] - best);
          total += score[j];
        }
        for (int64_t j = 0; j < T; ++j) {
          if (!mask[i * T + j]) continue;
          for (int d = 0; d < hd; ++d)
            attn[(i * nh + h) * hd + d] += score[j] / total * v[(j * nkv + g) * hd + d];
        }
      }
    }
    Mat o = Project(attn, T, nh * hd, w.wo, H, w.bo);
    for (int64_t i = 0; i < T * H; ++i) x[i] += o[i];
    xn = Norm(x, T, H, w.post_norm, c.rms_norm_eps);
    Mat gate = Project(xn, T, H, w.w_gate, c.intermediate_size, {});
    Mat up = Project(xn, T, H, w.w_up, c.intermediate_size, {});
    for (size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
    Mat down = Project(gate, T, c.intermediate_size, w.w_down, H, {});
    for (int64_t i = 0; i < T * H; ++i) x[i] += down[i];
    record_rms();
  }
  Mat xn = Norm(x, T, H, model.final_norm(), c.rms_norm_eps);
  Mat logits = Project(xn, T, H, model.lm_head(), c.vocab_size, {});
  return std::vector<float>(logits.begin(), logits.end());
}

}  // namespace blockkv
