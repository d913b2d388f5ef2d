// A minimal dynamic parallel-for on std::thread, for the CPU backend's attention and elementwise
// loops.
//
// std::thread rather than OpenMP: OpenMP workers spin after a region and would steal the cores from
// OpenBLAS's own thread pool, which runs the GEMMs between these loops.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace blockkv::cpu {

// Number of threads to use when the caller asks for 0.
inline int DefaultThreads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

// Calls fn(begin, end) over [0, n) in chunks of `grain`, from up to `threads` threads (the caller
// is one of them), handing chunks out dynamically. Returns when all are done. fn must be safe to
// call concurrently.
template <typename Fn>
void ParallelFor(int64_t n, int64_t grain, int threads, Fn&& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  threads = static_cast<int>(std::min<int64_t>(std::max(1, threads), chunks));
  if (threads == 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::atomic<int64_t> next{0};
  auto work = [&] {
    for (;;) {
      const int64_t c = next.fetch_add(1, std::memory_order_relaxed);
      if (c >= chunks) return;
      fn(c * grain, std::min(n, (c + 1) * grain));
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(threads - 1);
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
}

}  // namespace blockkv::cpu
