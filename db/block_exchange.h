// Block exchange files: one block as a safetensors file (DESIGN §6).
//
// Tensors `k.{layer}` and `v.{layer}` of shape [tokens, kv_heads, head_dim] in bf16, f16 or f32 (all the
// same), and `__metadata__` with `model_fingerprint` (32 hex digits) and `tokens` (a JSON list of ints);
// optional `name`. This is how KV made elsewhere (e.g. by Python code) enters a store.
//
// Threads and errors: plain functions, safe from any thread on distinct files; every malformed input is an
// InvalidArgument or Corruption naming the tensor or field, never a crash.
#pragma once

#include <memory>
#include <string>

#include "db/block_store.h"
#include "db/safetensors.h"

namespace blockkv {

// A parsed exchange file: `put` points into `file`'s mapping, so keep both together.
struct BlockFile {
  std::unique_ptr<SafetensorsReader> file;
  BlockToPut put;
};

// Reads and validates an exchange file. InvalidArgument (naming the file and the problem) for missing or
// inconsistent tensors and metadata; Corruption for a malformed safetensors file.
StatusOr<BlockFile> ReadBlockFile(const std::string& path);
// The same, from an in-memory image (fuzzing, tests).
StatusOr<BlockFile> ParseBlockFile(std::string image, const std::string& label);

// Writes block `id` of `store` to `path` (atomically). Errors from the store pass through (NotFound,
// Corruption naming the block): nothing is written unless every layer decoded and verified.
Status WriteBlockFile(BlockStore* store, const BlockId& id, const std::string& path);

}  // namespace blockkv
