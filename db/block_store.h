// BlockStore: a crash-safe, capacity-bounded store of per-layer KV blocks, backed by RocksDB.
//
// A block is the key/value states of one passage for one model: for each of `num_layers` layers a K and a
// V tensor of shape [tokens][kv_heads][head_dim] (token-major, pre-RoPE keys) in one dtype. Blocks are
// addressed by BlockId (db/block_key.h) and optionally by a name (a pipeline's own passage id).
//
// Thread safety: all methods may be called concurrently from several threads of one process. Only one
// process may open a store for writing; any number may open it read-only or as a secondary instance
// beside the writer (see StoreOptions::mode).
//
// Durability: when Put/Delete/Pin/Unpin return OK with StoreOptions::sync_writes (the default), the change
// survives a crash of the process and of the machine. A block is either entirely present (metadata, every
// layer, name) or entirely absent: each Put and Delete is one RocksDB WriteBatch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "db/block_key.h"
#include "db/codec.h"
#include "db/dtype.h"
#include "db/status.h"

namespace rocksdb {
class Env;
}

namespace blockkv {

enum class OpenMode {
  kReadWrite,  // the single writer; creates the store if StoreOptions::create_if_missing
  kReadOnly,   // a view as of open; works beside a live writer but does not see its later writes
  kSecondary,  // like kReadOnly, and TryCatchUp() moves the view forward to the writer's latest writes
};

struct StoreOptions {
  OpenMode mode = OpenMode::kReadWrite;
  // Create an empty store if `path` holds none (read-write mode only). Default: true.
  bool create_if_missing = true;
  // Upper bound on the bytes of stored (encoded) block data; 0 means unbounded. When a Put would exceed it,
  // least-recently-used unpinned blocks are evicted first. Persisted in the store once set; an Open with 0
  // keeps the persisted budget. Default: 0.
  uint64_t byte_budget = 0;
  // Codec for new blocks. Default: kZstdSplit (lossless).
  Codec codec = Codec::kZstdSplit;
  // zstd level for the high-byte plane. Default: 1 (levels above 3 gain little on KV data and cost speed).
  int zstd_level = 1;
  // Threads for encoding layers in Put and for parallel layer reads. 0 = hardware concurrency. Default: 0.
  int threads = 0;
  // fsync the write-ahead log on every acknowledged write. Default: true.
  bool sync_writes = true;
  // Block cache for metadata tables, bytes. Default: 32 MiB.
  uint64_t meta_cache_bytes = 32ull << 20;
  // The RocksDB environment (file system) to use, e.g. a fault-injecting one in tests. Not owned; must
  // outlive the store. Default: nullptr, the operating system's.
  rocksdb::Env* env = nullptr;
};

// Everything about a block except its tensors.
struct BlockMeta {
  BlockId id;
  ModelFingerprint model;
  std::vector<int32_t> tokens;
  uint32_t num_layers = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  DType dtype = DType::kBF16;
  Codec codec = Codec::kRaw;   // as requested at write; a layer it would not shrink is stored raw
  std::string name;            // empty if the block has none
  uint64_t raw_bytes = 0;      // all layers' K and V, decoded
  uint64_t stored_bytes = 0;   // all layers' encoded values as stored
  uint64_t created_micros = 0; // wall clock, microseconds since the Unix epoch
  uint64_t last_access_micros = 0;  // as last persisted (recency is persisted lazily)
  bool pinned = false;

  uint32_t num_tokens() const { return static_cast<uint32_t>(tokens.size()); }
  // Bytes of one layer's K (or V): tokens × kv_heads × head_dim × dtype size.
  uint64_t tensor_bytes() const {
    return uint64_t{num_tokens()} * kv_heads * head_dim * DTypeSize(dtype);
  }
};

// A block to write. k[l] and v[l] point to tensor_bytes() bytes each, for every layer l.
struct BlockToPut {
  ModelFingerprint model;
  std::vector<int32_t> tokens;
  uint32_t num_layers = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  DType dtype = DType::kBF16;
  std::vector<const void*> k;
  std::vector<const void*> v;
  std::string name;  // optional; if another block has this name, the name moves to this block
  bool pinned = false;
};

// One layer of one block, read into caller memory (each of k_out, v_out holds tensor_bytes()).
struct LayerRequest {
  BlockId id;
  uint32_t layer = 0;
  void* k_out = nullptr;
  void* v_out = nullptr;
  uint64_t tensor_bytes = 0;  // size of each of k_out and v_out: BlockMeta::tensor_bytes()
};

struct StoreStats {
  uint64_t blocks = 0;
  uint64_t pinned_blocks = 0;
  uint64_t named_blocks = 0;
  uint64_t tokens = 0;
  uint64_t raw_bytes = 0;     // exact, from counters kept with every write
  uint64_t stored_bytes = 0;  // exact: encoded values as written (excludes RocksDB overheads)
  uint64_t byte_budget = 0;   // 0 = unbounded
  // From RocksDB properties: what the files take on disk.
  uint64_t live_blob_file_bytes = 0;
  uint64_t total_blob_file_bytes = 0;  // includes garbage awaiting compaction
  uint64_t sst_file_bytes = 0;
  uint64_t memtable_bytes = 0;
  uint64_t evictions = 0;  // blocks evicted by this process since open
  double ratio() const { return stored_bytes ? double(raw_bytes) / double(stored_bytes) : 0.0; }
};

struct ListOptions {
  std::optional<ModelFingerprint> model;  // only blocks of this model
  bool pinned_only = false;
};

struct VerifyReport {
  uint64_t blocks_checked = 0;
  uint64_t values_checked = 0;
  uint64_t bytes_checked = 0;
  std::vector<std::pair<BlockId, std::string>> bad_blocks;  // id and the first problem found
  std::vector<std::string> file_problems;  // from RocksDB's file checksums and SST block checksums
  bool ok() const { return bad_blocks.empty() && file_problems.empty(); }
};

struct EvictResult {
  uint64_t blocks_evicted = 0;
  uint64_t bytes_freed = 0;  // stored bytes
};

class BlockStore {
 public:
  // Opens (or creates) the store at `path`. Errors: InvalidArgument (bad options, not a blockkv store),
  // NotFound (no store and !create_if_missing or not read-write), Busy (another process writes to it),
  // IOError, Corruption.
  static StatusOr<std::unique_ptr<BlockStore>> Open(const std::string& path,
                                                    const StoreOptions& options);
  virtual ~BlockStore() = default;

  // Writes a whole block atomically and returns its id. If the block is already present, only its name
  // (and pin, if set) is updated. May evict other blocks to stay within the byte budget; returns
  // ResourceExhausted if the block cannot fit (everything else is pinned or it alone exceeds the budget).
  // InvalidArgument for shape errors; NotSupported in read-only or secondary mode.
  virtual StatusOr<BlockId> Put(const BlockToPut& block) = 0;

  // NotFound if absent.
  virtual StatusOr<BlockMeta> GetMeta(const BlockId& id) = 0;
  virtual StatusOr<bool> Contains(const BlockId& id) = 0;

  // Reads layer `layer` of block `id` into k_out and v_out, each of `tensor_bytes` bytes (the block's
  // BlockMeta::tensor_bytes(); InvalidArgument if it differs). NotFound if absent; Corruption (naming the
  // block and layer) if the value fails its checksum; Busy in read-only and secondary modes when the
  // writer has since garbage-collected the file this view points to (TryCatchUp or reopen, then retry).
  // On error the output buffers may hold partial data and must not be used.
  virtual Status GetLayer(const BlockId& id, uint32_t layer, void* k_out, void* v_out,
                          uint64_t tensor_bytes) = 0;

  // Reads many layers in parallel on the store's thread pool. Returns the first error (by request order).
  virtual Status GetLayers(std::span<const LayerRequest> requests) = 0;

  // Removes a block (metadata, every layer, its name). NotFound if absent.
  virtual Status Delete(const BlockId& id) = 0;

  // Calls fn for each block's metadata in id order until fn returns false. Reads the meta column family
  // only (never the tensors).
  virtual Status List(const ListOptions& options,
                      const std::function<bool(const BlockMeta&)>& fn) = 0;

  // name -> id. NotFound if no block has this name.
  virtual StatusOr<BlockId> ResolveName(const std::string& name) = 0;

  // Gives block `id` the name `name` (moving it from another block if needed). NotFound if absent.
  virtual Status SetName(const BlockId& id, const std::string& name) = 0;

  virtual Status Pin(const BlockId& id) = 0;
  virtual Status Unpin(const BlockId& id) = 0;

  virtual StatusOr<StoreStats> GetStats() = 0;

  // Sets and persists the byte budget (0 = unbounded), evicting down to it.
  virtual StatusOr<EvictResult> SetBudget(uint64_t bytes) = 0;
  // Evicts least-recently-used unpinned blocks until stored bytes <= target (the budget is unchanged).
  virtual StatusOr<EvictResult> EvictTo(uint64_t target_stored_bytes) = 0;

  // Compacts every column family, forcing blob garbage collection so space freed by deletes returns.
  virtual Status Compact() = 0;

  // Decodes and checksums every stored value and checks RocksDB's file and block checksums. `progress`
  // (optional) is called after each block with (blocks done, blocks total).
  virtual StatusOr<VerifyReport> Verify(
      const std::function<void(uint64_t, uint64_t)>& progress = nullptr) = 0;

  // Persists in-memory recency information (done on close and periodically).
  virtual Status Flush() = 0;

  // Secondary mode: catches up with the writer's latest acknowledged writes (by reopening the view).
  // Must not run concurrently with other calls on this object. A no-op OK in other modes.
  virtual Status TryCatchUp() = 0;

  virtual const std::string& path() const = 0;
  virtual OpenMode mode() const = 0;
};

}  // namespace blockkv
