// CudaRuntime::PrefillSegments and its special case PrefillStreamed: a prompt's blocks from wherever they live
// (the GPU tier, pinned host memory, the store through reader threads), and UploadBlockRaw, which makes a
// device block of host bytes (the GPU tier's admission).
//
// The cache is laid out in prompt order whatever the sources, and every key is rotated by the same kernels
// at the same position as in Prefill, so the logits do not depend on where a block came from.
#include <algorithm>
#include <cstring>

#include "attention/cuda/cuda_runtime_impl.h"
#include "attention/cuda/rope.cuh"

namespace blockkv::cuda {

namespace {

// A run of consecutive cache rows whose pre-RoPE keys lie consecutively in a layer's key stage.
struct StageRun {
  size_t stage_offset = 0;  // bytes into the stage
  int64_t row = 0;          // first cache row (= its position)
  int64_t tokens = 0;
};

// Appends a run, merged into the last one where both its stage bytes and its rows follow on.
void AddRun(std::vector<StageRun>& runs, StageRun r, size_t row_bytes) {
  if (!runs.empty()) {
    StageRun& last = runs.back();
    if (last.stage_offset + last.tokens * row_bytes == r.stage_offset && last.row + last.tokens == r.row) {
      last.tokens += r.tokens;
      return;
    }
  }
  runs.push_back(r);
}

// cudaEvent pair timing device work; destroyed with it.
struct EventTimer {
  cudaEvent_t start = nullptr, stop = nullptr;
  ~EventTimer() {
    if (start != nullptr) cudaEventDestroy(start);
    if (stop != nullptr) cudaEventDestroy(stop);
  }
};

}  // namespace

StatusOr<std::unique_ptr<DeviceBlock>> CudaRuntime::UploadBlockRaw(uint32_t tokens, const LayerFill& fill) {
  const ModelConfig& c = config();
  const size_t n = static_cast<size_t>(tokens) * c.kv_dim();
  std::unique_ptr<DeviceBlock> blk(new DeviceBlock());
  DeviceBlock::Impl& d = *blk->impl_;
  d.tokens = tokens;
  d.storage = std::make_shared<DeviceBuffer>();
  d.bytes = n * 2 * 2 * c.num_layers;
  RETURN_IF_ERROR(d.storage->Allocate(std::max<size_t>(d.bytes, 2)));
  std::vector<uint16_t> k(n), v(n);
  uint16_t* base = d.storage->as<uint16_t>();
  for (int l = 0; l < c.num_layers; ++l) {
    d.k.push_back(base + (2 * l) * n);
    d.v.push_back(base + (2 * l + 1) * n);
    RETURN_IF_ERROR(fill(l, k.data(), v.data()));
    CUDA_RETURN_IF_ERROR(cudaMemcpy(d.k[l], k.data(), n * 2, cudaMemcpyHostToDevice));
    CUDA_RETURN_IF_ERROR(cudaMemcpy(d.v[l], v.data(), n * 2, cudaMemcpyHostToDevice));
  }
  return blk;
}

StatusOr<CudaPrefillResult> CudaRuntime::PrefillStreamed(int64_t block_tokens, const LayerReader& read,
                                                         std::span<const int32_t> final_tokens,
                                                         const PrefillOptions& options, int64_t capacity,
                                                         const StreamOptions* stream, StreamStats* stats) {
  if (block_tokens < 0) return Status::InvalidArgument("negative block token count");
  PromptSegment all;
  all.tokens = block_tokens;
  return PrefillSegments(std::span<const PromptSegment>(&all, block_tokens > 0 ? 1 : 0), read, final_tokens, options,
                         capacity, stream, stats);
}

StatusOr<CudaPrefillResult> CudaRuntime::PrefillSegments(std::span<const PromptSegment> segments,
                                                         const LayerReader& read, std::span<const int32_t> final_tokens,
                                                         const PrefillOptions& options, int64_t capacity,
                                                         const StreamOptions* stream, StreamStats* stats,
                                                         std::unique_ptr<DeviceKVCache>* reuse) {
  const ModelConfig& c = config();
  RETURN_IF_ERROR(CheckTokens(final_tokens).WithContext("final block"));
  const size_t kvd = c.kv_dim(), row_bytes = kvd * 2;
  int64_t block_tokens = 0, read_tokens = 0, host_tokens = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const PromptSegment& s = segments[i];
    const std::string what = "block " + std::to_string(i);
    if (s.tokens < 0) return Status::InvalidArgument(what + ": negative token count");
    if (s.device != nullptr && s.host != nullptr) return Status::InvalidArgument(what + ": two sources");
    if (s.device != nullptr) {
      if (s.device->impl_->k.size() != static_cast<size_t>(c.num_layers) || s.device->tokens() != s.tokens)
        return Status::InvalidArgument(what + " does not match its device block (another model's, or other tokens)");
    } else if (s.host != nullptr) {
      if (s.host_value_offset < s.tokens * row_bytes || s.host_layer_stride < s.host_value_offset + s.tokens * row_bytes)
        return Status::InvalidArgument(what + ": host layout smaller than its keys and values");
      host_tokens += s.tokens;
    } else {
      read_tokens += s.tokens;
    }
    block_tokens += s.tokens;
  }
  if (read_tokens > 0 && !read) return Status::InvalidArgument("blocks to read but no reader");
  const int64_t total = block_tokens + static_cast<int64_t>(final_tokens.size());
  RETURN_IF_ERROR(CheckLength(c, total));
  CudaPrefillResult result;
  if (reuse != nullptr && *reuse != nullptr) {
    result.cache = std::move(*reuse);
    result.cache->impl_->length = 0;
    RETURN_IF_ERROR(Reserve(*result.cache, std::max(total, capacity)));
  } else {
    ASSIGN_OR_RETURN(result.cache, NewCache(std::max(total, capacity)));
  }
  DeviceKVCache::Impl& kc = *result.cache->impl_;
  if (stats != nullptr) *stats = StreamStats();

  // Device blocks: every layer of every one re-encoded into its rows with one launch, before the pass.
  std::vector<RopeAppendJob> device_jobs;
  int device_max = 0;
  for (int l = 0; l < c.num_layers; ++l) {
    int64_t row = 0;
    for (const PromptSegment& s : segments) {
      if (s.device != nullptr && s.tokens > 0) {
        const DeviceBlock::Impl& d = *s.device->impl_;
        device_jobs.push_back({d.k[l], d.v[l], kc.k[l].as<uint16_t>() + row * kvd, kc.v[l].as<uint16_t>() + row * kvd,
                               static_cast<int32_t>(s.tokens), static_cast<int32_t>(row)});
        device_max = std::max(device_max, static_cast<int>(s.tokens));
      }
      row += s.tokens;
    }
  }
  EventTimer timer;
  if (!device_jobs.empty()) {
    CUDA_RETURN_IF_ERROR(cudaEventCreate(&timer.start));
    CUDA_RETURN_IF_ERROR(cudaEventCreate(&timer.stop));
    RETURN_IF_ERROR(UploadVector(device_jobs, &impl_->jobs, impl_->stream));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(timer.start, impl_->stream));
    RETURN_IF_ERROR(LaunchRopeAppend(impl_->jobs.as<RopeAppendJob>(), static_cast<int>(device_jobs.size()), device_max,
                                     c.num_kv_heads, c.head_dim, c.rope.rotary_dim, impl_->model->inv_freq(),
                                     precision(), impl_->stream));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(timer.stop, impl_->stream));
  }
  kc.length = block_tokens;  // the other blocks' rows arrive layer by layer during the pass
  auto device_ms = [&] {
    float ms = 0;
    if (timer.stop != nullptr && cudaEventElapsedTime(&ms, timer.start, timer.stop) == cudaSuccess && stats != nullptr)
      stats->device_ms = ms;
  };
  if (read_tokens + host_tokens == 0) {
    ASSIGN_OR_RETURN(result.logits, ExtendImpl(*result.cache, final_tokens, options.all_logits));
    device_ms();
    return result;
  }

  // The key stage of a layer: the read blocks' keys first (as the reader writes them), then the host blocks'.
  std::vector<StageRun> key_runs, value_runs;  // value runs: read blocks only (offsets into the read values)
  struct HostSeg {
    const PromptSegment* seg;
    size_t stage_offset;
    int64_t row;
  };
  std::vector<HostSeg> host_segs;
  {
    size_t read_off = 0, host_off = static_cast<size_t>(read_tokens) * row_bytes;
    int64_t row = 0;
    for (const PromptSegment& s : segments) {
      if (s.tokens > 0 && s.device == nullptr) {
        if (s.host == nullptr) {
          AddRun(key_runs, {read_off, row, s.tokens}, row_bytes);
          AddRun(value_runs, {read_off, row, s.tokens}, row_bytes);
          read_off += s.tokens * row_bytes;
        } else {
          AddRun(key_runs, {host_off, row, s.tokens}, row_bytes);
          host_segs.push_back({&s, host_off, row});
          host_off += s.tokens * row_bytes;
        }
      }
      row += s.tokens;
    }
  }
  if (impl_->streamer == nullptr) {
    ASSIGN_OR_RETURN(impl_->streamer, LayerStreamer::Create());
  }
  LayerStreamer& streamer = *impl_->streamer;
  const size_t read_bytes = static_cast<size_t>(read_tokens) * row_bytes;
  const size_t stage_bytes = static_cast<size_t>(read_tokens + host_tokens) * row_bytes;
  const StreamOptions so = stream != nullptr ? *stream
                                             : StreamOptions{impl_->options.stream_slots, impl_->options.stream_readers};
  RETURN_IF_ERROR(streamer.Start(c.num_layers, read_bytes, stage_bytes, read, so.slots, so.readers));

  // More than one key run: one launch per layer over jobs prepared for all layers (the stage addresses are
  // known now). One run (every streamed block contiguous, the common case) rotates with LaunchRopeKeys.
  const size_t runs = key_runs.size();
  int max_run = 0;
  for (const StageRun& r : key_runs) max_run = std::max(max_run, static_cast<int>(r.tokens));
  Status st;
  if (runs > 1) {
    std::vector<RopeAppendJob> jobs;
    jobs.reserve(runs * c.num_layers);
    for (int l = 0; l < c.num_layers; ++l) {
      const char* stage = static_cast<const char*>(streamer.KeyStage(l));
      for (const StageRun& r : key_runs) {
        jobs.push_back({stage + r.stage_offset, nullptr, kc.k[l].as<uint16_t>() + r.row * kvd, nullptr,
                        static_cast<int32_t>(r.tokens), static_cast<int32_t>(r.row)});
      }
    }
    st = UploadVector(jobs, &impl_->stream_jobs, impl_->stream);
  }
  std::vector<LayerStreamer::ValueRun> values;
  std::vector<LayerStreamer::PinnedCopy> pinned;
  const std::function<Status(int)> deliver = [&](int l) -> Status {
    values.clear();
    pinned.clear();
    for (const StageRun& r : value_runs)
      values.push_back({r.stage_offset, kc.v[l].as<uint16_t>() + r.row * kvd, static_cast<size_t>(r.tokens) * row_bytes});
    for (const HostSeg& h : host_segs) {
      const uint8_t* k = h.seg->host + static_cast<size_t>(l) * h.seg->host_layer_stride;
      pinned.push_back({k, k + h.seg->host_value_offset, static_cast<size_t>(h.seg->tokens) * row_bytes, h.stage_offset,
                        kc.v[l].as<uint16_t>() + h.row * kvd});
    }
    ASSIGN_OR_RETURN(const void* stage, streamer.Deliver(l, values, pinned, impl_->stream));
    if (runs == 1) {
      const StageRun& r = key_runs[0];
      RETURN_IF_ERROR(LaunchRopeKeys(static_cast<const char*>(stage) + r.stage_offset,
                                     kc.k[l].as<uint16_t>() + r.row * kvd, r.tokens, c.num_kv_heads, c.head_dim,
                                     c.rope.rotary_dim, impl_->model->inv_freq(), r.row, precision(), impl_->stream));
    } else {
      RETURN_IF_ERROR(LaunchRopeAppend(impl_->stream_jobs.as<RopeAppendJob>() + static_cast<size_t>(l) * runs,
                                       static_cast<int>(runs), max_run, c.num_kv_heads, c.head_dim, c.rope.rotary_dim,
                                       impl_->model->inv_freq(), precision(), impl_->stream));
    }
    return streamer.Consumed(l, impl_->stream);
  };
  if (!st.ok()) {
    (void)streamer.Finish();
    return st;
  }
  StatusOr<std::vector<float>> logits = ExtendImpl(*result.cache, final_tokens, options.all_logits, &deliver);
  LayerStreamer::Stats ls;
  const Status finished = streamer.Finish(&ls);
  if (stats != nullptr) {
    stats->read_ms = ls.read_ms;
    stats->wait_ms = ls.wait_ms;
    stats->bytes = ls.bytes;
    stats->host_bytes = static_cast<size_t>(host_tokens) * row_bytes * 2 * c.num_layers;
  }
  if (!logits.ok()) {
    cudaStreamSynchronize(impl_->stream);  // work enqueued before the error still reads the cache
    return logits.status();
  }
  RETURN_IF_ERROR(finished);
  device_ms();
  result.logits = std::move(logits).value();
  return result;
}

}  // namespace blockkv::cuda
