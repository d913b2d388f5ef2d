// safetensors files: a memory-mapped reader and a writer.
//
// Format: u64 little-endian header length N, N bytes of JSON {"name": {"dtype", "shape", "data_offsets"},
// "__metadata__": {str: str}}, then the data. The reader validates everything it hands out (offsets
// inside the file, byte counts matching dtype × shape, no overlap) so that later code can trust it.
//
// Ownership and threads: a reader owns its mapping and may be read from several threads at once;
// WriteSafetensors is a plain function (safe on distinct paths). Errors: IOError for the file,
// InvalidArgument/Corruption naming the tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "db/dtype.h"
#include "db/status.h"

namespace blockkv {

struct TensorView {
  std::string name;
  std::string dtype_name;       // as written in the file ("BF16", "I64", ...)
  std::optional<DType> dtype;   // set for F32, F16, BF16
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapping; valid while the reader lives
  size_t nbytes = 0;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

class SafetensorsReader {
 public:
  // Maps `path` and parses its header. Errors: IOError (cannot open or map), Corruption (truncated file,
  // bad JSON, offsets outside the file, byte count not matching dtype × shape), each naming the file.
  static StatusOr<std::unique_ptr<SafetensorsReader>> Open(const std::string& path);
  // Parses an in-memory image (used by fuzzing and tests). The buffer is copied.
  static StatusOr<std::unique_ptr<SafetensorsReader>> FromBuffer(std::string buffer,
                                                                 std::string label);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const { return path_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  // NotFound naming the tensor and the file if absent.
  StatusOr<const TensorView*> Get(const std::string& name) const;

 private:
  SafetensorsReader() = default;
  Status Parse();

  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  std::string owned_;  // FromBuffer's copy
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, TensorView> tensors_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel × DTypeSize(dtype) bytes
};

// Writes a safetensors file atomically (to path + ".tmp", fsync, rename). Tensors are laid out in the
// order given.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata);

}  // namespace blockkv
