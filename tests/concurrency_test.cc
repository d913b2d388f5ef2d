// One writer, several readers, a secondary reader, eviction and compaction, all at once. Run under TSan in
// CI (.ci/sanitize.sh thread). Readers must never see wrong data: a read either fails with NotFound (the
// block was deleted or evicted) or returns exactly the bytes written.
#include <boost/test/unit_test.hpp>
#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>

#include "db/block_store.h"
#include "tests/test_util.h"

using namespace blockkv;
using namespace blockkv::testing;

BOOST_AUTO_TEST_SUITE(concurrency)

BOOST_AUTO_TEST_CASE(writer_readers_secondary_eviction_compaction) {
  TempDir dir;
  StoreOptions wo;
  wo.threads = 2;
  auto opened = BlockStore::Open(dir.str("s"), wo);
  BOOST_REQUIRE(opened.ok());
  auto store = std::move(opened).value();
  constexpr int kBlocks = 48;
  std::vector<TestBlock> blocks;
  std::vector<BlockId> ids;
  for (int i = 0; i < kBlocks; ++i) {
    blocks.push_back(MakeTestBlock(TestModel(5), 2, 20 + i % 13, 2, 16, DType::kBF16, i, "c" + std::to_string(i)));
    ids.push_back(ComputeBlockId(blocks.back().put.model, blocks.back().put.tokens));
  }
  for (int i = 0; i < 8; ++i) BOOST_REQUIRE(store->Put(blocks[i].put).ok());
  std::atomic<int> written{8};
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0}, errors{0}, reads_ok{0}, secondary_ok{0};
  std::mutex first_error_mu;
  std::string first_error;
  auto note = [&](const Status& st) {
    ++errors;
    std::lock_guard<std::mutex> l(first_error_mu);
    if (first_error.empty()) first_error = st.ToString();
  };

  auto check_read = [&](BlockStore* s, int i, std::atomic<int>* ok_counter) {
    const uint64_t tb = blocks[i].k[0].size();
    std::vector<uint8_t> k(tb), v(tb);
    const uint32_t l = static_cast<uint32_t>(i % 2);
    Status st = s->GetLayer(ids[i], l, k.data(), v.data(), tb);
    if (st.ok()) {
      if (k != blocks[i].k[l] || v != blocks[i].v[l]) ++wrong;
      else ++*ok_counter;
    } else if (st.IsBusy() && s->mode() != OpenMode::kReadWrite) {
      // The read-only view went stale (the writer collected a blob file): allowed, never wrong data.
    } else if (!st.IsNotFound()) {
      note(st);
    }
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r)
    threads.emplace_back([&, r] {
      for (int it = 0; !done; ++it) check_read(store.get(), (it * 7 + r) % written.load(), &reads_ok);
    });
  // A follower: another store object with a read-only view that catches up with the writer. It is opened
  // before compactions start; a catch-up that races a compaction deleting files fails and keeps the old
  // view (counted, not an error), and reads through a stale view may say Busy, never wrong data.
  StoreOptions so;
  so.mode = OpenMode::kSecondary;
  auto opened_follower = BlockStore::Open(dir.str("s"), so);
  BOOST_REQUIRE_MESSAGE(opened_follower.ok(), opened_follower.status().ToString());
  auto follower = std::move(opened_follower).value();
  std::atomic<int> catchups_ok{0}, catchups_failed{0};
  threads.emplace_back([&] {
    for (int it = 0; !done; ++it) {
      if (it % 20 == 0) ((follower->TryCatchUp().ok()) ? catchups_ok : catchups_failed)++;
      check_read(follower.get(), it % written.load(), &secondary_ok);
    }
  });
  threads.emplace_back([&] {  // eviction and compaction
    while (!done) {
      auto st = store->GetStats();
      if (!st.ok()) note(st.status());
      auto ev = store->EvictTo(st->stored_bytes * 3 / 4);
      if (!ev.ok()) note(ev.status());
      Status cs = store->Compact();
      if (!cs.ok()) note(cs);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  for (int i = 8; i < kBlocks; ++i) {
    auto put = store->Put(blocks[i].put);
    if (!put.ok()) note(put.status());
    written = i + 1;
    if (i % 5 == 0) (void)store->Pin(ids[i]);
  }
  // Let the readers and the follower run until each has read something (slow under TSan), at most 30 s.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while ((reads_ok.load() == 0 || secondary_ok.load() == 0) && std::chrono::steady_clock::now() < deadline);
  done = true;
  for (auto& t : threads) t.join();
  BOOST_TEST_MESSAGE("follower catch-ups: " << catchups_ok.load() << " ok, " << catchups_failed.load()
                                             << " raced a compaction");
  // With the writer quiet, the follower catches up and sees exactly what the writer has.
  BOOST_REQUIRE(follower->TryCatchUp().ok());
  BOOST_TEST(follower->GetStats()->blocks == store->GetStats()->blocks);
  BOOST_REQUIRE(follower->List({}, [&](const BlockMeta& m) {
    const int i = static_cast<int>(std::find(ids.begin(), ids.end(), m.id) - ids.begin());
    BOOST_REQUIRE(i < kBlocks);
    check_read(follower.get(), i, &secondary_ok);
    return true;
  }).ok());
  BOOST_TEST(wrong.load() == 0);
  BOOST_TEST(errors.load() == 0, first_error);
  BOOST_TEST(reads_ok.load() > 0);
  BOOST_TEST(secondary_ok.load() > 0);
  // Pinned blocks survived every eviction.
  for (int i = 10; i < kBlocks; i += 5) BOOST_TEST(*store->Contains(ids[i]));
  auto report = store->Verify();
  BOOST_REQUIRE(report.ok());
  BOOST_TEST(report->ok());
}

BOOST_AUTO_TEST_SUITE_END()
