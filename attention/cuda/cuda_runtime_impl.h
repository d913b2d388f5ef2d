// The insides of CudaRuntime and its caches and blocks, shared by the files that implement them
// (cuda_runtime.cc, segment_prefill.cc). Not a public header.
#pragma once

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "attention/cuda/cuda_runtime.h"
#include "attention/cuda/cuda_status.h"
#include "attention/cuda/device_model.h"
#include "attention/cuda/layer_stream.h"
#include "db/dtype.h"

namespace blockkv::cuda {

// ---- caches and blocks ----

struct DeviceKVCache::Impl {
  int64_t capacity = 0, length = 0;
  std::vector<DeviceBuffer> k, v;  // [layer] (capacity, kv_heads, head_dim) T, keys rotated
  // Decode-step state on the device: token, next token, position, then one AttnSeq.
  DeviceBuffer state;
  DeviceBuffer logits;  // (vocab) fp32: the decode step's logits
  // Sampling on the device: the generator's state (4 uint64) and the sort scratch (sampling.cuh).
  DeviceBuffer rng, sample_scratch;
  int32_t* token() const { return state.as<int32_t>(); }
  int32_t* next() const { return state.as<int32_t>() + 1; }
  int32_t* pos() const { return state.as<int32_t>() + 2; }
  AttnSeq* seq() const { return reinterpret_cast<AttnSeq*>(state.as<int32_t>() + 4); }
  // The captured decode step and what it was captured against (the scratch generation and the sampling
  // rule, whose parameters the step bakes in).
  cudaGraphExec_t graph = nullptr;
  uint64_t graph_generation = 0;
  float graph_temperature = 0, graph_top_p = 1;
  int graph_top_k = 0;
  // The captured Extend pass, the key it was captured for, and the key of the last eager pass (a key seen
  // twice in a row is captured). Keys hold every shape and address the pass bakes in.
  using ExtendKey = std::array<int64_t, 11>;
  cudaGraphExec_t extend_graph = nullptr;
  ExtendKey extend_graph_key{}, last_extend_key{};
  bool have_last_extend = false;
  void DropDecodeGraph() {
    if (graph != nullptr) cudaGraphExecDestroy(graph);
    graph = nullptr;
  }
  void DropGraph() {
    DropDecodeGraph();
    if (extend_graph != nullptr) cudaGraphExecDestroy(extend_graph);
    extend_graph = nullptr;
    have_last_extend = false;
  }
  ~Impl() { DropGraph(); }
};


struct DeviceBlock::Impl {
  uint32_t tokens = 0;
  std::shared_ptr<DeviceBuffer> storage;  // shared by the blocks encoded together
  std::vector<void*> k, v;                // [layer] (tokens, kv_heads, head_dim) T, pre-RoPE
  size_t bytes = 0;
};


// ---- the runtime ----

struct CudaRuntime::Impl {
  CudaRuntimeOptions options;
  cudaStream_t stream = nullptr;
  std::string device_name;
  std::unique_ptr<DeviceModel> model;
  // Per-pass inputs (ids, positions, sequences), the logits of Extend, scratch keys/values for encoding.
  DeviceBuffer ids, pos, seqs, logits, k_scratch, v_scratch, jobs;
  // PrefillSegments' per-layer key jobs (the device blocks' jobs go in `jobs`).
  DeviceBuffer stream_jobs;
  // Extend's inputs (ids, positions, one AttnSeq) in one device buffer, one upload per pass.
  DeviceBuffer extend_in;
  // The streaming prefill's readers, pinned ring and copy stream (created on first use, kept).
  std::unique_ptr<LayerStreamer> streamer;
  // Pinned host staging for Extend's logits (D2H at full PCIe speed), up to kPinnedLogitsBytes.
  float* pinned_logits = nullptr;
  size_t pinned_logits_bytes = 0;
  ~Impl() {
    streamer.reset();
    model.reset();
    if (pinned_logits != nullptr) cudaFreeHost(pinned_logits);
    if (stream != nullptr) cudaStreamDestroy(stream);
  }
};

inline DType StorageDType(Precision p) { return p == Precision::kBF16 ? DType::kBF16 : DType::kF16; }

template <typename U>
inline Status UploadVector(const std::vector<U>& host, DeviceBuffer* dst, cudaStream_t stream) {
  RETURN_IF_ERROR(dst->Reserve(std::max<size_t>(host.size() * sizeof(U), 256)));
  // Pageable source: the call returns once `host` has been read, so it may be freed right after.
  return CudaStatus(cudaMemcpyAsync(dst->get(), host.data(), host.size() * sizeof(U), cudaMemcpyHostToDevice, stream),
                    "cudaMemcpyAsync H2D");
}

inline Status CheckLength(const ModelConfig& c, int64_t total) {
  if (c.sliding_window && total > *c.sliding_window) {
    return Status::NotSupported("sequence of " + std::to_string(total) + " tokens exceeds the model's sliding window of " +
                                std::to_string(*c.sliding_window) + " tokens, which this runtime does not implement");
  }
  if (total > (int64_t{1} << 30)) return Status::NotSupported("sequence too long");
  return Status::OK();
}

}  // namespace blockkv::cuda
