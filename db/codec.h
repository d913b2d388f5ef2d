// Tensor codecs: the value format of every stored tensor (docs/format.md).
//
// An encoded value is a 48-byte header followed by a payload (little-endian; docs/format.md):
//   0 magic "BKVT" | 4 version u8 | 5 codec u8 | 6 dtype u8 | 7 flags u8 | 8 dims u32[4] |
//   24 payload_bytes u64 | 32 xxh3_64(raw bytes) u64 | 40 xxh3_64(header bytes 0..39), low 32 bits, u32 |
//   44 reserved u32 (zero)
// The raw bytes are dims[0]*dims[1]*dims[2]*dims[3] elements of dtype, row-major. Decoding checks the
// header's own checksum, the sizes, and XXH3-64 of the decoded bytes; any mismatch is a Corruption error.
// Nothing undecodable is ever returned as data.
//
// Threads: pure functions of their arguments, safe from any thread; buffers belong to the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "db/dtype.h"
#include "db/status.h"

namespace blockkv {

// Numeric values are part of the on-disk format: never renumber.
enum class Codec : uint8_t {
  kRaw = 0,        // bytes as they are
  kZstdSplit = 1,  // 16-bit types: high-byte plane zstd-compressed, low-byte plane compressed only if it
                   // pays; f32: four byte planes, each compressed if it pays. Lossless.
};

const char* CodecName(Codec c);
std::optional<Codec> ParseCodec(std::string_view name);  // "raw", "zstd-split"
inline std::ostream& operator<<(std::ostream& os, Codec c) { return os << CodecName(c); }

inline constexpr size_t kValueHeaderSize = 48;
inline constexpr uint8_t kFormatVersion = 1;

struct TensorHeader {
  uint8_t version = kFormatVersion;
  Codec codec = Codec::kRaw;
  DType dtype = DType::kBF16;
  uint8_t flags = 0;
  uint32_t dims[4] = {1, 1, 1, 1};  // a block layer: (2 [K, V], tokens, kv_heads, head_dim)
  uint64_t payload_bytes = 0;
  uint64_t checksum = 0;  // XXH3-64 of the raw bytes

  uint64_t numel() const { return uint64_t{dims[0]} * dims[1] * dims[2] * dims[3]; }
  uint64_t raw_bytes() const { return numel() * DTypeSize(dtype); }
};

// A piece of a tensor's raw bytes; a tensor may be gathered from (or scattered to) several pieces laid
// end to end, e.g. a layer's K and V living in two separate buffers.
struct ConstPiece {
  const void* data;
  size_t bytes;
};
struct MutablePiece {
  void* data;
  size_t bytes;
};

struct EncodeOptions {
  Codec codec = Codec::kZstdSplit;
  int zstd_level = 1;  // Default: 1
};

// Encodes the tensor whose raw bytes are the concatenation of `pieces` (each a whole number of elements;
// the total must equal dims' product × dtype size) into *out, replacing its contents. InvalidArgument on
// inconsistent sizes.
Status EncodeTensor(std::span<const ConstPiece> pieces, DType dtype, const uint32_t dims[4],
                    const EncodeOptions& options, std::string* out);

// The header checksum stored at bytes 40..43: low 32 bits of XXH3-64 over header bytes 0..39.
uint32_t TensorHeaderChecksum(const char* header);

// Parses and checks the header only (magic, version, header checksum, known codec and dtype, payload
// size against value.size()). Corruption otherwise.
StatusOr<TensorHeader> ParseTensorHeader(std::string_view value);

// Decodes `value` into the concatenation of `pieces` (their total must equal the header's raw bytes,
// else InvalidArgument). Verifies the raw checksum. Corruption on any mismatch; the message says what
// (the caller adds which block and layer).
Status DecodeTensor(std::string_view value, std::span<const MutablePiece> pieces);

}  // namespace blockkv
