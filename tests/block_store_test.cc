#include <boost/test/unit_test.hpp>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "db/block_store.h"
#include "db/block_store_impl.h"
#include "tests/test_util.h"

using namespace blockkv;
using blockkv::testing::MakeTestBlock;
using blockkv::testing::TempDir;
using blockkv::testing::TestBlock;
using blockkv::testing::TestModel;

namespace {

std::unique_ptr<BlockStore> OpenStore(const std::string& path, StoreOptions o = {}) {
  auto s = BlockStore::Open(path, o);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(s).value();
}

// Reads every layer of `b` back and compares bit for bit.
void ExpectBlockEquals(BlockStore* store, const BlockId& id, const TestBlock& b) {
  auto m = store->GetMeta(id);
  BOOST_REQUIRE_MESSAGE(m.ok(), m.status().ToString());
  BOOST_TEST(m->tokens == b.put.tokens);
  BOOST_TEST(m->num_layers == b.put.num_layers);
  const uint64_t tb = m->tensor_bytes();
  std::vector<uint8_t> k(tb, 0x5A), v(tb, 0xA5);
  for (uint32_t l = 0; l < m->num_layers; ++l) {
    Status s = store->GetLayer(id, l, k.data(), v.data(), tb);
    BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
    BOOST_TEST(std::memcmp(k.data(), b.k[l].data(), tb) == 0);
    BOOST_TEST(std::memcmp(v.data(), b.v[l].data(), tb) == 0);
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(block_store)

BOOST_AUTO_TEST_CASE(put_get_list_delete_reopen) {
  TempDir dir;
  const auto model = TestModel(1);
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  {
    auto store = OpenStore(dir.str("s"));
    for (int i = 0; i < 6; ++i) {
      blocks.push_back(MakeTestBlock(model, 4, 20 + i * 7, 2, 32,
                                     i % 2 ? DType::kBF16 : DType::kF16, 100 + i,
                                     "doc-" + std::to_string(i)));
      auto id = store->Put(blocks.back().put);
      BOOST_REQUIRE_MESSAGE(id.ok(), id.status().ToString());
      BOOST_TEST(*id == ComputeBlockId(model, blocks.back().put.tokens));
      ids.push_back(*id);
    }
    for (int i = 0; i < 6; ++i) ExpectBlockEquals(store.get(), ids[i], blocks[i]);
    auto stats = store->GetStats();
    BOOST_REQUIRE(stats.ok());
    BOOST_TEST(stats->blocks == 6u);
    BOOST_TEST(stats->named_blocks == 6u);
    BOOST_TEST(stats->ratio() > 1.0);
    BOOST_TEST(store->Delete(ids[2]).ok());
    BOOST_TEST(store->Delete(ids[2]).IsNotFound());
    BOOST_TEST(store->ResolveName("doc-2").status().IsNotFound());
  }
  auto store = OpenStore(dir.str("s"));
  for (int i = 0; i < 6; ++i) {
    if (i == 2) {
      BOOST_TEST(!*store->Contains(ids[i]));
      std::vector<uint8_t> k(16), v(16);
      BOOST_TEST(store->GetLayer(ids[i], 0, k.data(), v.data(), 16).IsNotFound());
      continue;
    }
    ExpectBlockEquals(store.get(), ids[i], blocks[i]);
    BOOST_TEST(*store->ResolveName("doc-" + std::to_string(i)) == ids[i]);
  }
  std::set<BlockId> listed;
  BOOST_REQUIRE(store->List({}, [&](const BlockMeta& m) {
    listed.insert(m.id);
    return true;
  }).ok());
  BOOST_TEST(listed.size() == 5u);
  auto stats = store->GetStats();
  BOOST_TEST(stats->blocks == 5u);
  uint64_t raw = 0;
  for (int i = 0; i < 6; ++i)
    if (i != 2) raw += 2ull * blocks[i].put.num_layers * blocks[i].k[0].size();
  BOOST_TEST(stats->raw_bytes == raw);
}

BOOST_AUTO_TEST_CASE(list_filters_by_model_and_ids_differ_per_model) {
  TempDir dir;
  auto store = OpenStore(dir.str("s"));
  auto a = MakeTestBlock(TestModel(1), 2, 10, 1, 16, DType::kBF16, 1);
  auto b = MakeTestBlock(TestModel(2), 2, 10, 1, 16, DType::kBF16, 1);  // same tokens, other model
  BOOST_REQUIRE(a.put.tokens == b.put.tokens);
  auto ida = store->Put(a.put), idb = store->Put(b.put);
  BOOST_REQUIRE(ida.ok() && idb.ok());
  BOOST_TEST(*ida != *idb);
  int n = 0;
  ListOptions lo;
  lo.model = TestModel(2);
  BOOST_REQUIRE(store->List(lo, [&](const BlockMeta& m) {
    BOOST_TEST(m.id == *idb);
    ++n;
    return true;
  }).ok());
  BOOST_TEST(n == 1);
}

BOOST_AUTO_TEST_CASE(parallel_layer_reads) {
  TempDir dir;
  StoreOptions o;
  o.threads = 4;
  auto store = OpenStore(dir.str("s"), o);
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 5; ++i) blocks.push_back(MakeTestBlock(TestModel(3), 3, 33, 2, 64, DType::kBF16, i));
  std::vector<BlockId> ids;
  for (auto& b : blocks) ids.push_back(*store->Put(b.put));
  const uint64_t tb = blocks[0].k[0].size();
  std::vector<std::vector<uint8_t>> out(2 * blocks.size(), std::vector<uint8_t>(tb, 0));
  std::vector<LayerRequest> reqs;
  for (size_t i = 0; i < blocks.size(); ++i)
    reqs.push_back({ids[i], 1, out[2 * i].data(), out[2 * i + 1].data(), tb});
  BOOST_REQUIRE(store->GetLayers(reqs).ok());
  for (size_t i = 0; i < blocks.size(); ++i) {
    BOOST_TEST(out[2 * i] == blocks[i].k[1]);
    BOOST_TEST(out[2 * i + 1] == blocks[i].v[1]);
  }
  // A wrong size is refused rather than overrunning the caller's buffer.
  reqs[0].tensor_bytes = tb / 2;
  BOOST_TEST(store->GetLayers(reqs).IsInvalidArgument());
}

BOOST_AUTO_TEST_CASE(put_is_idempotent_and_moves_names) {
  TempDir dir;
  auto store = OpenStore(dir.str("s"));
  auto a = MakeTestBlock(TestModel(1), 2, 12, 1, 16, DType::kBF16, 1, "p1");
  auto b = MakeTestBlock(TestModel(1), 2, 14, 1, 16, DType::kBF16, 2, "p2");
  auto ida = *store->Put(a.put);
  auto idb = *store->Put(b.put);
  BOOST_TEST(*store->Put(a.put) == ida);  // again: no change
  BOOST_TEST(store->GetStats()->blocks == 2u);
  // The name p1 moves to block b.
  b.put.name = "p1";
  BOOST_TEST(*store->Put(b.put) == idb);
  BOOST_TEST(*store->ResolveName("p1") == idb);
  BOOST_TEST(store->GetMeta(ida)->name == "");
  BOOST_TEST(store->ResolveName("p2").status().IsNotFound());
  BOOST_TEST(store->GetStats()->named_blocks == 1u);
  auto report = store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->ok(), (report->file_problems.empty() ? "" : report->file_problems[0]));
}

BOOST_AUTO_TEST_CASE(invalid_puts_are_refused) {
  TempDir dir;
  auto store = OpenStore(dir.str("s"));
  auto a = MakeTestBlock(TestModel(1), 2, 12, 1, 16, DType::kBF16, 1);
  BlockToPut p = a.put;
  p.k.pop_back();
  BOOST_TEST(store->Put(p).status().IsInvalidArgument());
  p = a.put;
  p.tokens.clear();
  BOOST_TEST(store->Put(p).status().IsInvalidArgument());
  p = a.put;
  p.v[1] = nullptr;
  BOOST_TEST(store->Put(p).status().IsInvalidArgument());
  BOOST_TEST(store->GetStats()->blocks == 0u);
}

BOOST_AUTO_TEST_CASE(eviction_keeps_budget_and_spares_pinned_blocks) {
  TempDir dir;
  auto store = OpenStore(dir.str("s"));
  // Measure one block's stored size, then set a budget for about four of them.
  auto probe = MakeTestBlock(TestModel(1), 2, 64, 2, 32, DType::kBF16, 999);
  auto pid = *store->Put(probe.put);
  const uint64_t one = store->GetMeta(pid)->stored_bytes;
  BOOST_REQUIRE(store->Delete(pid).ok());
  auto r = store->SetBudget(4 * one + one / 2);
  BOOST_REQUIRE(r.ok());

  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  for (int i = 0; i < 12; ++i) {
    blocks.push_back(MakeTestBlock(TestModel(1), 2, 64, 2, 32, DType::kBF16, i));
    auto id = store->Put(blocks.back().put);
    BOOST_REQUIRE_MESSAGE(id.ok(), id.status().ToString());
    ids.push_back(*id);
    if (i == 0) BOOST_REQUIRE(store->Pin(ids[0]).ok());
    if (i == 5) {  // touch block 1 so it is recently used
      std::vector<uint8_t> k(blocks[1].k[0].size()), v(k.size());
      (void)store->GetLayer(ids[1], 0, k.data(), v.data(), k.size());
    }
    auto st = store->GetStats();
    BOOST_TEST(st->stored_bytes <= st->byte_budget);
  }
  BOOST_TEST(*store->Contains(ids[0]));   // pinned: never evicted
  BOOST_TEST(*store->Contains(ids[11]));  // newest
  BOOST_TEST(!*store->Contains(ids[2]));  // old and unpinned
  BOOST_TEST(store->GetStats()->evictions > 0u);

  // Everything pinned: a new block cannot fit and nothing is lost.
  BOOST_REQUIRE(store->List({}, [&](const BlockMeta& m) {
    BOOST_REQUIRE(store->Pin(m.id).ok());
    return true;
  }).ok());
  auto before = store->GetStats()->blocks;
  auto extra = MakeTestBlock(TestModel(1), 2, 64, 2, 32, DType::kBF16, 500);
  BOOST_TEST(store->Put(extra.put).status().IsResourceExhausted());
  BOOST_TEST(store->GetStats()->blocks == before);

  // Explicit eviction to a smaller target with pins removed.
  BOOST_REQUIRE(store->List({}, [&](const BlockMeta& m) {
    BOOST_REQUIRE(store->Unpin(m.id).ok());
    return true;
  }).ok());
  BOOST_REQUIRE(store->Pin(ids[0]).ok());
  // Evicting to zero leaves exactly the pinned block.
  auto ev = store->EvictTo(0);
  BOOST_REQUIRE(ev.ok());
  BOOST_TEST(ev->blocks_evicted > 0u);
  BOOST_TEST(*store->Contains(ids[0]));
  BOOST_TEST(store->GetStats()->blocks == 1u);
  BOOST_TEST(store->GetStats()->stored_bytes == store->GetMeta(ids[0])->stored_bytes);
  BOOST_REQUIRE(store->Compact().ok());
  auto report = store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->ok());
}

BOOST_AUTO_TEST_CASE(eviction_follows_recency_exactly) {
  // Ten equal blocks fill the budget; reads reorder them; every put past it evicts exactly the least
  // recently used unpinned block, also after a reopen (recency is persisted on close).
  TempDir dir;
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 16; ++i) blocks.push_back(MakeTestBlock(TestModel(1), 1, 48, 1, 64, DType::kBF16, 100 + i));
  std::vector<BlockId> ids;
  auto read = [&](BlockStore& store, int i) {
    std::vector<uint8_t> k(blocks[i].k[0].size()), v(k.size());
    BOOST_REQUIRE(store.GetLayer(ids[i], 0, k.data(), v.data(), k.size()).ok());
  };
  auto present = [&](BlockStore& store) {
    std::vector<int> in;
    for (size_t i = 0; i < ids.size(); ++i)
      if (*store.Contains(ids[i])) in.push_back(static_cast<int>(i));
    return in;
  };
  {
    auto store = OpenStore(dir.str("s"));
    uint64_t largest = 0;
    for (int i = 0; i < 10; ++i) {
      ids.push_back(*store->Put(blocks[i].put));
      largest = std::max(largest, store->GetMeta(ids.back())->stored_bytes);
    }
    const uint64_t total = store->GetStats()->stored_bytes;
    BOOST_REQUIRE(store->SetBudget(total + largest / 2).ok());  // all ten fit, an eleventh does not
    BOOST_REQUIRE(store->GetStats()->blocks == 10u);
    read(*store, 0);
    read(*store, 3);
    read(*store, 5);  // oldest first now: 1 2 4 6 7 8 9 0 3 5
    for (int i = 10; i < 13; ++i) ids.push_back(*store->Put(blocks[i].put));  // evict 1, 2, 4
    BOOST_TEST((present(*store) == std::vector<int>{0, 3, 5, 6, 7, 8, 9, 10, 11, 12}));
    BOOST_REQUIRE(store->Pin(ids[6]).ok());
    ids.push_back(*store->Put(blocks[13].put));  // 6 is pinned: evicts 7
    BOOST_TEST((present(*store) == std::vector<int>{0, 3, 5, 6, 8, 9, 10, 11, 12, 13}));
    read(*store, 8);  // oldest unpinned now: 9
  }
  auto store = OpenStore(dir.str("s"));
  ids.push_back(*store->Put(blocks[14].put));  // evicts 9, as recorded before the close
  BOOST_TEST((present(*store) == std::vector<int>{0, 3, 5, 6, 8, 10, 11, 12, 13, 14}));
  auto ev = store->EvictTo(store->GetStats()->stored_bytes - 1);  // the least recent unpinned: 0
  BOOST_REQUIRE(ev.ok());
  BOOST_TEST(ev->blocks_evicted == 1u);
  BOOST_TEST((present(*store) == std::vector<int>{3, 5, 6, 8, 10, 11, 12, 13, 14}));
}

BOOST_AUTO_TEST_CASE(budget_and_recency_survive_reopen) {
  TempDir dir;
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  uint64_t one;
  {
    auto store = OpenStore(dir.str("s"));
    for (int i = 0; i < 4; ++i) {
      blocks.push_back(MakeTestBlock(TestModel(1), 1, 50, 1, 64, DType::kBF16, i));
      ids.push_back(*store->Put(blocks.back().put));
    }
    one = store->GetMeta(ids[0])->stored_bytes;
    std::vector<uint8_t> k(blocks[0].k[0].size()), v(k.size());
    BOOST_REQUIRE(store->GetLayer(ids[0], 0, k.data(), v.data(), k.size()).ok());  // 0 most recent
    BOOST_REQUIRE(store->SetBudget(100 * one).ok());
  }
  auto store = OpenStore(dir.str("s"));
  BOOST_TEST(store->GetStats()->byte_budget == 100 * one);
  auto ev = store->EvictTo(2 * one + one / 2);
  BOOST_REQUIRE(ev.ok());
  BOOST_TEST(*store->Contains(ids[0]));  // recency persisted across the reopen
  BOOST_TEST(*store->Contains(ids[3]));
  BOOST_TEST(!*store->Contains(ids[1]));
}

BOOST_AUTO_TEST_CASE(flipped_byte_in_blob_file_is_corruption_naming_the_block) {
  TempDir dir;
  auto b = MakeTestBlock(TestModel(4), 3, 40, 2, 32, DType::kBF16, 42, "victim");
  BlockId id;
  {
    auto store = OpenStore(dir.str("s"));
    id = *store->Put(b.put);
    BOOST_REQUIRE(store->Compact().ok());  // flush: the values now live in a blob file
  }
  // Flip one byte in the middle of the blob file (inside a value).
  std::string blob;
  for (auto& e : std::filesystem::directory_iterator(dir.str("s")))
    if (e.path().extension() == ".blob") blob = e.path().string();
  BOOST_REQUIRE(!blob.empty());
  testing::FlipMiddleByte(blob, 0x01);
  StoreOptions ro;
  ro.mode = OpenMode::kReadOnly;
  auto store = OpenStore(dir.str("s"), ro);
  const uint64_t tb = b.k[0].size();
  std::vector<uint8_t> k(tb), v(tb);
  int corrupt = 0;
  for (uint32_t l = 0; l < 3; ++l) {
    Status s = store->GetLayer(id, l, k.data(), v.data(), tb);
    if (!s.ok()) {
      BOOST_TEST(s.IsCorruption(), s.ToString());
      BOOST_TEST(s.message().find(id.ToHex()) != std::string::npos, s.ToString());
      ++corrupt;
    }
  }
  BOOST_TEST(corrupt == 1);
  auto report = store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_REQUIRE(report->bad_blocks.size() == 1u);
  BOOST_TEST(report->bad_blocks[0].first == id);
  BOOST_TEST(!report->file_problems.empty());  // the blob file's checksum no longer matches
}

BOOST_AUTO_TEST_CASE(corrupt_metadata_is_detected) {
  auto b = MakeTestBlock(TestModel(4), 1, 5, 1, 8, DType::kBF16, 1);
  BlockMeta m;
  m.id = ComputeBlockId(b.put.model, b.put.tokens);
  m.model = b.put.model;
  m.tokens = b.put.tokens;
  m.num_layers = 1;
  m.kv_heads = 1;
  m.head_dim = 8;
  m.name = "x";
  std::string enc = EncodeMeta(m);
  BOOST_REQUIRE(DecodeMeta(m.id, enc).ok());
  for (size_t i = 0; i < enc.size(); ++i) {
    std::string bad = enc;
    bad[i] ^= 0x40;
    auto d = DecodeMeta(m.id, bad);
    BOOST_TEST(!d.ok(), "flip at " << i);
  }
}

BOOST_AUTO_TEST_CASE(secondary_sees_writer_after_catching_up) {
  TempDir dir;
  auto writer = OpenStore(dir.str("s"));
  auto a = MakeTestBlock(TestModel(1), 2, 30, 2, 16, DType::kBF16, 1);
  auto ida = *writer->Put(a.put);
  StoreOptions so;
  so.mode = OpenMode::kSecondary;
  auto reader = OpenStore(dir.str("s"), so);
  ExpectBlockEquals(reader.get(), ida, a);
  auto b = MakeTestBlock(TestModel(1), 2, 31, 2, 16, DType::kBF16, 2, "later");
  auto idb = *writer->Put(b.put);
  BOOST_REQUIRE(reader->TryCatchUp().ok());
  ExpectBlockEquals(reader.get(), idb, b);
  BOOST_TEST(*reader->ResolveName("later") == idb);
  BOOST_TEST(reader->GetStats()->blocks == 2u);
  BOOST_TEST(reader->Put(b.put).status().IsNotSupported());
  // A second writer is refused while the first is open.
  auto second = BlockStore::Open(dir.str("s"), {});
  BOOST_TEST(second.status().IsBusy(), second.status().ToString());
}

BOOST_AUTO_TEST_CASE(open_errors_are_clear) {
  TempDir dir;
  StoreOptions ro;
  ro.mode = OpenMode::kReadOnly;
  auto s = BlockStore::Open(dir.str("nothing"), ro);
  BOOST_TEST(s.status().IsNotFound());
  std::ofstream(dir.str("file")) << "x";
  BOOST_TEST(BlockStore::Open(dir.str("file"), {}).status().IsInvalidArgument());
  std::filesystem::create_directories(dir.str("full"));
  std::ofstream(dir.str("full/other")) << "x";
  BOOST_TEST(BlockStore::Open(dir.str("full"), {}).status().IsInvalidArgument());
}

// Many threads reading while one writes: no errors, no wrong data.
BOOST_AUTO_TEST_CASE(concurrent_readers_and_writer) {
  TempDir dir;
  auto store = OpenStore(dir.str("s"));
  std::vector<TestBlock> blocks;
  for (int i = 0; i < 16; ++i) blocks.push_back(MakeTestBlock(TestModel(1), 2, 24, 1, 32, DType::kBF16, i));
  std::vector<BlockId> ids;
  for (int i = 0; i < 8; ++i) ids.push_back(*store->Put(blocks[i].put));
  std::atomic<int> failures{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&, t] {
      const uint64_t tb = blocks[0].k[0].size();
      std::vector<uint8_t> k(tb), v(tb);
      for (int it = 0; it < 200; ++it) {
        int i = (it + t) % 8;
        if (!store->GetLayer(ids[i], it % 2, k.data(), v.data(), tb).ok() ||
            k != blocks[i].k[it % 2] || v != blocks[i].v[it % 2])
          ++failures;
      }
    });
  for (int i = 8; i < 16; ++i) BOOST_REQUIRE(store->Put(blocks[i].put).ok());
  for (auto& r : readers) r.join();
  BOOST_TEST(failures.load() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
