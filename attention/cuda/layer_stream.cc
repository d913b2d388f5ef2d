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

Status LayerStreamer::Reserve(int slots, size_t bytes) {
  if (slots <= slot_count_ && bytes <= slot_bytes_) return Status::OK();
  // Grow to the larger of both (no pass is running: every copy and every event wait has completed).
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(copy_));
  for (void* p : pinned_) cudaFreeHost(p);
  pinned_.clear();
  slot_count_ = std::max(slots, slot_count_);
  slot_bytes_ = std::max(bytes, slot_bytes_);
  for (int i = 0; i < 2 * slot_count_; ++i) {
    void* p = nullptr;
    const cudaError_t e = cudaHostAlloc(&p, slot_bytes_, cudaHostAllocDefault);
    if (e != cudaSuccess) {
      slot_count_ = 0, slot_bytes_ = 0;
      for (void* q : pinned_) cudaFreeHost(q);
      pinned_.clear();
      return CudaStatus(e, "cudaHostAlloc (layer staging)");
    }
    pinned_.push_back(p);
  }
  RETURN_IF_ERROR(k_stage_.Reserve(slot_bytes_ * slot_count_));
  while (static_cast<int>(copied_.size()) < slot_count_) {
    cudaEvent_t a = nullptr, b = nullptr;
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&a, cudaEventDisableTiming));
    copied_.push_back(a);
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&b, cudaEventDisableTiming));
    consumed_.push_back(b);
  }
  return Status::OK();
}

Status LayerStreamer::Start(int num_layers, size_t bytes, Reader read, int slots, int readers) {
  if (!threads_.empty()) return Status::Internal("layer streamer: a pass is already running");
  if (num_layers <= 0 || bytes == 0 || slots < 2 || readers < 1 || readers >= slots) {
    return Status::InvalidArgument("layer streamer: bad arguments");
  }
  RETURN_IF_ERROR(Reserve(slots, bytes));
  read_ = std::move(read);
  bytes_ = bytes;
  layers_ = num_layers;
  slots_ = slots;
  next_to_read_ = 0;
  delivered_ = 0;
  ready_.assign(num_layers, 0);
  error_ = Status::OK();
  stop_ = false;
  stats_ = Stats();
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

StatusOr<const void*> LayerStreamer::Deliver(int layer, void* v_dst, cudaStream_t consumer) {
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
  char* stage = k_stage_.as<char>() + static_cast<size_t>(slot) * slot_bytes_;
  // The key stage of this slot was last read by the consumer for layer - slots_.
  if (layer >= slots_) CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_, consumed_[slot], 0));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(stage, pinned_[2 * slot], bytes_, cudaMemcpyHostToDevice, copy_));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(v_dst, pinned_[2 * slot + 1], bytes_, cudaMemcpyHostToDevice, copy_));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(copied_[slot], copy_));
  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(consumer, copied_[slot], 0));
  {
    std::lock_guard<std::mutex> lock(mu_);
    delivered_ = layer + 1;
    stats_.bytes += 2 * bytes_;
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
