// HostArena: one region of host memory (pinned, on the CUDA backend) carved into blocks for the host tier.
//
// Pinning memory is slow (cudaHostAlloc of a 20 MB block takes milliseconds), so a long-lived engine pins the
// host tier's whole budget once and hands out pieces of it: best fit over a free list ordered by address,
// neighbours merged on free. A piece is 64-byte aligned. Allocate fails (nullptr) when no free run is large
// enough, even if enough bytes are free in pieces; the tier then does not keep that block (counted as
// `failed` in the tier metrics).
//
// Ownership and threads: the arena owns the region and gives it back through `release` when destroyed; every
// piece must be freed before that. Allocate and Free may be called from several threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace blockkv {

class HostArena {
 public:
  // Manages [base, base + bytes); `release(base)` is called on destruction (may be empty).
  HostArena(void* base, size_t bytes, std::function<void(void*)> release);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  // A piece of at least `bytes` (rounded up to 64), or nullptr if no free run is that large.
  void* Allocate(size_t bytes);
  // Gives back a piece from Allocate (nullptr is ignored).
  void Free(void* p);

  size_t capacity() const { return bytes_; }
  size_t free_bytes() const;
  size_t largest_free() const;

 private:
  char* const base_;
  const size_t bytes_;
  std::function<void(void*)> release_;
  mutable std::mutex mu_;
  std::map<size_t, size_t> free_;  // offset -> length, disjoint, never adjacent
  std::map<size_t, size_t> used_;  // offset -> length
};

}  // namespace blockkv
