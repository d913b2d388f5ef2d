// Writing float32 arrays in numpy's .npy format (version 1.0), as `--logits-out` promises (DESIGN §6).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "db/status.h"

namespace blockkv::cli {

// Writes `data` with `shape` (its product must equal data.size()) as little-endian float32.
Status WriteNpy(const std::string& path, std::span<const float> data, const std::vector<int64_t>& shape);

}  // namespace blockkv::cli
