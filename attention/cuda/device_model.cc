#include "attention/cuda/device_model.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "attention/cuda/cuda_status.h"
#include "attention/cuda/elementwise.cuh"
#include "attention/cuda/rope.cuh"
#include "attention/rope.h"
#include "db/dtype.h"

namespace blockkv::cuda {

Status DeviceBuffer::Allocate(size_t bytes) {
  Reset();
  if (bytes == 0) return Status::OK();
  const cudaError_t e = cudaMalloc(&ptr_, bytes);
  if (e != cudaSuccess) {
    ptr_ = nullptr;
    return CudaStatus(e, ("cudaMalloc of " + std::to_string(bytes) + " bytes").c_str());
  }
  bytes_ = bytes;
  return Status::OK();
}

Status DeviceBuffer::Reserve(size_t bytes, bool* grew) {
  if (bytes <= bytes_) return Status::OK();
  if (grew != nullptr) *grew = true;
  return Allocate(bytes);
}

void DeviceBuffer::Reset() {
  if (ptr_ != nullptr) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

namespace {

// Converts host fp32 values to T and copies them to `dst` (allocated here).
Status Upload(const std::vector<std::vector<float>>& parts, Precision precision, DeviceBuffer* dst) {
  size_t n = 0;
  for (const auto& p : parts) n += p.size();
  std::vector<uint16_t> host(n);
  size_t at = 0;
  const DType t = precision == Precision::kBF16 ? DType::kBF16 : DType::kF16;
  for (const auto& p : parts) {
    FromFloat(t, p.data(), host.data() + at, p.size());
    at += p.size();
  }
  RETURN_IF_ERROR(dst->Allocate(n * 2));
  return CudaStatus(cudaMemcpy(dst->get(), host.data(), n * 2, cudaMemcpyHostToDevice), "upload weights");
}

Status UploadF32(const std::vector<std::vector<float>>& parts, DeviceBuffer* dst) {
  std::vector<float> host;
  for (const auto& p : parts) host.insert(host.end(), p.begin(), p.end());
  RETURN_IF_ERROR(dst->Allocate(host.size() * 4));
  return CudaStatus(cudaMemcpy(dst->get(), host.data(), host.size() * 4, cudaMemcpyHostToDevice),
                    "upload weights");
}

}  // namespace

DeviceModel::DeviceModel(const ModelConfig& config, Precision precision, cudaStream_t stream)
    : config_(config), precision_(precision), stream_(stream) {}

Status DeviceModel::Init() {
  int device = 0;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  ASSIGN_OR_RETURN(gemm_, Gemm::Create());
  const std::vector<float> inv = ComputeInvFreq(config_.rope);
  RETURN_IF_ERROR(UploadF32({inv}, &inv_freq_));
  layers_.resize(config_.num_layers);
  return Status::OK();
}

StatusOr<std::unique_ptr<DeviceModel>> DeviceModel::FromModel(const Model& model, Precision precision,
                                                              cudaStream_t stream) {
  std::unique_ptr<DeviceModel> m(new DeviceModel(model.config(), precision, stream));
  RETURN_IF_ERROR(m->Init());
  const ModelConfig& c = m->config_;
  RETURN_IF_ERROR(Upload({model.embed()}, precision, &m->embed_));
  if (!c.tie_word_embeddings) RETURN_IF_ERROR(Upload({model.lm_head()}, precision, &m->lm_head_));
  RETURN_IF_ERROR(UploadF32({model.final_norm()}, &m->final_norm_));
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerWeights& w = model.layer(l);
    DeviceLayer& d = m->layers_[l];
    RETURN_IF_ERROR(UploadF32({w.input_norm}, &d.input_norm));
    RETURN_IF_ERROR(UploadF32({w.post_norm}, &d.post_norm));
    RETURN_IF_ERROR(Upload({w.wq, w.wk, w.wv}, precision, &d.wqkv));
    if (!w.bq.empty()) RETURN_IF_ERROR(UploadF32({w.bq, w.bk, w.bv}, &d.bqkv));
    RETURN_IF_ERROR(Upload({w.wo}, precision, &d.wo));
    if (!w.bo.empty()) RETURN_IF_ERROR(UploadF32({w.bo}, &d.bo));
    RETURN_IF_ERROR(Upload({w.w_gate, w.w_up}, precision, &d.wgu));
    RETURN_IF_ERROR(Upload({w.w_down}, precision, &d.wdown));
  }
  return m;
}

StatusOr<std::unique_ptr<DeviceModel>> DeviceModel::Random(const ModelConfig& config, uint64_t seed,
                                                           Precision precision, cudaStream_t stream) {
  std::unique_ptr<DeviceModel> m(new DeviceModel(config, precision, stream));
  RETURN_IF_ERROR(m->Init());
  const ModelConfig& c = m->config_;
  const int64_t hidden = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), inter = c.intermediate_size;
  const double layers = c.num_layers;
  uint64_t stream_id = seed * 1000003ull;
  // The synthetic generator's scales (attention/synthetic_model.h), so activations and logits look alike.
  auto fill = [&](DeviceBuffer* b, int64_t n, float mean, float stddev) -> Status {
    RETURN_IF_ERROR(b->Allocate(static_cast<size_t>(n) * 2));
    return LaunchFillNormal(b->get(), n, ++stream_id, mean, stddev, precision, stream);
  };
  auto fill_f32 = [&](DeviceBuffer* b, int64_t n, float mean, float stddev) -> Status {
    RETURN_IF_ERROR(b->Allocate(static_cast<size_t>(n) * 4));
    return LaunchFillNormalF32(b->as<float>(), n, ++stream_id, mean, stddev, stream);
  };
  const float proj = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hidden)));
  RETURN_IF_ERROR(fill(&m->embed_, c.vocab_size * hidden, 0.0f, c.tie_word_embeddings ? 2.0f * proj : 1.0f));
  if (!c.tie_word_embeddings) RETURN_IF_ERROR(fill(&m->lm_head_, c.vocab_size * hidden, 0.0f, 2.0f * proj));
  RETURN_IF_ERROR(fill_f32(&m->final_norm_, hidden, 1.0f, 0.05f));
  for (int l = 0; l < c.num_layers; ++l) {
    DeviceLayer& d = m->layers_[l];
    RETURN_IF_ERROR(fill_f32(&d.input_norm, hidden, 1.0f, 0.05f));
    RETURN_IF_ERROR(fill_f32(&d.post_norm, hidden, 1.0f, 0.05f));
    RETURN_IF_ERROR(fill(&d.wqkv, (qd + 2 * kvd) * hidden, 0.0f, proj));
    if (c.qkv_bias) RETURN_IF_ERROR(fill_f32(&d.bqkv, qd + 2 * kvd, 0.0f, 0.2f));
    RETURN_IF_ERROR(fill(&d.wo, hidden * qd, 0.0f, static_cast<float>(1.0 / std::sqrt(qd * layers))));
    if (c.o_bias) RETURN_IF_ERROR(fill_f32(&d.bo, hidden, 0.0f, 0.2f));
    RETURN_IF_ERROR(fill(&d.wgu, 2 * inter * hidden, 0.0f, proj));
    RETURN_IF_ERROR(fill(&d.wdown, hidden * inter, 0.0f, static_cast<float>(1.0 / std::sqrt(inter * layers))));
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return m;
}

Status DeviceModel::ReserveScratch(int64_t n, int64_t logits_rows, size_t attn_floats) {
  (void)logits_rows;  // logits live in caller-owned buffers
  const ModelConfig& c = config_;
  bool grew = false;
  if (n > scratch_tokens_) {
    const size_t t = static_cast<size_t>(n);
    RETURN_IF_ERROR(x_.Reserve(t * c.hidden_size * 4, &grew));
    RETURN_IF_ERROR(xn_.Reserve(t * c.hidden_size * 2, &grew));
    RETURN_IF_ERROR(qkv_.Reserve(t * (c.q_dim() + 2 * c.kv_dim()) * 2, &grew));
    RETURN_IF_ERROR(q_.Reserve(t * c.q_dim() * 2, &grew));
    RETURN_IF_ERROR(attn_.Reserve(t * c.q_dim() * 2, &grew));
    RETURN_IF_ERROR(gu_.Reserve(t * 2 * c.intermediate_size * 2, &grew));
    RETURN_IF_ERROR(h_.Reserve(t * c.intermediate_size * 2, &grew));
    scratch_tokens_ = n;
  }
  if (attn_floats > attn_ws_floats_) {
    RETURN_IF_ERROR(attn_ws_.Reserve(attn_floats * 4, &grew));
    attn_ws_floats_ = attn_floats;
  }
  if (grew) ++scratch_generation_;
  return Status::OK();
}

namespace {

// BLOCKKV_CUDA_PROFILE=1: every eager forward pass times its ops with CUDA events, waits for them, and prints
// one line of per-op totals (microseconds over all layers) to stderr. Diagnostics only; off by default.
class OpProfile {
 public:
  enum Op { kEmbed, kNorm, kQkv, kRope, kAttn, kO, kGu, kSwiGlu, kDown, kHead, kCount };
  OpProfile(cudaStream_t s, int64_t n, int max_keys) : stream_(s), n_(n), max_keys_(max_keys) {
    static const bool env = [] {
      const char* v = std::getenv("BLOCKKV_CUDA_PROFILE");
      return v != nullptr && v[0] == '1';
    }();
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    on_ = env && cudaStreamIsCapturing(s, &cs) == cudaSuccess && cs == cudaStreamCaptureStatusNone;
  }
  ~OpProfile() {
    if (!on_) return;
    float total[kCount] = {};
    if (cudaStreamSynchronize(stream_) == cudaSuccess) {
      for (const auto& m : marks_) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, m.start, m.stop) == cudaSuccess) total[m.op] += ms;
      }
    }
    for (auto& m : marks_) cudaEventDestroy(m.start), cudaEventDestroy(m.stop);
    static const char* kNames[kCount] = {"embed", "norm", "qkv_gemm", "qkv_rope", "attention", "o_gemm",
                                         "gate_up_gemm", "swiglu", "down_gemm", "head"};
    float sum = 0;
    std::string line = "cuda_profile n=" + std::to_string(n_) + " keys=" + std::to_string(max_keys_) + " (us):";
    for (int i = 0; i < kCount; ++i) {
      sum += total[i];
      line += " " + std::string(kNames[i]) + "=" + std::to_string(static_cast<int>(total[i] * 1000.0f));
    }
    line += " sum=" + std::to_string(static_cast<int>(sum * 1000.0f));
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  void Begin(Op op) {
    if (!on_) return;
    Mark m{op, nullptr, nullptr};
    cudaEventCreate(&m.start);
    cudaEventCreate(&m.stop);
    cudaEventRecord(m.start, stream_);
    marks_.push_back(m);
  }
  void End() {
    if (on_ && !marks_.empty()) cudaEventRecord(marks_.back().stop, stream_);
  }

 private:
  struct Mark {
    Op op;
    cudaEvent_t start, stop;
  };
  cudaStream_t stream_;
  int64_t n_;
  int max_keys_;
  bool on_ = false;
  std::vector<Mark> marks_;
};

}  // namespace

Status DeviceModel::Forward(const ForwardArgs& a) {
  const ModelConfig& c = config_;
  const int64_t n = a.n;
  const int hidden = c.hidden_size, qd = c.q_dim(), kvd = c.kv_dim(), inter = c.intermediate_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  if (n <= 0 || n > scratch_tokens_ || a.k_dst.size() != static_cast<size_t>(c.num_layers) ||
      a.v_dst.size() != a.k_dst.size()) {
    return Status::InvalidArgument("forward: scratch or KV destinations not set up for this pass");
  }
  const bool encode = !a.k_raw.empty();
  const bool need_hidden = a.logits_rows > 0;
  const Precision pr = precision_;
  cudaStream_t s = stream_;
  using Out = Gemm::Output;

  // x: (n, hidden) fp32 residual stream.
  OpProfile prof(s, n, a.max_keys);
  using P = OpProfile;
  prof.Begin(P::kEmbed);
  RETURN_IF_ERROR(LaunchEmbed(embed_.get(), a.ids, n, hidden, x_.as<float>(), pr, s));
  prof.End();
  for (int l = 0; l < c.num_layers; ++l) {
    const DeviceLayer& w = layers_[l];
    // xn = norm(x); qkv = xn [wq; wk; wv]^T: (n, q_dim + 2 kv_dim)
    prof.Begin(P::kNorm);
    RETURN_IF_ERROR(LaunchRmsNorm(x_.as<float>(), w.input_norm.as<float>(), n, hidden, eps, xn_.get(), pr, s));
    prof.End();
    prof.Begin(P::kQkv);
    RETURN_IF_ERROR(gemm_->Linear(xn_.get(), w.wqkv.get(), qkv_.get(), n, hidden, qd + 2 * kvd, Out::kStorage, pr, s));
    prof.End();
    // q: (n, heads, head_dim) rotated; rotated k and v into the cache rows (or scratch); pre-RoPE k, v out.
    QkvRopeParams rp;
    rp.qkv = qkv_.get();
    rp.bias = w.bqkv.as<float>();
    rp.pos = a.pos;
    rp.inv_freq = inv_freq_.as<float>();
    rp.n = n;
    rp.heads = c.num_heads, rp.kv_heads = c.num_kv_heads, rp.head_dim = c.head_dim;
    rp.rotary_dim = c.rope.rotary_dim;
    rp.q = q_.get();
    rp.k_cache = a.k_dst[l], rp.v_cache = a.v_dst[l], rp.rows_at_pos = a.rows_at_pos;
    if (encode) rp.k_raw = a.k_raw[l], rp.v_raw = a.v_raw[l];
    prof.Begin(P::kRope);
    RETURN_IF_ERROR(LaunchQkvRope(rp, pr, s));
    prof.End();
    if (!need_hidden && l == c.num_layers - 1) break;
    if (a.before_attention) RETURN_IF_ERROR(a.before_attention(l));

    // attn: (n, heads, head_dim) = softmax(q k^T * scale) v over each sequence's keys.
    AttnParams ap;
    ap.q = q_.get();
    ap.k = a.k_dst[l], ap.v = a.v_dst[l];
    ap.out = attn_.get();
    ap.seqs = a.seqs, ap.num_seqs = a.num_seqs;
    ap.q_tokens = static_cast<int>(n);
    ap.heads = c.num_heads, ap.kv_heads = c.num_kv_heads, ap.head_dim = c.head_dim;
    ap.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    ap.max_rows = a.max_rows, ap.max_keys = a.max_keys;
    ap.num_splits = a.num_splits > 0 ? a.num_splits
                                     : AttentionSplits(a.max_rows, a.max_keys, c.num_kv_heads, a.num_seqs, sm_count_);
    if (AttentionPartialFloats(ap.num_splits, ap.q_tokens, ap.heads, ap.head_dim) > attn_ws_floats_) {
      return Status::Internal("forward: attention workspace not reserved");
    }
    ap.workspace = attn_ws_.as<float>();
    prof.Begin(P::kAttn);
    RETURN_IF_ERROR(LaunchAttention(ap, pr, sm_count_, s));
    prof.End();
    // x += attn wo^T (+ bo)
    prof.Begin(P::kO);
    RETURN_IF_ERROR(gemm_->Linear(attn_.get(), w.wo.get(), x_.get(), n, qd, hidden, Out::kF32Accumulate, pr, s));
    if (w.bo.get() != nullptr) RETURN_IF_ERROR(LaunchAddBias(x_.as<float>(), w.bo.as<float>(), n, hidden, s));
    prof.End();
    // x += swiglu(norm(x) [w_gate; w_up]^T) w_down^T
    prof.Begin(P::kNorm);
    RETURN_IF_ERROR(LaunchRmsNorm(x_.as<float>(), w.post_norm.as<float>(), n, hidden, eps, xn_.get(), pr, s));
    prof.End();
    prof.Begin(P::kGu);
    RETURN_IF_ERROR(gemm_->Linear(xn_.get(), w.wgu.get(), gu_.get(), n, hidden, 2 * inter, Out::kStorage, pr, s));
    prof.End();
    prof.Begin(P::kSwiGlu);
    RETURN_IF_ERROR(LaunchSwiGlu(gu_.get(), n, inter, h_.get(), pr, s));
    prof.End();
    prof.Begin(P::kDown);
    RETURN_IF_ERROR(gemm_->Linear(h_.get(), w.wdown.get(), x_.get(), n, inter, hidden, Out::kF32Accumulate, pr, s));
    prof.End();
  }
  if (need_hidden) {
    // logits: (rows, vocab) fp32 = norm(x[last rows]) lm_head^T
    const int64_t rows = a.logits_rows;
    const float* last = x_.as<float>() + (n - rows) * hidden;
    prof.Begin(P::kHead);
    RETURN_IF_ERROR(LaunchRmsNorm(last, final_norm_.as<float>(), rows, hidden, eps, xn_.get(), pr, s));
    const void* head = c.tie_word_embeddings ? embed_.get() : lm_head_.get();
    RETURN_IF_ERROR(gemm_->Linear(xn_.get(), head, a.logits, rows, hidden, c.vocab_size, Out::kF32, pr, s));
    prof.End();
  }
  return Status::OK();
}

}  // namespace blockkv::cuda
