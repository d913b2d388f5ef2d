#include <boost/test/data/test_case.hpp>
#include <boost/test/unit_test.hpp>
#include <cstring>

#include "db/codec.h"
#include "tests/test_util.h"

namespace bdata = boost::unit_test::data;
using namespace blockkv;

namespace {

std::string Encode(const std::vector<uint8_t>& raw, DType dt, const uint32_t dims[4], Codec codec) {
  std::string out;
  ConstPiece p{raw.data(), raw.size()};
  BOOST_REQUIRE(EncodeTensor({&p, 1}, dt, dims, EncodeOptions{codec, 1}, &out).ok());
  return out;
}

const DType kDTypes[] = {DType::kBF16, DType::kF16, DType::kF32};
const Codec kCodecs[] = {Codec::kRaw, Codec::kZstdSplit};

}  // namespace

BOOST_AUTO_TEST_SUITE(codec)

// Odd shapes: a single element, odd token counts, head dims that are not powers of two.
BOOST_DATA_TEST_CASE(round_trip_every_dtype_and_odd_shapes,
                     bdata::make(kDTypes) * bdata::make(kCodecs) *
                         bdata::make({1u, 3u, 17u, 129u}) * bdata::make({1u, 5u, 64u}),
                     dtype, codec, tokens, head_dim) {
  const uint32_t dims[4] = {2, tokens, 3, head_dim};
  auto raw = testing::MakeKvData(dtype, 2 * tokens, 3, head_dim, tokens * 31 + head_dim);
  std::string enc = Encode(raw, dtype, dims, codec);
  auto h = ParseTensorHeader(enc);
  BOOST_REQUIRE(h.ok());
  BOOST_TEST(h->raw_bytes() == raw.size());
  // zstd-split falls back to raw when it would not shrink the tensor (tiny shapes).
  BOOST_TEST((h->codec == codec || (h->codec == Codec::kRaw && enc.size() >= kValueHeaderSize + raw.size())));
  BOOST_TEST(enc.size() <= kValueHeaderSize + raw.size());
  // Decode into two pieces (K and V) as the store does, poisoned first.
  std::vector<uint8_t> k(raw.size() / 2, 0xAB), v(raw.size() / 2, 0xCD);
  MutablePiece pieces[2] = {{k.data(), k.size()}, {v.data(), v.size()}};
  BOOST_REQUIRE(DecodeTensor(enc, pieces).ok());
  BOOST_TEST(std::memcmp(k.data(), raw.data(), k.size()) == 0);
  BOOST_TEST(std::memcmp(v.data(), raw.data() + k.size(), v.size()) == 0);
}

// The byte-plane split and merge (vectorized 16 elements a step) on element counts that leave a scalar tail
// and on sources and destinations at odd addresses: bit-exact both ways, for bf16 and f16.
BOOST_DATA_TEST_CASE(split_planes_at_odd_addresses_and_counts, bdata::make({DType::kBF16, DType::kF16}), dtype) {
  const uint32_t dims[4] = {2, 301, 1, 7};  // 2107 elements per piece: 131 steps of 16 and a tail of 11
  auto raw = testing::MakeKvData(dtype, 2 * 301, 1, 7, 77);
  std::vector<uint8_t> shifted(raw.size() + 1);
  std::memcpy(shifted.data() + 1, raw.data(), raw.size());
  const size_t half = raw.size() / 2;
  ConstPiece in[2] = {{shifted.data() + 1, half}, {shifted.data() + 1 + half, half}};
  std::string enc;
  BOOST_REQUIRE(EncodeTensor(in, dtype, dims, {}, &enc).ok());
  BOOST_REQUIRE(ParseTensorHeader(enc)->codec == Codec::kZstdSplit);  // the split path, not the raw fallback
  BOOST_TEST(enc == Encode(raw, dtype, dims, Codec::kZstdSplit));      // an aligned source encodes the same
  std::vector<uint8_t> k(half + 1, 0xAB), v(half + 3, 0xCD);
  MutablePiece out[2] = {{k.data() + 1, half}, {v.data() + 3, half}};
  BOOST_REQUIRE(DecodeTensor(enc, out).ok());
  BOOST_TEST(std::memcmp(k.data() + 1, raw.data(), half) == 0);
  BOOST_TEST(std::memcmp(v.data() + 3, raw.data() + half, half) == 0);
  BOOST_TEST(k[0] == 0xAB);
  BOOST_TEST(v[2] == 0xCD);
}

BOOST_AUTO_TEST_CASE(gathered_pieces_encode_like_one_buffer) {
  const uint32_t dims[4] = {2, 40, 2, 64};
  auto raw = testing::MakeKvData(DType::kBF16, 80, 2, 64, 5);
  std::string whole = Encode(raw, DType::kBF16, dims, Codec::kZstdSplit);
  ConstPiece pieces[2] = {{raw.data(), raw.size() / 2}, {raw.data() + raw.size() / 2, raw.size() / 2}};
  std::string gathered;
  BOOST_REQUIRE(EncodeTensor(pieces, DType::kBF16, dims, {}, &gathered).ok());
  BOOST_TEST(whole == gathered);
}

BOOST_AUTO_TEST_CASE(lossless_split_compresses_kv_shaped_bf16) {
  const uint32_t dims[4] = {2, 256, 8, 128};
  auto raw = testing::MakeKvData(DType::kBF16, 512, 8, 128, 9);
  std::string enc = Encode(raw, DType::kBF16, dims, Codec::kZstdSplit);
  const double ratio = double(raw.size()) / double(enc.size());
  BOOST_TEST_MESSAGE("zstd-split ratio on synthetic bf16 KV: " << ratio);
  BOOST_TEST(ratio > 1.2);
}

BOOST_AUTO_TEST_CASE(size_mismatch_is_invalid_argument) {
  const uint32_t dims[4] = {2, 4, 2, 8};
  std::vector<uint8_t> raw(2 * 4 * 2 * 8 * 2 - 2);
  ConstPiece p{raw.data(), raw.size()};
  std::string out;
  BOOST_TEST(EncodeTensor({&p, 1}, DType::kBF16, dims, {}, &out).IsInvalidArgument());
  // Decoding into a buffer of the wrong size is refused too.
  std::vector<uint8_t> good(2 * 4 * 2 * 8 * 2);
  p = {good.data(), good.size()};
  BOOST_REQUIRE(EncodeTensor({&p, 1}, DType::kBF16, dims, {}, &out).ok());
  MutablePiece small{raw.data(), raw.size()};
  BOOST_TEST(DecodeTensor(out, {&small, 1}).IsInvalidArgument());
}

// Flipping any single byte of an encoded value, header or payload, never yields wrong data: either the
// decode fails, or (for the reserved header bytes and a few zstd frame bits that do not change what is
// decoded) it yields exactly the original bytes.
BOOST_DATA_TEST_CASE(every_flipped_byte_is_detected, bdata::make(kCodecs) * bdata::make(kDTypes),
                     codec, dtype) {
  const uint32_t dims[4] = {2, 7, 2, 16};
  auto raw = testing::MakeKvData(dtype, 14, 2, 16, 77);
  std::string enc = Encode(raw, dtype, dims, codec);
  std::vector<uint8_t> out(raw.size());
  MutablePiece piece{out.data(), out.size()};
  size_t detected = 0;
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x10;
    Status s = DecodeTensor(bad, {&piece, 1});
    if (s.ok()) {
      BOOST_TEST(std::memcmp(out.data(), raw.data(), raw.size()) == 0, "flip at " << i);
      BOOST_TEST((i >= kValueHeaderSize - 4), "a header flip at byte " << i << " went unnoticed");
    } else {
      BOOST_TEST((s.IsCorruption() || s.IsNotSupported() || s.IsInvalidArgument()),
                 "byte " << i << ": " << s.ToString());
      ++detected;
    }
  }
  BOOST_TEST(detected >= enc.size() - 4 - enc.size() / 100);
}

BOOST_AUTO_TEST_CASE(truncated_values_are_corruption) {
  const uint32_t dims[4] = {2, 9, 1, 32};
  auto raw = testing::MakeKvData(DType::kBF16, 18, 1, 32, 3);
  std::string enc = Encode(raw, DType::kBF16, dims, Codec::kZstdSplit);
  std::vector<uint8_t> out(raw.size());
  MutablePiece piece{out.data(), out.size()};
  for (size_t n : {size_t{0}, size_t{10}, kValueHeaderSize, enc.size() - 1})
    BOOST_TEST(DecodeTensor(std::string_view(enc).substr(0, n), {&piece, 1}).IsCorruption());
}

BOOST_AUTO_TEST_CASE(dtype_conversions_round_trip) {
  // bf16 and f16 values convert to float exactly and back bit-for-bit (NaN aside).
  for (uint32_t h = 0; h < 65536; ++h) {
    const auto x = static_cast<uint16_t>(h);
    const float fb = BF16ToFloat(x);
    if (fb == fb) BOOST_TEST_REQUIRE(FloatToBF16(fb) == x);
    const float fh = F16ToFloat(x);
    if (fh == fh) BOOST_TEST_REQUIRE(FloatToF16(fh) == x);
  }
  BOOST_TEST(FloatToF16(1.0f) == 0x3c00);
  BOOST_TEST(FloatToF16(65504.f) == 0x7bff);
  BOOST_TEST(FloatToF16(1e6f) == 0x7c00);
  BOOST_TEST(FloatToBF16(1.00390625f) == 0x3f80);  // halfway: rounds to even
}

BOOST_AUTO_TEST_SUITE_END()
