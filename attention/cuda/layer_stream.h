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
// Blocks already in pinned host memory (the host tier) need no reader: Deliver copies them straight from
// where they live, keys into the stage beside the read keys, values to their destinations.
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
#include <span>
#include <thread>
#include <vector>

#include "attention/cuda/device_model.h"
#include "db/status.h"

namespace blockkv::cuda {

class LayerStreamer {
 public:
  // Fills k_host and v_host (each of the pass's `read_bytes` of pinned memory) with layer `layer`. Called from
  // reader threads, concurrently for different layers.
  using Reader = std::function<Status(int layer, void* k_host, void* v_host)>;

  // Part of a read layer's values, copied from the pinned slot to the device: bytes at src_offset into dst.
  struct ValueRun {
    size_t src_offset = 0;
    void* dst = nullptr;
    size_t bytes = 0;
  };
  // A block already in pinned host memory (the host tier): its keys to the key stage at stage_offset, its values
  // straight to v_dst, `bytes` each, with no reader involved.
  struct PinnedCopy {
    const void* k_src = nullptr;
    const void* v_src = nullptr;
    size_t bytes = 0;
    size_t stage_offset = 0;
    void* v_dst = nullptr;
  };

  struct Stats {
    double read_ms = 0;  // summed over the readers' calls
    double wait_ms = 0;  // Deliver waiting for a layer that was not read yet (the consumer starved)
    size_t bytes = 0;    // copied to the device, keys and values
  };

  static StatusOr<std::unique_ptr<LayerStreamer>> Create();
  ~LayerStreamer();

  // Starts a pass over `num_layers` layers. read_bytes: the keys (and as many values) the readers produce per
  // layer, 0 for none (no threads then); stage_bytes (>= read_bytes): the device key stage per layer, read keys
  // at [0, read_bytes) and pinned copies' keys beyond. slots: layers in flight (>= 2); readers: threads
  // (1 .. slots - 1).
  Status Start(int num_layers, size_t read_bytes, size_t stage_bytes, Reader read, int slots, int readers);
  Status Start(int num_layers, size_t bytes, Reader read, int slots, int readers) {
    return Start(num_layers, bytes, bytes, std::move(read), slots, readers);
  }
  // The device key stage that layer `layer` will use (valid from Start to Finish).
  const void* KeyStage(int layer) const;
  // Waits for layer `layer` (the next in order) to be read, enqueues its copies (the read keys to the stage,
  // the read values by `values`, then `pinned`), and makes `consumer` wait for them. Returns the device address
  // of the key stage (valid until Consumed(layer)).
  StatusOr<const void*> Deliver(int layer, std::span<const ValueRun> values, std::span<const PinnedCopy> pinned,
                                cudaStream_t consumer);
  // The whole read layer's values to v_dst.
  StatusOr<const void*> Deliver(int layer, void* v_dst, cudaStream_t consumer) {
    const ValueRun all{0, v_dst, bytes_};
    return Deliver(layer, std::span<const ValueRun>(&all, 1), {}, consumer);
  }
  // The consumer has enqueued its last use of layer `layer`'s staged keys on `consumer`.
  Status Consumed(int layer, cudaStream_t consumer);
  // Stops the readers, waits for the copies; the first reader error if any. Stats of the pass in *stats.
  Status Finish(Stats* stats = nullptr);

 private:
  LayerStreamer() = default;
  void ReaderLoop();
  Status Reserve(int slots, size_t host_bytes, size_t stage_bytes);
  Status CopyPinned(int slot, std::span<const PinnedCopy> pinned);

  cudaStream_t copy_ = nullptr;
  // Per slot: pinned keys and values, the device key stage, and events.
  std::vector<void*> pinned_;  // 2 per slot: keys, values
  DeviceBuffer k_stage_;
  std::vector<cudaEvent_t> copied_, consumed_;
  size_t host_slot_bytes_ = 0, stage_slot_bytes_ = 0;
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
  // Scratch for batched pinned copies.
  std::vector<void*> batch_dst_;
  std::vector<const void*> batch_src_;
  std::vector<size_t> batch_size_;
};

}  // namespace blockkv::cuda
