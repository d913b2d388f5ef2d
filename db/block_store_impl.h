// Internal: the RocksDB-backed implementation of BlockStore (db/block_store.h). Split by concern:
// block_store.cc (open, write, read, names, pins, eviction) and block_store_admin.cc (stats, compaction,
// verification). Tests may include this header to reach the key and metadata encodings.
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <unordered_map>
#include <unordered_set>

#include "db/block_store.h"
#include "db/thread_pool.h"

namespace blockkv {

// Column families and fixed keys (docs/format.md).
inline constexpr const char* kMetaCF = "meta";
inline constexpr const char* kKvCF = "kv";
inline constexpr const char* kNamesCF = "names";
inline constexpr const char* kSysCF = "sys";
inline constexpr const char* kSysFormatKey = "format";
inline constexpr const char* kSysCountersKey = "counters";
inline constexpr const char* kSysBudgetKey = "budget";
inline constexpr char kSysAccessPrefix = 'a';
inline constexpr const char* kStoreFormat = "blockkv-store 1";
inline constexpr uint8_t kMetaVersion = 1;

// kv key: BlockId (16 bytes) then the layer as a big-endian u16, so a block's layers sort together.
std::string KvKey(const BlockId& id, uint32_t layer);
std::string AccessKey(const BlockId& id);

// Metadata value: see docs/format.md. Decode verifies the trailing XXH3-64.
std::string EncodeMeta(const BlockMeta& m);
StatusOr<BlockMeta> DecodeMeta(const BlockId& id, std::string_view value);

// Exact totals, written in the same WriteBatch as every block write and delete.
struct Counters {
  uint64_t blocks = 0, pinned = 0, named = 0, tokens = 0, raw_bytes = 0, stored_bytes = 0;
  std::string Encode() const;
  static bool Decode(std::string_view v, Counters* out);
};

class BlockStoreImpl final : public BlockStore {
 public:
  static StatusOr<std::unique_ptr<BlockStore>> OpenImpl(const std::string& path,
                                                        const StoreOptions& options);
  ~BlockStoreImpl() override;

  StatusOr<BlockId> Put(const BlockToPut& block) override;
  StatusOr<BlockMeta> GetMeta(const BlockId& id) override;
  StatusOr<bool> Contains(const BlockId& id) override;
  Status GetLayer(const BlockId& id, uint32_t layer, void* k_out, void* v_out,
                  uint64_t tensor_bytes) override;
  Status GetLayers(std::span<const LayerRequest> requests) override;
  Status Delete(const BlockId& id) override;
  Status List(const ListOptions& options,
              const std::function<bool(const BlockMeta&)>& fn) override;
  StatusOr<BlockId> ResolveName(const std::string& name) override;
  Status SetName(const BlockId& id, const std::string& name) override;
  Status Pin(const BlockId& id) override;
  Status Unpin(const BlockId& id) override;
  StatusOr<StoreStats> GetStats() override;
  StatusOr<EvictResult> SetBudget(uint64_t bytes) override;
  StatusOr<EvictResult> EvictTo(uint64_t target_stored_bytes) override;
  Status Compact() override;
  StatusOr<VerifyReport> Verify(const std::function<void(uint64_t, uint64_t)>& progress) override;
  Status Flush() override;
  Status TryCatchUp() override;
  const std::string& path() const override { return path_; }
  OpenMode mode() const override { return options_.mode; }

 private:
  // What the writer keeps in memory about each block, for eviction and exact counters.
  struct IndexEntry {
    uint64_t stored_bytes = 0;
    uint64_t raw_bytes = 0;
    uint64_t last_access = 0;
    uint32_t tokens = 0;
    uint32_t num_layers = 0;
    bool pinned = false;
    bool named = false;
  };

  BlockStoreImpl(std::string path, const StoreOptions& options);
  Status OpenDB();  // opens (or reopens) the RocksDB instance; on failure the old one stays
  Status OpenAndLoad();
  void CloseDB();
  Status LoadState();
  Status RequireWriter(const char* op) const;
  rocksdb::WriteOptions WriteOpts() const;
  // Adds the deletion of block `m` to `batch` and to `*c` (the counters as they will be after the batch).
  void AddDelete(const BlockMeta& m, rocksdb::WriteBatch* batch, Counters* c);
  // Picks least-recently-used unpinned blocks (never `keep`) whose stored bytes add up to at least
  // `need`, oldest first. Returns false if impossible. Requires write_mu_.
  bool PlanEviction(uint64_t need, const BlockId* keep, std::vector<BlockId>* victims,
                    uint64_t* freed);
  StatusOr<EvictResult> EvictLocked(uint64_t target);
  Status SetPinned(const BlockId& id, bool pinned);
  // Moves `name` to block `id` in `batch`: un-names the block that held it (if any). Requires write_mu_.
  // Blocks in `deleted` are being deleted in the same batch and are left alone.
  Status AddNameMove(const std::string& name, const BlockId& id, rocksdb::WriteBatch* batch,
                     Counters* c, const std::vector<BlockId>& deleted = {});
  StatusOr<Counters> ReadCounters();
  // index_ and recency_ change together through these (index_mu_ held, or the open still single-threaded).
  void IndexSet(const BlockId& id, const IndexEntry& e);
  void IndexErase(const BlockId& id);
  void Touch(const BlockId& id);
  void FillLastAccess(BlockMeta* m);
  void MaybeScheduleCompaction(uint64_t freed);
  void CompactionLoop();
  rocksdb::ColumnFamilyHandle* cf(const char* name) const;

  std::string path_;
  StoreOptions options_;
  rocksdb::DB* db_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* kv_ = nullptr;
  rocksdb::ColumnFamilyHandle* names_ = nullptr;
  rocksdb::ColumnFamilyHandle* sys_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;

  std::mutex write_mu_;  // serializes every write (the counters and index follow the write order)
  std::mutex index_mu_;  // guards index_, counters_, dirty_access_ (taken inside write_mu_)
  std::unordered_map<BlockId, IndexEntry, Hash128Hasher> index_;
  // (last_access, id) of every index_ entry, least recently used first: eviction walks it from the front
  // (O(evicted + pinned skipped) per event), a read moves one entry (O(log n)).
  std::set<std::pair<uint64_t, BlockId>> recency_;
  std::unordered_set<BlockId, Hash128Hasher> dirty_access_;
  Counters counters_;
  uint64_t budget_ = 0;
  std::atomic<uint64_t> evictions_{0};
  std::atomic<uint64_t> access_clock_{0};

  // Background compaction after evictions free enough space.
  std::thread compactor_;
  std::mutex compact_mu_;
  std::condition_variable compact_cv_;
  bool compact_requested_ = false;
  bool stopping_ = false;
  uint64_t freed_since_compaction_ = 0;
};

uint64_t NowMicros();

}  // namespace blockkv
