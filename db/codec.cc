#include "db/codec.h"

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace blockkv {

namespace {

constexpr char kMagic[4] = {'B', 'K', 'V', 'T'};
constexpr size_t kMaxPlanes = 4;
constexpr uint8_t kPlaneRaw = 0;
constexpr uint8_t kPlaneZstd = 1;
// Per-plane descriptor in a zstd-split payload: mode u8, stored size u64.
constexpr size_t kPlaneDescBytes = 9;

template <typename T>
void PutLE(char* p, T v) {
  std::memcpy(p, &v, sizeof(T));  // the host is little-endian (checked in block_key.cc)
}
template <typename T>
T GetLE(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}


// Reusable per-thread scratch and zstd contexts: encoding and decoding allocate nothing in steady state.
struct Scratch {
  ZSTD_CCtx* cctx = nullptr;
  ZSTD_DCtx* dctx = nullptr;
  std::string planes[kMaxPlanes];
  std::string compressed;
  ~Scratch() {
    ZSTD_freeCCtx(cctx);
    ZSTD_freeDCtx(dctx);
  }
};
Scratch& ThreadScratch() {
  thread_local Scratch s;
  if (s.cctx == nullptr) s.cctx = ZSTD_createCCtx();
  if (s.dctx == nullptr) s.dctx = ZSTD_createDCtx();
  return s;
}

// Splits elements of `esize` bytes into esize byte planes; plane 0 holds the most significant bytes.
void SplitPlanes(std::span<const ConstPiece> pieces, size_t esize, char* const* planes) {
  size_t off = 0;
  for (const ConstPiece& p : pieces) {
    const auto* src = static_cast<const uint8_t*>(p.data);
    const size_t n = p.bytes / esize;
    if (esize == 2) {
      auto* hi = reinterpret_cast<uint8_t*>(planes[0]) + off;
      auto* lo = reinterpret_cast<uint8_t*>(planes[1]) + off;
      size_t i = 0;
#if defined(__SSE2__)
      // 16 elements a step: low bytes by masking, high bytes by shifting, each packed to 16 bytes. GCC 12 at
      // -O2 leaves the scalar loop unvectorized (~2 GB/s); this runs ~9x faster.
      const __m128i mask = _mm_set1_epi16(0x00ff);
      for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i + 16));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + i),
                         _mm_packus_epi16(_mm_and_si128(a, mask), _mm_and_si128(b, mask)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + i),
                         _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8)));
      }
#endif
      for (; i < n; ++i) {
        lo[i] = src[2 * i];
        hi[i] = src[2 * i + 1];
      }
    } else {
      for (size_t b = 0; b < esize; ++b) {
        auto* dst = reinterpret_cast<uint8_t*>(planes[esize - 1 - b]) + off;
        for (size_t i = 0; i < n; ++i) dst[i] = src[esize * i + b];
      }
    }
    off += n;
  }
}

void MergePlanes(const char* const* planes, size_t esize, std::span<const MutablePiece> pieces) {
  size_t off = 0;
  for (const MutablePiece& p : pieces) {
    auto* dst = static_cast<uint8_t*>(p.data);
    const size_t n = p.bytes / esize;
    if (esize == 2) {
      const auto* hi = reinterpret_cast<const uint8_t*>(planes[0]) + off;
      const auto* lo = reinterpret_cast<const uint8_t*>(planes[1]) + off;
      size_t i = 0;
#if defined(__SSE2__)
      // 16 elements a step, interleaving the planes' bytes (little-endian: low byte first); unaligned
      // stores, so any destination alignment takes this path.
      for (; i + 16 <= n; i += 16) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(hi + i));
        const __m128i l = _mm_loadu_si128(reinterpret_cast<const __m128i*>(lo + i));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), _mm_unpacklo_epi8(l, h));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i + 16), _mm_unpackhi_epi8(l, h));
      }
#endif
      for (; i < n; ++i) {
        dst[2 * i] = lo[i];
        dst[2 * i + 1] = hi[i];
      }
    } else {
      for (size_t b = 0; b < esize; ++b) {
        const auto* src = reinterpret_cast<const uint8_t*>(planes[esize - 1 - b]) + off;
        for (size_t i = 0; i < n; ++i) dst[esize * i + b] = src[i];
      }
    }
    off += n;
  }
}

uint64_t ChecksumPieces(std::span<const ConstPiece> pieces) {
  if (pieces.size() == 1) return XXH3_64bits(pieces[0].data, pieces[0].bytes);
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  for (const ConstPiece& p : pieces) XXH3_64bits_update(&state, p.data, p.bytes);
  return XXH3_64bits_digest(&state);
}

uint64_t ChecksumPieces(std::span<const MutablePiece> pieces) {
  std::vector<ConstPiece> c;
  c.reserve(pieces.size());
  for (const MutablePiece& p : pieces) c.push_back({p.data, p.bytes});
  return ChecksumPieces(c);
}

}  // namespace

uint32_t TensorHeaderChecksum(const char* header) {
  return static_cast<uint32_t>(XXH3_64bits(header, 40));
}

const char* CodecName(Codec c) {
  switch (c) {
    case Codec::kRaw: return "raw";
    case Codec::kZstdSplit: return "zstd-split";
  }
  return "?";
}

std::optional<Codec> ParseCodec(std::string_view name) {
  if (name == "raw") return Codec::kRaw;
  if (name == "zstd-split" || name == "zstd_split") return Codec::kZstdSplit;
  return std::nullopt;
}

Status EncodeTensor(std::span<const ConstPiece> pieces, DType dtype, const uint32_t dims[4],
                    const EncodeOptions& options, std::string* out) {
  TensorHeader h;
  h.codec = options.codec;
  h.dtype = dtype;
  std::copy(dims, dims + 4, h.dims);
  const size_t esize = DTypeSize(dtype);
  const uint64_t raw_bytes = h.raw_bytes();
  uint64_t total = 0;
  for (const ConstPiece& p : pieces) {
    if (p.bytes % esize != 0)
      return Status::InvalidArgument("tensor piece of " + std::to_string(p.bytes) +
                                     " bytes is not a whole number of " + DTypeName(dtype) +
                                     " elements");
    total += p.bytes;
  }
  if (total != raw_bytes)
    return Status::InvalidArgument("tensor has " + std::to_string(total) + " bytes but its shape (" +
                                   std::to_string(dims[0]) + "," + std::to_string(dims[1]) + "," +
                                   std::to_string(dims[2]) + "," + std::to_string(dims[3]) +
                                   ") and dtype need " + std::to_string(raw_bytes));
  h.checksum = ChecksumPieces(pieces);

  out->clear();
  out->resize(kValueHeaderSize);
  if (options.codec == Codec::kRaw) {
    out->reserve(kValueHeaderSize + raw_bytes);
    for (const ConstPiece& p : pieces) out->append(static_cast<const char*>(p.data), p.bytes);
  } else if (options.codec == Codec::kZstdSplit) {
    Scratch& s = ThreadScratch();
    const size_t n = raw_bytes / esize;
    char* planes[kMaxPlanes];
    for (size_t b = 0; b < esize; ++b) {
      s.planes[b].resize(n);
      planes[b] = s.planes[b].data();
    }
    SplitPlanes(pieces, esize, planes);
    out->push_back(static_cast<char>(esize));
    const size_t desc_at = out->size();
    out->resize(desc_at + esize * kPlaneDescBytes);
    for (size_t b = 0; b < esize; ++b) {
      // The most significant plane (sign, exponent, top mantissa bits) is kept compressed if it
      // shrinks at all; the others only if compressing saves at least 3%.
      // Low planes are mostly mantissa noise: a 16 KiB sample decides whether trying the whole plane
      // is worth the time.
      bool try_plane = b == 0;
      if (!try_plane) {
        const size_t sample = std::min<size_t>(n, 16384);
        s.compressed.resize(ZSTD_compressBound(sample));
        size_t c = ZSTD_compressCCtx(s.cctx, s.compressed.data(), s.compressed.size(), planes[b],
                                     sample, options.zstd_level);
        try_plane = !ZSTD_isError(c) && c < sample - sample / 32;
      }
      size_t c = 0;
      if (try_plane) {
        s.compressed.resize(ZSTD_compressBound(n));
        c = ZSTD_compressCCtx(s.cctx, s.compressed.data(), s.compressed.size(), planes[b], n,
                              options.zstd_level);
      }
      uint8_t mode = kPlaneRaw;
      if (try_plane && !ZSTD_isError(c) && (b == 0 ? c < n : c < n - n / 32)) mode = kPlaneZstd;
      const uint64_t stored = mode == kPlaneZstd ? c : n;
      char* desc = out->data() + desc_at + b * kPlaneDescBytes;
      desc[0] = static_cast<char>(mode);
      PutLE<uint64_t>(desc + 1, stored);
      if (mode == kPlaneZstd)
        out->append(s.compressed.data(), c);
      else
        out->append(planes[b], n);
    }
    if (out->size() - kValueHeaderSize >= raw_bytes) {
      // Incompressible (or tiny) tensor: store it raw rather than larger than it is.
      EncodeOptions raw_opts = options;
      raw_opts.codec = Codec::kRaw;
      return EncodeTensor(pieces, dtype, dims, raw_opts, out);
    }
  } else {
    return Status::InvalidArgument("unknown codec " + std::to_string(static_cast<int>(options.codec)));
  }
  h.payload_bytes = out->size() - kValueHeaderSize;
  char* hp = out->data();
  std::memcpy(hp, kMagic, 4);
  hp[4] = static_cast<char>(h.version);
  hp[5] = static_cast<char>(h.codec);
  hp[6] = static_cast<char>(h.dtype);
  hp[7] = static_cast<char>(h.flags);
  for (int i = 0; i < 4; ++i) PutLE<uint32_t>(hp + 8 + 4 * i, h.dims[i]);
  PutLE<uint64_t>(hp + 24, h.payload_bytes);
  PutLE<uint64_t>(hp + 32, h.checksum);
  PutLE<uint32_t>(hp + 40, TensorHeaderChecksum(hp));
  PutLE<uint32_t>(hp + 44, 0);
  return Status::OK();
}

StatusOr<TensorHeader> ParseTensorHeader(std::string_view value) {
  if (value.size() < kValueHeaderSize)
    return Status::Corruption("value of " + std::to_string(value.size()) +
                              " bytes is shorter than a tensor header");
  const char* hp = value.data();
  if (std::memcmp(hp, kMagic, 4) != 0) return Status::Corruption("bad magic in tensor header");
  if (GetLE<uint32_t>(hp + 40) != TensorHeaderChecksum(hp))
    return Status::Corruption("tensor header checksum mismatch");
  TensorHeader h;
  h.version = static_cast<uint8_t>(hp[4]);
  if (h.version != kFormatVersion)
    return Status::NotSupported("tensor format version " + std::to_string(h.version) +
                                " (this build reads version " + std::to_string(kFormatVersion) + ")");
  const auto codec = static_cast<uint8_t>(hp[5]);
  if (codec > static_cast<uint8_t>(Codec::kZstdSplit))
    return Status::Corruption("unknown codec " + std::to_string(codec));
  h.codec = static_cast<Codec>(codec);
  const auto dtype = static_cast<uint8_t>(hp[6]);
  if (!IsValidDType(dtype)) return Status::Corruption("unknown dtype " + std::to_string(dtype));
  h.dtype = static_cast<DType>(dtype);
  h.flags = static_cast<uint8_t>(hp[7]);
  for (int i = 0; i < 4; ++i) h.dims[i] = GetLE<uint32_t>(hp + 8 + 4 * i);
  h.payload_bytes = GetLE<uint64_t>(hp + 24);
  h.checksum = GetLE<uint64_t>(hp + 32);
  if (h.payload_bytes != value.size() - kValueHeaderSize)
    return Status::Corruption("tensor payload is " + std::to_string(value.size() - kValueHeaderSize) +
                              " bytes, header says " + std::to_string(h.payload_bytes));
  return h;
}

Status DecodeTensor(std::string_view value, std::span<const MutablePiece> pieces) {
  ASSIGN_OR_RETURN(TensorHeader h, ParseTensorHeader(value));
  const size_t esize = DTypeSize(h.dtype);
  const uint64_t raw_bytes = h.raw_bytes();
  uint64_t total = 0;
  for (const MutablePiece& p : pieces) {
    if (p.bytes % esize != 0)
      return Status::InvalidArgument("output piece is not a whole number of elements");
    total += p.bytes;
  }
  if (total != raw_bytes)
    return Status::InvalidArgument("output holds " + std::to_string(total) +
                                   " bytes, the stored tensor has " + std::to_string(raw_bytes));
  const char* payload = value.data() + kValueHeaderSize;
  const size_t payload_bytes = h.payload_bytes;

  if (h.codec == Codec::kRaw) {
    if (payload_bytes != raw_bytes) return Status::Corruption("raw payload size mismatch");
    size_t off = 0;
    for (const MutablePiece& p : pieces) {
      std::memcpy(p.data, payload + off, p.bytes);
      off += p.bytes;
    }
  } else {
    if (payload_bytes < 1 || static_cast<size_t>(static_cast<uint8_t>(payload[0])) != esize)
      return Status::Corruption("zstd-split plane count does not match the dtype");
    const size_t n = raw_bytes / esize;
    size_t data_at = 1 + esize * kPlaneDescBytes;
    if (payload_bytes < data_at) return Status::Corruption("zstd-split payload truncated");
    Scratch& s = ThreadScratch();
    const char* planes[kMaxPlanes];
    for (size_t b = 0; b < esize; ++b) {
      const char* desc = payload + 1 + b * kPlaneDescBytes;
      const auto mode = static_cast<uint8_t>(desc[0]);
      const uint64_t stored = GetLE<uint64_t>(desc + 1);
      if (stored > payload_bytes - data_at) return Status::Corruption("zstd-split plane truncated");
      const char* src = payload + data_at;
      if (mode == kPlaneRaw) {
        if (stored != n) return Status::Corruption("raw plane size mismatch");
        planes[b] = src;
      } else if (mode == kPlaneZstd) {
        s.planes[b].resize(n);
        size_t d = ZSTD_decompressDCtx(s.dctx, s.planes[b].data(), n, src, stored);
        if (ZSTD_isError(d))
          return Status::Corruption(std::string("zstd: ") + ZSTD_getErrorName(d));
        if (d != n) return Status::Corruption("zstd plane decoded to the wrong size");
        planes[b] = s.planes[b].data();
      } else {
        return Status::Corruption("unknown plane mode " + std::to_string(mode));
      }
      data_at += stored;
    }
    if (data_at != payload_bytes) return Status::Corruption("zstd-split payload has trailing bytes");
    MergePlanes(planes, esize, pieces);
  }
  if (ChecksumPieces(pieces) != h.checksum)
    return Status::Corruption("checksum mismatch: decoded bytes differ from what was stored");
  return Status::OK();
}

}  // namespace blockkv
