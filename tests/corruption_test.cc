// Corruption: flipped bits in blob files (inside chosen values) and in SST files. Every read of an
// affected block reports Corruption (never data), and Verify lists exactly the affected blocks.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <random>
#include <set>

#include "db/block_store.h"
#include "db/codec.h"
#include "tests/test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

namespace {

std::string ReadAll(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), {});
}
void WriteAll(const std::filesystem::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << s;
}

// The encoded value of layer `l` of `b` exactly as the store wrote it (encoding is deterministic).
std::string EncodedLayer(const TestBlock& b, uint32_t l) {
  const uint32_t dims[4] = {2, static_cast<uint32_t>(b.put.tokens.size()), b.put.kv_heads, b.put.head_dim};
  ConstPiece p[2] = {{b.k[l].data(), b.k[l].size()}, {b.v[l].data(), b.v[l].size()}};
  std::string out;
  BOOST_REQUIRE(EncodeTensor(p, b.put.dtype, dims, EncodeOptions(), &out).ok());
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(corruption)

BOOST_AUTO_TEST_CASE(verify_lists_exactly_the_damaged_blocks) {
  TempDir dir;
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  {
    auto store = std::move(BlockStore::Open(dir.str("s"), {})).value();
    for (int i = 0; i < 24; ++i) {
      blocks.push_back(MakeTestBlock(TestModel(6), 3, 30 + i, 2, 32, DType::kBF16, i, "c" + std::to_string(i)));
      ids.push_back(*store->Put(blocks.back().put));
    }
    BOOST_REQUIRE(store->Compact().ok());
  }
  // Damage one value (a random layer, a random byte inside it) of each of five random blocks.
  std::mt19937_64 rng(12);
  std::set<int> damaged;
  while (damaged.size() < 5) damaged.insert(static_cast<int>(rng() % blocks.size()));
  int flipped = 0;
  for (int i : damaged) {
    const uint32_t layer = static_cast<uint32_t>(rng() % 3);
    const std::string value = EncodedLayer(blocks[i], layer);
    for (auto& e : std::filesystem::directory_iterator(dir.str("s"))) {
      if (e.path().extension() != ".blob") continue;
      std::string file = ReadAll(e.path());
      const size_t at = file.find(value);
      if (at == std::string::npos) continue;
      file[at + rng() % value.size()] ^= static_cast<char>(1u << (rng() % 8));
      WriteAll(e.path(), file);
      ++flipped;
      break;
    }
  }
  BOOST_REQUIRE(flipped == 5);
  StoreOptions ro;
  ro.mode = OpenMode::kReadOnly;
  auto store = std::move(BlockStore::Open(dir.str("s"), ro)).value();
  for (size_t i = 0; i < blocks.size(); ++i) {
    const uint64_t tb = blocks[i].k[0].size();
    std::vector<uint8_t> k(tb), v(tb);
    int bad = 0;
    for (uint32_t l = 0; l < 3; ++l) {
      Status s = store->GetLayer(ids[i], l, k.data(), v.data(), tb);
      if (s.ok()) {
        BOOST_TEST_REQUIRE((k == blocks[i].k[l] && v == blocks[i].v[l]), "wrong data served for block " << i);
      } else {
        BOOST_TEST(s.IsCorruption(), s.ToString());
        BOOST_TEST(s.message().find(ids[i].ToHex()) != std::string::npos);
        ++bad;
      }
    }
    BOOST_TEST(bad == (damaged.count(static_cast<int>(i)) ? 1 : 0), "block " << i);
  }
  auto report = store->Verify();
  BOOST_REQUIRE(report.ok());
  std::set<BlockId> listed, expected;
  for (auto& [id, why] : report->bad_blocks) listed.insert(id);
  for (int i : damaged) expected.insert(ids[i]);
  BOOST_TEST((listed == expected));
  BOOST_TEST(!report->file_problems.empty());  // the blob files' crc32c no longer match
}

// A bit flipped in an SST file: reads either succeed with the right bytes or fail; Verify is not OK.
BOOST_AUTO_TEST_CASE(flipped_sst_bits_never_yield_wrong_data) {
  TempDir dir;
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  {
    auto store = std::move(BlockStore::Open(dir.str("s"), {})).value();
    for (int i = 0; i < 40; ++i) {
      blocks.push_back(MakeTestBlock(TestModel(6), 2, 100 + i, 1, 16, DType::kBF16, 50 + i, "n" + std::to_string(i)));
      ids.push_back(*store->Put(blocks.back().put));
    }
    BOOST_REQUIRE(store->Compact().ok());
  }
  // The largest table is the meta column family's (every block's tokens); flip a bit early in it, inside
  // its data blocks (the index, filter and properties are at the end).
  std::filesystem::path largest;
  for (auto& e : std::filesystem::directory_iterator(dir.str("s")))
    if (e.path().extension() == ".sst" &&
        (largest.empty() || e.file_size() > std::filesystem::file_size(largest)))
      largest = e.path();
  BOOST_REQUIRE(!largest.empty());
  std::string file = ReadAll(largest);
  BOOST_REQUIRE(file.size() > 8192);
  file[file.size() / 8] ^= 0x08;
  WriteAll(largest, file);
  StoreOptions ro;
  ro.mode = OpenMode::kReadOnly;
  auto opened = BlockStore::Open(dir.str("s"), ro);
  if (!opened.ok()) {
    // A damaged table needed at open (e.g. the store's own records) fails the open: reported, not served.
    BOOST_TEST((opened.status().IsCorruption() || opened.status().IsIOError()), opened.status().ToString());
    BOOST_TEST_MESSAGE("SST damage: the open failed cleanly: " << opened.status().ToString());
    return;
  }
  auto store = std::move(opened).value();
  int failed = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    auto m = store->GetMeta(ids[i]);
    if (!m.ok()) {  // Corruption, or NotFound if the damage hit a filter: never another block's data
      ++failed;
      continue;
    }
    BOOST_TEST(m->tokens == blocks[i].put.tokens);
    const uint64_t tb = blocks[i].k[0].size();
    std::vector<uint8_t> k(tb), v(tb);
    for (uint32_t l = 0; l < 2; ++l) {
      Status s = store->GetLayer(ids[i], l, k.data(), v.data(), tb);
      if (s.ok()) BOOST_TEST_REQUIRE((k == blocks[i].k[l] && v == blocks[i].v[l]));
      else ++failed;
    }
  }
  auto report = store->Verify();
  BOOST_TEST((!report.ok() || !report->ok()), "verify did not notice the damaged SST file");
  BOOST_TEST(failed > 0);  // the damaged data block held some blocks' metadata
  BOOST_TEST_MESSAGE("SST damage: " << failed << " reads failed cleanly");
}

// Reads skip RocksDB's blob CRC (the values carry their own checksums), so RocksDB reads a value alone, by
// the offset and size in its index: a bit flipped in a blob record's framing or key, just before the value,
// never yields wrong data (each read returns the right bytes or fails; in RocksDB 7.8 they all return the
// right bytes), and `verify`, which checks the files' crc32c, reports the damage.
BOOST_AUTO_TEST_CASE(flipped_blob_record_framing_never_yields_wrong_data) {
  TempDir dir;
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  {
    auto store = std::move(BlockStore::Open(dir.str("s"), {})).value();
    for (int i = 0; i < 32; ++i) {
      blocks.push_back(MakeTestBlock(TestModel(6), 1, 40 + i, 2, 32, DType::kBF16, 900 + i, ""));
      ids.push_back(*store->Put(blocks.back().put));
    }
    BOOST_REQUIRE(store->Compact().ok());
  }
  // Block i gets a flip at byte i of the 32 before its value (record header, key, and their sizes).
  int flipped = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string value = EncodedLayer(blocks[i], 0);
    for (auto& e : std::filesystem::directory_iterator(dir.str("s"))) {
      if (e.path().extension() != ".blob") continue;
      std::string file = ReadAll(e.path());
      const size_t at = file.find(value);
      if (at == std::string::npos || at < 32) continue;
      file[at - 32 + i] ^= 0x10;
      WriteAll(e.path(), file);
      ++flipped;
      break;
    }
  }
  BOOST_REQUIRE(flipped == static_cast<int>(blocks.size()));
  StoreOptions ro;
  ro.mode = OpenMode::kReadOnly;
  auto store = std::move(BlockStore::Open(dir.str("s"), ro)).value();
  int failed = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const uint64_t tb = blocks[i].k[0].size();
    std::vector<uint8_t> k(tb), v(tb);
    Status s = store->GetLayer(ids[i], 0, k.data(), v.data(), tb);
    if (s.ok()) {
      BOOST_TEST_REQUIRE((k == blocks[i].k[0] && v == blocks[i].v[0]), "wrong data served for block " << i);
    } else {
      ++failed;
    }
  }
  BOOST_TEST_MESSAGE("blob framing damage: " << failed << " of " << blocks.size() << " reads failed cleanly");
  auto report = store->Verify();
  BOOST_TEST((!report.ok() || !report->file_problems.empty()), "verify did not notice the damaged blob files");
}

BOOST_AUTO_TEST_SUITE_END()
