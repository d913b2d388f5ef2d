#include "attention/engine/host_tier.h"

#include <cstdlib>

namespace blockkv {

HostBlock::~HostBlock() {
  if (arena_ != nullptr) {
    arena_->Free(data_);
  } else {
    std::free(data_);
  }
}

bool HostBlock::Allocate(HostArena* arena) {
  if (data_ != nullptr) return true;
  const size_t n = static_cast<size_t>(bytes());
  if (arena != nullptr) {
    data_ = static_cast<uint8_t*>(arena->Allocate(n));
    if (data_ != nullptr) arena_ = arena;
  } else {
    data_ = static_cast<uint8_t*>(std::malloc(n > 0 ? n : 1));
  }
  return data_ != nullptr;
}

}  // namespace blockkv
