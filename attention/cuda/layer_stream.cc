#include "attention/cuda/layer_stream.h"

#include <chrono>

#include "attention/cuda/cuda_status.h"

namespace blockkv::cuda {

namespace {
double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

StatusOr<std::unique_ptr<LayerStreamer>> LayerStreamer::Create() {
  std::unique_ptr<LayerStreamer> s(new LayerStreamer());
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&s->copy_, cudaStreamNonBlocking));
  return s;
}

LayerStreamer::~LayerStreamer() {
  (void)Finish();
  for (void* p : pinned_) cudaFreeHost(p);
  for (cudaEvent_t e : copied_) cudaEventDestroy(e);
  for (cudaEvent_t e : consumed_) cudaEventDestroy(e);
  if (copy_ != nullptr) cudaStreamDestroy(copy_);
}

Status LayerStreamer::Reserve(int slots, size_t host_bytes, size_t stage_bytes) {
  if (slots <= slot_count_ && host_bytes <= host_slot_bytes_ && stage_bytes <= stage_slot_bytes_) return Status::OK();
  // Grow to the larger of both (no pass is running: every copy and every event wait has completed).
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_));
  slot_count_ = std::max(slots, slot_count_);
  if (host_bytes > host_slot_bytes_ || static_cast<int>(pinned_.size()) < 2 * slot_count_) {
    for (void* p : pinned_) cudaFreeHost(p);
    pinned_.clear();
    host_slot_bytes_ = std::max(host_bytes, host_slot_bytes_);
    for (int i = 0; host_slot_bytes_ > 0 && i < 2 * slot_count_; ++i) {
      void* p = nullptr;
      const cudaError_t e = cudaHostAlloc(&p, host_slot_bytes_, cudaHostAllocDefault);
      if (e != cudaSuccess) {
        host_slot_bytes_ = 0;
        for (void* q : pinned_) cudaFreeHost(q);
        pinned_.clear();
        return CudaStatus(e, "cudaHostAlloc (layer staging)");
      }
      pinned_.push_back(p);
    }
  }
  // 256-byte aligned slots, so every slot's stage starts aligned for the kernels' vector loads.
  stage_slot_bytes_ = std::max((stage_bytes + 255) / 256 * 256, stage_slot_bytes_);
  RETURN_IF_ERROR(k_stage_.Reserve(stage_slot_bytes_ * slot_count_));
  while (static_cast<int>(copied_.size()) < slot_count_) {
    cudaEvent_t a = nullptr, b = nullptr;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&a, cudaEventDisableTiming));
    copied_.push_back(a);
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&b, cudaEventDisableTiming));
    consumed_.push_back(b);
  }
  return Status::OK();
}

Status LayerStreamer::Start(int num_layers, size_t read_bytes, size_t stage_bytes, Reader read, int slots,
                            int readers) {
  if (!threads_.empty()) return Status::Internal("layer streamer: a pass is already running");
  if (num_layers <= 0 || stage_bytes == 0 || stage_bytes < read_bytes || slots < 2 || readers < 1 ||
      readers >= slots || (read_bytes > 0 && !read)) {
    return Status::InvalidArgument("layer streamer: bad arguments");
  }
  RETURN_IF_ERROR(Reserve(slots, read_bytes, stage_bytes));
  read_ = std::move(read);
  bytes_ = read_bytes;
  layers_ = num_layers;
  slots_ = slots;
  next_to_read_ = 0;
  delivered_ = 0;
  ready_.assign(num_layers, read_bytes == 0 ? 1 : 0);
  error_ = Status::OK();
  stop_ = false;
  stats_ = Stats();
  if (read_bytes == 0) return Status::OK();  // pinned copies only: nothing to read
  int device = 0;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  for (int i = 0; i < readers; ++i) {
    threads_.emplace_back([this, device] {
      cudaSetDevice(device);  // the caller's device, for the event waits (a new thread starts on device 0)
      ReaderLoop();
    });
  }
  return Status::OK();
}

const void* LayerStreamer::KeyStage(int layer) const {
  return k_stage_.as<char>() + static_cast<size_t>(layer % slots_) * stage_slot_bytes_;
}

void LayerStreamer::ReaderLoop() {
  for (;;) {
    int layer;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_ || next_to_read_ >= layers_) return;
      layer = next_to_read_++;
      // The slot is free once the layer `slots_` before this one has had its copy enqueued (and completed:
      // the event wait below).
      cv_.wait(lock, [&] { return stop_ || delivered_ > layer - slots_; });
      if (stop_) return;
    }
    const int slot = layer % slots_;
    Status s;
    if (layer >= slots_) s = CudaStatus(cudaEventSynchronize(copied_[slot]), "cudaEventSynchronize (layer staging)");
    const auto t0 = std::chrono::steady_clock::now();
    if (s.ok()) s = read_(layer, pinned_[2 * slot], pinned_[2 * slot + 1]);
    const double ms = MsSince(t0);
    std::lock_guard<std::mutex> lock(mu_);
    stats_.read_ms += ms;
    if (!s.ok()) {
      if (error_.ok()) error_ = s.WithContext("layer " + std::to_string(layer));
      stop_ = true;
    } else {
      ready_[layer] = 1;
    }
    cv_.notify_all();
  }
}

Status LayerStreamer::CopyPinned(int slot, std::span<const PinnedCopy> pinned) {
  if (pinned.empty()) return Status::OK();
  char* stage = k_stage_.as<char>() + static_cast<size_t>(slot) * stage_slot_bytes_;
  batch_dst_.clear();
  batch_src_.clear();
  batch_size_.clear();
  for (const PinnedCopy& p : pinned) {
    if (p.stage_offset + p.bytes > stage_slot_bytes_) return Status::Internal("layer streamer: pinned copy past the stage");
    batch_dst_.push_back(stage + p.stage_offset);
    batch_src_.push_back(p.k_src);
    batch_size_.push_back(p.bytes);
    batch_dst_.push_back(p.v_dst);
    batch_src_.push_back(p.v_src);
    batch_size_.push_back(p.bytes);
  }
  // One call for the layer's copies (each a DMA from pinned memory), instead of two driver calls per block.
  cudaMemcpyAttributes attr = {};
  attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  size_t attr_index = 0;
  if (cudaMemcpyBatchAsync(batch_dst_.data(), batch_src_.data(), batch_size_.data(), batch_dst_.size(), &attr,
                           &attr_index, 1, copy_) == cudaSuccess) {
    return Status::OK();
  }
  (void)cudaGetLastError();  // not supported here: one copy at a time
  for (size_t i = 0; i < batch_dst_.size(); ++i) {
    CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(batch_dst_[i], batch_src_[i], batch_size_[i], cudaMemcpyHostToDevice, copy_));
  }
  return Status::OK();
}

StatusOr<const void*> LayerStreamer::Deliver(int layer, std::span<const ValueRun> values,
                                             std::span<const PinnedCopy> pinned, cudaStream_t consumer) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    if (layer != delivered_ || layer >= layers_) return Status::Internal("layer streamer: layers out of order");
    const auto t0 = std::chrono::steady_clock::now();
    cv_.wait(lock, [&] { return ready_[layer] || !error_.ok() || stop_; });
    stats_.wait_ms += MsSince(t0);
    if (!error_.ok()) return error_;
    if (!ready_[layer]) return Status::Internal("layer streamer: stopped");
  }
  const int slot = layer % slots_;
  char* stage = k_stage_.as<char>() + static_cast<size_t>(slot) * stage_slot_bytes_;
  // The key stage of this slot was last read by the consumer for layer - slots_.
  if (layer >= slots_) CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_, consumed_[slot], 0));
  size_t bytes = 0;
  if (bytes_ > 0) {
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(stage, pinned_[2 * slot], bytes_, cudaMemcpyHostToDevice, copy_));
    bytes += bytes_;
    for (const ValueRun& r : values) {
      if (r.src_offset + r.bytes > bytes_) return Status::Internal("layer streamer: value run past the layer");
      CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(r.dst, static_cast<const char*>(pinned_[2 * slot + 1]) + r.src_offset,
                                           r.bytes, cudaMemcpyHostToDevice, copy_));
      bytes += r.bytes;
    }
  }
  RETURN_IF_ERROR(CopyPinned(slot, pinned));
  for (const PinnedCopy& p : pinned) bytes += 2 * p.bytes;
  CUDA_RETURN_IF_ERROR(cudaEventRecord(copied_[slot], copy_));
  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(consumer, copied_[slot], 0));
  {
    std::lock_guard<std::mutex> lock(mu_);
    delivered_ = layer + 1;
    stats_.bytes += bytes;
  }
  cv_.notify_all();
  return static_cast<const void*>(stage);
}

Status LayerStreamer::Consumed(int layer, cudaStream_t consumer) {
  return CudaStatus(cudaEventRecord(consumed_[layer % slots_], consumer), "cudaEventRecord (layer consumed)");
}

Status LayerStreamer::Finish(Stats* stats) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  threads_.clear();
  Status s = error_;
  if (copy_ != nullptr) {
    const Status sync = CudaStatus(cudaStreamSynchronize(copy_), "cudaStreamSynchronize (layer copies)");
    if (s.ok()) s = sync;
  }
  if (stats != nullptr) *stats = stats_;
  error_ = Status::OK();
  return s;
}

}  // namespace blockkv::cuda
