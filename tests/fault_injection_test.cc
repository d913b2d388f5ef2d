// Fault injection, in the manner of LevelDB's fault_injection_test.cc: failed reads, writes and syncs,
// and a simulated machine crash that drops every unsynced byte. The store must return clear errors,
// reopen, lose no acknowledged block and serve no wrong data.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <rocksdb/env.h>

#include "db/block_store.h"
#include "tests/fault_fs.h"
#include "tests/test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

namespace {

struct FaultyStore {
  TempDir dir;
  std::shared_ptr<FaultInjectionFS> fs = std::make_shared<FaultInjectionFS>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  std::unique_ptr<BlockStore> store;

  StoreOptions Options(bool sync = true) {
    StoreOptions o;
    o.env = env.get();
    o.sync_writes = sync;
    return o;
  }
  Status Open(bool sync = true) {
    auto s = BlockStore::Open(dir.str("s"), Options(sync));
    if (!s.ok()) return s.status();
    store = std::move(s).value();
    return Status::OK();
  }
  // The machine crashes: nothing more reaches the disk, unsynced bytes are lost.
  int Crash() {
    fs->Deactivate();
    store.reset();
    const int dropped = fs->DropUnsyncedData();
    fs->ResetFaults();
    return dropped;
  }
};

// The block is either absent or, if present, exactly the block that was written.
void CheckAbsentOrExact(BlockStore* store, const TestBlock& b, bool must_exist) {
  const BlockId id = ComputeBlockId(b.put.model, b.put.tokens);
  auto has = store->Contains(id);
  BOOST_REQUIRE(has.ok());
  if (must_exist) BOOST_TEST_REQUIRE(*has, "acknowledged block " << id.ToHex() << " was lost");
  if (!*has) return;
  const uint64_t tb = b.k[0].size();
  std::vector<uint8_t> k(tb), v(tb);
  for (uint32_t l = 0; l < b.put.num_layers; ++l) {
    Status s = store->GetLayer(id, l, k.data(), v.data(), tb);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    BOOST_TEST_REQUIRE((k == b.k[l] && v == b.v[l]));
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(fault_injection)

BOOST_AUTO_TEST_CASE(crash_loses_no_synced_block) {
  FaultyStore f;
  BOOST_REQUIRE(f.Open().ok());
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 20; ++i) {
    blocks.push_back(MakeTestBlock(TestModel(1), 3, 17 + i, 2, 16, DType::kBF16, i, "b" + std::to_string(i)));
    BOOST_REQUIRE(f.store->Put(blocks.back().put).ok());
    if (i == 9) BOOST_REQUIRE(f.store->Compact().ok());  // some blocks in blob files, some only in the WAL
  }
  BOOST_REQUIRE(f.store->Delete(ComputeBlockId(blocks[3].put.model, blocks[3].put.tokens)).ok());
  f.Crash();
  BOOST_REQUIRE(f.Open().ok());
  for (int i = 0; i < 20; ++i) {
    if (i == 3) {
      BOOST_TEST(!*f.store->Contains(ComputeBlockId(blocks[3].put.model, blocks[3].put.tokens)));
      continue;
    }
    CheckAbsentOrExact(f.store.get(), blocks[i], /*must_exist=*/true);
  }
  auto report = f.store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->ok());
  BOOST_TEST(f.store->GetStats()->blocks == 19u);
}

// Without syncing, a crash may lose recent blocks, but never leaves part of one.
BOOST_AUTO_TEST_CASE(unsynced_writes_are_all_or_nothing) {
  FaultyStore f;
  BOOST_REQUIRE(f.Open(/*sync=*/false).ok());
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 30; ++i) {
    blocks.push_back(MakeTestBlock(TestModel(1), 4, 30, 2, 16, DType::kF16, 100 + i));
    BOOST_REQUIRE(f.store->Put(blocks.back().put).ok());
  }
  BOOST_TEST(f.Crash() > 0);  // the unsynced write-ahead log really lost data
  BOOST_REQUIRE(f.Open(false).ok());
  int present = 0;
  for (auto& b : blocks) {
    CheckAbsentOrExact(f.store.get(), b, /*must_exist=*/false);
    present += *f.store->Contains(ComputeBlockId(b.put.model, b.put.tokens));
  }
  BOOST_TEST_MESSAGE("unsynced: " << present << " of 30 blocks survived the crash");
  BOOST_TEST(f.store->GetStats()->blocks == static_cast<uint64_t>(present));
  auto report = f.store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->ok(), (report->file_problems.empty() ? "" : report->file_problems[0]));
}

BOOST_AUTO_TEST_CASE(failed_sync_is_an_error_and_loses_nothing_acknowledged) {
  FaultyStore f;
  BOOST_REQUIRE(f.Open().ok());
  std::vector<TestBlock> acked;
  for (int i = 0; i < 5; ++i) {
    acked.push_back(MakeTestBlock(TestModel(2), 2, 25, 1, 32, DType::kBF16, i));
    BOOST_REQUIRE(f.store->Put(acked.back().put).ok());
  }
  f.fs->SetFailSyncs(true);
  auto failed = MakeTestBlock(TestModel(2), 2, 25, 1, 32, DType::kBF16, 99);
  auto r = f.store->Put(failed.put);
  BOOST_TEST(!r.ok());
  BOOST_TEST(r.status().IsIOError(), r.status().ToString());
  BOOST_TEST(f.fs->injected() > 0);
  f.Crash();
  BOOST_REQUIRE(f.Open().ok());
  for (auto& b : acked) CheckAbsentOrExact(f.store.get(), b, true);
  CheckAbsentOrExact(f.store.get(), failed, false);
  BOOST_TEST(f.store->Verify()->ok());
  // The store takes writes again after reopening.
  auto later = MakeTestBlock(TestModel(2), 2, 26, 1, 32, DType::kBF16, 7);
  BOOST_TEST(f.store->Put(later.put).ok());
}

BOOST_AUTO_TEST_CASE(failed_writes_during_compaction) {
  FaultyStore f;
  BOOST_REQUIRE(f.Open().ok());
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 8; ++i) {
    blocks.push_back(MakeTestBlock(TestModel(3), 2, 40, 2, 16, DType::kBF16, i));
    BOOST_REQUIRE(f.store->Put(blocks.back().put).ok());
  }
  for (int i = 0; i < 4; ++i) BOOST_REQUIRE(f.store->Delete(ComputeBlockId(blocks[i].put.model, blocks[i].put.tokens)).ok());
  f.fs->SetFailWrites(true);
  Status s = f.store->Compact();
  BOOST_TEST(!s.ok());
  BOOST_TEST(s.IsIOError(), s.ToString());
  f.Crash();
  BOOST_REQUIRE(f.Open().ok());
  for (int i = 4; i < 8; ++i) CheckAbsentOrExact(f.store.get(), blocks[i], true);
  for (int i = 0; i < 4; ++i) BOOST_TEST(!*f.store->Contains(ComputeBlockId(blocks[i].put.model, blocks[i].put.tokens)));
  BOOST_REQUIRE(f.store->Compact().ok());
  BOOST_TEST(f.store->Verify()->ok());
}

BOOST_AUTO_TEST_CASE(failed_reads_are_errors_not_data) {
  FaultyStore f;
  BOOST_REQUIRE(f.Open().ok());
  auto b = MakeTestBlock(TestModel(4), 3, 50, 2, 32, DType::kBF16, 1);
  const BlockId id = *f.store->Put(b.put);
  BOOST_REQUIRE(f.store->Compact().ok());  // out of the memtable: reads go to files
  f.store.reset();
  BOOST_REQUIRE(f.Open().ok());
  f.fs->SetFailReads(true);
  const uint64_t tb = b.k[0].size();
  std::vector<uint8_t> k(tb, 0), v(tb, 0);
  Status s = f.store->GetLayer(id, 1, k.data(), v.data(), tb);
  BOOST_TEST(!s.ok());
  BOOST_TEST((s.IsIOError() || s.IsCorruption()), s.ToString());
  auto report = f.store->Verify();
  BOOST_TEST((!report.ok() || !report->ok()));
  f.fs->ResetFaults();
  BOOST_REQUIRE(f.store->GetLayer(id, 1, k.data(), v.data(), tb).ok());
  BOOST_TEST((k == b.k[1] && v == b.v[1]));
}

BOOST_AUTO_TEST_SUITE_END()
