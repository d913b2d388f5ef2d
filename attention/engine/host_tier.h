// The host tier: blocks kept in host memory across requests (attention/engine/tier.h), under a byte budget.
//
// A block is kept as the backend streams it: in the store's dtype on the CPU backend; on the CUDA backend in
// the runtime's storage type (bf16/fp16), in pinned memory from the engine's HostArena, so that a hit is
// copied to the device straight from where it lives, one DMA per layer's keys and one per its values. K and
// V of each layer are contiguous. Whatever the form, a hit gives exactly the values a store read would give
// (the same conversion of the same bytes), so the logits do not depend on the tier.
//
// Ownership and threads: a HostBlock owns its memory (from the arena, or the heap without one) and gives it
// back when destroyed; the arena must outlive it. A block is written once, before the tier holds it, and only
// read afterwards, from any number of threads. The tier's own threading is tier.h's.
#pragma once

#include <cstdint>

#include "attention/engine/host_arena.h"
#include "attention/engine/tier.h"
#include "db/block_key.h"
#include "db/dtype.h"

namespace blockkv {

struct HostBlock {
  BlockId id;
  DType dtype = DType::kF32;
  uint32_t tokens = 0;
  uint32_t layers = 0;
  uint64_t tensor_bytes = 0;  // one layer's K (or V): tokens × kv_heads × head_dim × dtype size

  HostBlock() = default;
  ~HostBlock();
  HostBlock(const HostBlock&) = delete;
  HostBlock& operator=(const HostBlock&) = delete;

  // Takes 2 × tensor_bytes × layers bytes from `arena` (null: the heap). False if there is no room.
  bool Allocate(HostArena* arena = nullptr);
  uint8_t* k(uint32_t l) { return data_ + 2 * l * tensor_bytes; }
  uint8_t* v(uint32_t l) { return data_ + (2 * l + 1) * tensor_bytes; }
  const uint8_t* k(uint32_t l) const { return data_ + 2 * l * tensor_bytes; }
  const uint8_t* v(uint32_t l) const { return data_ + (2 * l + 1) * tensor_bytes; }
  const uint8_t* data() const { return data_; }
  uint64_t bytes() const { return 2 * tensor_bytes * layers; }
  // Whether the memory came from an arena (pinned, on the CUDA backend).
  bool in_arena() const { return arena_ != nullptr; }

 private:
  uint8_t* data_ = nullptr;
  HostArena* arena_ = nullptr;
};

using HostTier = Tier<HostBlock>;

}  // namespace blockkv
