// LayerStreamer: per-layer host data to the device, ahead of the work that needs it (DESIGN §5: "decode on
// CPU threads, async H2D from pinned staging on a copy stream, compute layer l while layer l+1 arrives").
//
// Reader threads fill a ring of pinned host slots, each with one layer's keys and values, a few layers
// ahead; Deliver(l) copies slot l on the streamer's copy stream (keys into a device staging slot, values
// straight to their destination) and makes the consumer's stream wait for that copy only. The consumer then
// reads the staged keys on its stream and calls Consumed(l), after which the key slot may be overwritten.
//
//   host readers:  read l+2 | read l+3 | ...        (pinned slots, `slots` layers in flight)
//   copy stream:   H2D l+1
//   consumer:      layer l (RoPE of the staged keys, attention, MLP)
//
// Protocol per pass: Start, then Deliver(0) / Consumed(0), Deliver(1) / Consumed(1), ... in order, then
// Finish (always, also after an error: it stops and joins the readers). A reader error is returned by the
// Deliver that needs its layer, and by Finish. One pass at a time; buffers are kept for the next pass.
#pragma once

#include <cuda_runtime_api.h>

#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "attention/cuda/device_model.h"
#include "db/status.h"

namespace blockkv::cuda {

class LayerStreamer {
 public:
  // Fills k_host and v_host (each `bytes` of pinned memory) with layer `layer`. Called from reader threads,
  // concurrently for different layers.
  using Reader = std::function<Status(int layer, void* k_host, void* v_host)>;

  struct Stats {
    double read_ms = 0;  // summed over the readers' calls
    double wait_ms = 0;  // Deliver waiting for a layer that was not read yet (the consumer starved)
    size_t bytes = 0;    // copied to the device, keys and values
  };

  static StatusOr<std::unique_ptr<LayerStreamer>> Create();
  ~LayerStreamer();

  // Starts readers for `num_layers` layers of `bytes` keys and `bytes` values each. slots: pinned layers
  // in flight (>= 2); readers: threads (1 .. slots - 1).
  Status Start(int num_layers, size_t bytes, Reader read, int slots, int readers);
  // Waits for layer `layer` (the next in order) to be read, enqueues its copies, and makes `consumer`
  // wait for them. Returns the device address of the staged keys (valid until Consumed(layer)).
  StatusOr<const void*> Deliver(int layer, void* v_dst, cudaStream_t consumer);
  // The consumer has enqueued its last use of layer `layer`'s staged keys on `consumer`.
  Status Consumed(int layer, cudaStream_t consumer);
  // Stops the readers, waits for the copies; the first reader error if any. Stats of the pass in *stats.
  Status Finish(Stats* stats = nullptr);

 private:
  LayerStreamer() = default;
  void ReaderLoop();
  Status Reserve(int slots, size_t bytes);

  cudaStream_t copy_ = nullptr;
  // Per slot: pinned keys and values, the device key stage, and events.
  std::vector<void*> pinned_;  // 2 per slot: keys, values
  DeviceBuffer k_stage_;
  std::vector<cudaEvent_t> copied_, consumed_;
  size_t slot_bytes_ = 0;
  int slot_count_ = 0;

  // The pass.
  Reader read_;
  size_t bytes_ = 0;
  int layers_ = 0, slots_ = 0;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  int next_to_read_ = 0;  // the next layer a reader takes
  int delivered_ = 0;     // layers 0 .. delivered_-1 have had their copies enqueued
  std::vector<char> ready_;
  Status error_;
  bool stop_ = false;
  Stats stats_;
};

}  // namespace blockkv::cuda
