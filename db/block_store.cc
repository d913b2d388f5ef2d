#include "db/block_store.h"

#include <rocksdb/file_checksum.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "db/block_store_impl.h"
#include "db/rocksdb_util.h"

namespace blockkv {

namespace fs = std::filesystem;

uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// ---- encodings ----------------------------------------------------------------------------------

namespace {

template <typename T>
void Append(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// Reads fixed-width little-endian fields from a value, failing softly at the end.
class Reader {
 public:
  explicit Reader(std::string_view v) : v_(v) {}
  template <typename T>
  bool Read(T* out) {
    if (v_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(out, v_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool ReadBytes(size_t n, std::string_view* out) {
    if (v_.size() - pos_ < n) return false;
    *out = v_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }

 private:
  std::string_view v_;
  size_t pos_ = 0;
};

std::string IdText(const BlockId& id) { return "block " + id.ToHex(); }

}  // namespace

std::string KvKey(const BlockId& id, uint32_t layer) {
  std::string k(id.AsBytes());
  k.push_back(static_cast<char>((layer >> 8) & 0xff));
  k.push_back(static_cast<char>(layer & 0xff));
  return k;
}

std::string AccessKey(const BlockId& id) {
  std::string k(1, kSysAccessPrefix);
  k.append(id.AsBytes());
  return k;
}

std::string EncodeMeta(const BlockMeta& m) {
  std::string s;
  s.reserve(96 + m.name.size() + 4 * m.tokens.size());
  Append<uint8_t>(&s, kMetaVersion);
  s.append(m.model.AsBytes());
  Append<uint32_t>(&s, m.num_layers);
  Append<uint32_t>(&s, m.kv_heads);
  Append<uint32_t>(&s, m.head_dim);
  Append<uint8_t>(&s, static_cast<uint8_t>(m.dtype));
  Append<uint8_t>(&s, static_cast<uint8_t>(m.codec));
  Append<uint8_t>(&s, m.pinned ? 1 : 0);
  Append<uint8_t>(&s, 0);
  Append<uint64_t>(&s, m.created_micros);
  Append<uint64_t>(&s, m.raw_bytes);
  Append<uint64_t>(&s, m.stored_bytes);
  Append<uint32_t>(&s, static_cast<uint32_t>(m.name.size()));
  s.append(m.name);
  Append<uint32_t>(&s, static_cast<uint32_t>(m.tokens.size()));
  s.append(reinterpret_cast<const char*>(m.tokens.data()), 4 * m.tokens.size());
  Append<uint64_t>(&s, XXH3_64bits(s.data(), s.size()));
  return s;
}

StatusOr<BlockMeta> DecodeMeta(const BlockId& id, std::string_view v) {
  auto bad = [&](const char* what) {
    return Status::Corruption(IdText(id) + ": metadata " + what);
  };
  if (v.size() < 8) return bad("truncated");
  uint64_t sum;
  std::memcpy(&sum, v.data() + v.size() - 8, 8);
  if (XXH3_64bits(v.data(), v.size() - 8) != sum) return bad("checksum mismatch");
  Reader r(v.substr(0, v.size() - 8));
  BlockMeta m;
  m.id = id;
  uint8_t version, dtype, codec, flags, reserved;
  std::string_view model, name, tokens;
  uint32_t name_len, ntokens;
  if (!r.Read(&version)) return bad("truncated");
  if (version != kMetaVersion)
    return Status::NotSupported(IdText(id) + ": metadata version " + std::to_string(version));
  if (!r.ReadBytes(16, &model) || !r.Read(&m.num_layers) || !r.Read(&m.kv_heads) ||
      !r.Read(&m.head_dim) || !r.Read(&dtype) || !r.Read(&codec) || !r.Read(&flags) ||
      !r.Read(&reserved) || !r.Read(&m.created_micros) || !r.Read(&m.raw_bytes) ||
      !r.Read(&m.stored_bytes) || !r.Read(&name_len) || !r.ReadBytes(name_len, &name) ||
      !r.Read(&ntokens) || !r.ReadBytes(uint64_t{ntokens} * 4, &tokens))
    return bad("truncated");
  if (r.pos() != v.size() - 8) return bad("has trailing bytes");
  if (!IsValidDType(dtype)) return bad("has an unknown dtype");
  if (codec > static_cast<uint8_t>(Codec::kZstdSplit)) return bad("has an unknown codec");
  m.model = ModelFingerprint(Hash128::FromBytes(model));
  m.dtype = static_cast<DType>(dtype);
  m.codec = static_cast<Codec>(codec);
  m.pinned = flags & 1;
  m.name = std::string(name);
  if (ntokens == 0) return bad("lists no tokens");
  m.tokens.resize(ntokens);
  std::memcpy(m.tokens.data(), tokens.data(), tokens.size());
  return m;
}

std::string Counters::Encode() const {
  std::string s;
  for (uint64_t v : {blocks, pinned, named, tokens, raw_bytes, stored_bytes}) Append<uint64_t>(&s, v);
  return s;
}

bool Counters::Decode(std::string_view v, Counters* out) {
  Reader r(v);
  return v.size() == 48 && r.Read(&out->blocks) && r.Read(&out->pinned) && r.Read(&out->named) &&
         r.Read(&out->tokens) && r.Read(&out->raw_bytes) && r.Read(&out->stored_bytes);
}

// ---- open and close -----------------------------------------------------------------------------

StatusOr<std::unique_ptr<BlockStore>> BlockStore::Open(const std::string& path,
                                                       const StoreOptions& options) {
  return BlockStoreImpl::OpenImpl(path, options);
}

BlockStoreImpl::BlockStoreImpl(std::string path, const StoreOptions& options)
    : path_(std::move(path)), options_(options) {}

rocksdb::ColumnFamilyHandle* BlockStoreImpl::cf(const char* name) const {
  for (auto* h : handles_)
    if (h->GetName() == name) return h;
  return nullptr;
}

namespace {

rocksdb::DBOptions MakeDBOptions(const StoreOptions& o) {
  rocksdb::DBOptions d;
  d.create_if_missing = o.create_if_missing && o.mode == OpenMode::kReadWrite;
  d.create_missing_column_families = o.mode == OpenMode::kReadWrite;
  // crc32c whole-file checksums, recorded in the MANIFEST, so VerifyFileChecksums covers blob files.
  d.file_checksum_gen_factory = rocksdb::GetFileChecksumGenCrc32cFactory();
  d.max_background_jobs = 4;
  d.bytes_per_sync = 1 << 20;
  d.keep_log_file_num = 4;
  d.max_manifest_file_size = 64 << 20;
  // Read-only views open every table file at open and keep it open, so the writer's later compactions
  // (which unlink files) do not break them; blob files open lazily (a gone one makes reads say Busy).
  if (o.mode != OpenMode::kReadWrite) d.max_open_files = -1;
  if (o.env != nullptr) d.env = o.env;
  return d;
}

std::vector<rocksdb::ColumnFamilyDescriptor> MakeColumnFamilies(const StoreOptions& o) {
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(o.meta_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  rocksdb::ColumnFamilyOptions small;
  small.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  // The kv column family holds the tensors: every value goes to a blob file (integrated BlobDB), values
  // are already compressed by blockkv, and garbage collection reclaims the space of deleted blocks.
  rocksdb::ColumnFamilyOptions kv = small;
  kv.enable_blob_files = true;
  kv.min_blob_size = 64;
  kv.blob_file_size = 256ull << 20;
  kv.blob_compression_type = rocksdb::kNoCompression;
  kv.enable_blob_garbage_collection = true;
  kv.blob_garbage_collection_age_cutoff = 0.5;
  kv.write_buffer_size = 128ull << 20;
  kv.compression = rocksdb::kNoCompression;

  return {{rocksdb::kDefaultColumnFamilyName, small},
          {kMetaCF, small},
          {kKvCF, kv},
          {kNamesCF, small},
          {kSysCF, small}};
}

}  // namespace

StatusOr<std::unique_ptr<BlockStore>> BlockStoreImpl::OpenImpl(const std::string& path,
                                                               const StoreOptions& options) {
  if (path.empty()) return Status::InvalidArgument("store path is empty");
  std::error_code ec;
  const bool exists = fs::exists(fs::path(path) / "CURRENT", ec);
  if (!exists) {
    if (fs::exists(path, ec) && !fs::is_directory(path, ec))
      return Status::InvalidArgument(path + ": not a directory");
    if (options.mode != OpenMode::kReadWrite || !options.create_if_missing)
      return Status::NotFound(path + ": no blockkv store here");
    if (fs::exists(path, ec) && !fs::is_empty(path, ec))
      return Status::InvalidArgument(path + ": directory is not empty and holds no blockkv store");
  }
  if (exists) {
    std::vector<std::string> names;
    rocksdb::Status ls = rocksdb::DB::ListColumnFamilies(MakeDBOptions(options), path, &names);
    if (!ls.ok()) return FromRocks(ls, path);
    for (const char* want : {kMetaCF, kKvCF, kNamesCF, kSysCF})
      if (std::find(names.begin(), names.end(), want) == names.end())
        return Status::InvalidArgument(path + ": a RocksDB database, but not a blockkv store");
  } else {
    fs::create_directories(path, ec);
  }
  std::unique_ptr<BlockStoreImpl> s(new BlockStoreImpl(path, options));
  s->pool_ = std::make_unique<ThreadPool>(options.threads);
  RETURN_IF_ERROR(s->OpenAndLoad());
  if (options.mode == OpenMode::kReadWrite) s->compactor_ = std::thread([p = s.get()] { p->CompactionLoop(); });
  return std::unique_ptr<BlockStore>(std::move(s));
}

Status BlockStoreImpl::OpenDB() {
  rocksdb::DBOptions dbo = MakeDBOptions(options_);
  auto cfs = MakeColumnFamilies(options_);
  rocksdb::Status rs;
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  if (options_.mode == OpenMode::kReadWrite) {
    rs = rocksdb::DB::Open(dbo, path_, cfs, &handles, &db);
  } else {
    // Secondary mode is a read-only instance reopened by TryCatchUp(): RocksDB's own secondary
    // instances do not support BlobDB (they crash reading blob files in 7.8; upstream documents the
    // combination as unsupported). A live writer may delete files (compaction, blob garbage
    // collection) while a read-only open reads its MANIFEST; such an open fails and is retried.
    for (int attempt = 0;; ++attempt) {
      rs = rocksdb::DB::OpenForReadOnly(dbo, path_, cfs, &handles, &db,
                                        /*error_if_wal_file_exists=*/false);
      if (rs.ok() || attempt == 40 || !(rs.IsIOError() || rs.IsPathNotFound() || rs.IsCorruption()))
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min(5 * (attempt + 1), 50)));
    }
  }
  if (!rs.ok()) return FromRocks(rs, "opening store " + path_);
  CloseDB();
  db_ = db;
  handles_ = std::move(handles);
  meta_ = cf(kMetaCF);
  kv_ = cf(kKvCF);
  names_ = cf(kNamesCF);
  sys_ = cf(kSysCF);
  return Status::OK();
}

Status BlockStoreImpl::OpenAndLoad() {
  for (int attempt = 0;; ++attempt) {
    RETURN_IF_ERROR(OpenDB());
    Status st = LoadState();
    // A read-only view opened while the writer flushes can miss the write-ahead log the writer just
    // retired (RocksDB reads the MANIFEST, then the logs): the view then lacks recent writes. Missing
    // store records show it; open again.
    if (st.ok() || options_.mode == OpenMode::kReadWrite || attempt == 20 || !st.IsInvalidArgument())
      return st;
    std::this_thread::sleep_for(std::chrono::milliseconds(5 * (attempt + 1)));
  }
}

void BlockStoreImpl::CloseDB() {
  if (db_ == nullptr) return;
  for (auto* h : handles_) db_->DestroyColumnFamilyHandle(h);
  handles_.clear();
  (void)db_->Close();
  delete db_;
  db_ = nullptr;
}

Status BlockStoreImpl::LoadState() {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), sys_, kSysFormatKey, &v);
  if (rs.IsNotFound()) {
    if (options_.mode != OpenMode::kReadWrite)
      return Status::InvalidArgument(path_ + ": store was never initialized");
    rocksdb::WriteBatch b;
    b.Put(sys_, kSysFormatKey, kStoreFormat);
    b.Put(sys_, kSysCountersKey, Counters().Encode());
    RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &b), path_));
  } else if (!rs.ok()) {
    return FromRocks(rs, path_);
  } else if (v != kStoreFormat) {
    return Status::NotSupported(path_ + ": store format '" + v + "', this build reads '" +
                                kStoreFormat + "'");
  }
  rs = db_->Get(rocksdb::ReadOptions(), sys_, kSysBudgetKey, &v);
  if (rs.ok() && v.size() == 8) std::memcpy(&budget_, v.data(), 8);
  if (options_.mode != OpenMode::kReadWrite) return Status::OK();

  ASSIGN_OR_RETURN(counters_, ReadCounters());
  // The writer keeps a small in-memory index of every block for eviction. Blocks whose recency was
  // never persisted count as accessed when they were created.
  std::unordered_map<BlockId, uint64_t, Hash128Hasher> access;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), sys_));
    const std::string prefix(1, kSysAccessPrefix);
    for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
      if (it->key().size() != 17 || it->value().size() != 8) continue;
      uint64_t t;
      std::memcpy(&t, it->value().data(), 8);
      access[BlockId(Hash128::FromBytes(std::string_view(it->key().data() + 1, 16)))] = t;
    }
    RETURN_IF_ERROR(FromRocks(it->status(), path_ + ": reading recency"));
  }
  Status st = List(ListOptions(), [&](const BlockMeta& m) {
    IndexEntry e;
    e.stored_bytes = m.stored_bytes;
    e.raw_bytes = m.raw_bytes;
    e.tokens = m.num_tokens();
    e.num_layers = m.num_layers;
    e.pinned = m.pinned;
    e.named = !m.name.empty();
    auto a = access.find(m.id);
    e.last_access = a != access.end() ? a->second : m.created_micros;
    IndexSet(m.id, e);
    return true;
  });
  RETURN_IF_ERROR(st);
  if (options_.byte_budget > 0 && options_.byte_budget != budget_) {
    budget_ = options_.byte_budget;
    std::string b(8, '\0');
    std::memcpy(b.data(), &budget_, 8);
    RETURN_IF_ERROR(FromRocks(db_->Put(WriteOpts(), sys_, kSysBudgetKey, b), path_));
  }
  return Status::OK();
}

BlockStoreImpl::~BlockStoreImpl() {
  if (compactor_.joinable()) {
    {
      std::lock_guard<std::mutex> l(compact_mu_);
      stopping_ = true;
    }
    compact_cv_.notify_all();
    compactor_.join();
  }
  if (db_ != nullptr && options_.mode == OpenMode::kReadWrite) (void)Flush();
  CloseDB();
}

rocksdb::WriteOptions BlockStoreImpl::WriteOpts() const {
  rocksdb::WriteOptions w;
  w.sync = options_.sync_writes;
  return w;
}

Status BlockStoreImpl::RequireWriter(const char* op) const {
  if (options_.mode == OpenMode::kReadWrite) return Status::OK();
  return Status::NotSupported(std::string(op) + ": store " + path_ + " is open read-only");
}

StatusOr<Counters> BlockStoreImpl::ReadCounters() {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), sys_, kSysCountersKey, &v);
  if (rs.IsNotFound()) return Counters();
  RETURN_IF_ERROR(FromRocks(rs, path_ + ": reading counters"));
  Counters c;
  if (!Counters::Decode(v, &c)) return Status::Corruption(path_ + ": counters record is malformed");
  return c;
}

// ---- writes -------------------------------------------------------------------------------------

StatusOr<BlockId> BlockStoreImpl::Put(const BlockToPut& b) {
  RETURN_IF_ERROR(RequireWriter("put"));
  if (b.tokens.empty()) return Status::InvalidArgument("put: block has no tokens");
  if (b.num_layers == 0 || b.num_layers > 65535)
    return Status::InvalidArgument("put: num_layers must be in 1..65535");
  if (b.kv_heads == 0 || b.head_dim == 0)
    return Status::InvalidArgument("put: kv_heads and head_dim must be positive");
  if (b.k.size() != b.num_layers || b.v.size() != b.num_layers)
    return Status::InvalidArgument("put: expected " + std::to_string(b.num_layers) +
                                   " K and V tensors, got " + std::to_string(b.k.size()) + " and " +
                                   std::to_string(b.v.size()));
  for (uint32_t l = 0; l < b.num_layers; ++l)
    if (b.k[l] == nullptr || b.v[l] == nullptr)
      return Status::InvalidArgument("put: layer " + std::to_string(l) + " has no data");
  if (b.tokens.size() > UINT32_MAX) return Status::InvalidArgument("put: too many tokens");

  BlockMeta m;
  m.id = ComputeBlockId(b.model, b.tokens);
  m.model = b.model;
  m.tokens = b.tokens;
  m.num_layers = b.num_layers;
  m.kv_heads = b.kv_heads;
  m.head_dim = b.head_dim;
  m.dtype = b.dtype;
  m.codec = options_.codec;
  m.name = b.name;
  m.pinned = b.pinned;
  const uint64_t tbytes = m.tensor_bytes();

  bool present;
  {
    std::lock_guard<std::mutex> l(index_mu_);
    present = index_.count(m.id) > 0;
  }
  std::vector<std::string> values;
  if (!present) {
    // Encode every layer in parallel, before taking the write lock.
    values.resize(b.num_layers);
    std::vector<Status> errs(b.num_layers);
    const uint32_t dims[4] = {2, m.num_tokens(), m.kv_heads, m.head_dim};
    EncodeOptions eo{options_.codec, options_.zstd_level};
    pool_->ParallelFor(b.num_layers, [&](size_t l) {
      ConstPiece pieces[2] = {{b.k[l], tbytes}, {b.v[l], tbytes}};
      errs[l] = EncodeTensor(pieces, b.dtype, dims, eo, &values[l]);
    });
    for (auto& e : errs) RETURN_IF_ERROR(e.WithContext("put " + IdText(m.id)));
    m.raw_bytes = 2 * tbytes * b.num_layers;
    for (const auto& v : values) m.stored_bytes += v.size();
  }

  std::lock_guard<std::mutex> wl(write_mu_);
  {
    std::lock_guard<std::mutex> l(index_mu_);
    present = index_.count(m.id) > 0;
  }
  rocksdb::WriteBatch batch;
  Counters c = counters_;
  if (present) {
    // Already stored: only the name and the pin can change.
    ASSIGN_OR_RETURN(BlockMeta old, GetMeta(m.id));
    bool changed = false;
    if (!b.name.empty() && b.name != old.name) {
      RETURN_IF_ERROR(AddNameMove(b.name, m.id, &batch, &c));
      if (!old.name.empty()) batch.Delete(names_, old.name);
      else ++c.named;
      old.name = b.name;
      changed = true;
    }
    if (b.pinned && !old.pinned) {
      old.pinned = true;
      ++c.pinned;
      changed = true;
    }
    if (changed) {
      batch.Put(meta_, old.id.AsBytes(), EncodeMeta(old));
      batch.Put(sys_, kSysCountersKey, c.Encode());
      RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), "put " + IdText(m.id)));
      std::lock_guard<std::mutex> l(index_mu_);
      counters_ = c;
      auto it = index_.find(m.id);
      if (it != index_.end()) {
        it->second.named = !old.name.empty();
        it->second.pinned = old.pinned;
      }
    }
    Touch(m.id);
    return m.id;
  }

  // Make room within the budget: the evictions and the new block go in one atomic batch.
  std::vector<BlockId> victims;
  uint64_t freed = 0;
  if (budget_ > 0 && c.stored_bytes + m.stored_bytes > budget_) {
    if (m.stored_bytes > budget_)
      return Status::ResourceExhausted("put " + IdText(m.id) + ": the block alone (" +
                                       std::to_string(m.stored_bytes) +
                                       " bytes) exceeds the byte budget (" +
                                       std::to_string(budget_) + ")");
    const uint64_t need = c.stored_bytes + m.stored_bytes - budget_;
    if (!PlanEviction(need, &m.id, &victims, &freed))
      return Status::ResourceExhausted("put " + IdText(m.id) +
                                       ": not enough unpinned blocks to evict to stay within the "
                                       "byte budget of " + std::to_string(budget_) + " bytes");
    for (const BlockId& vid : victims) {
      ASSIGN_OR_RETURN(BlockMeta vm, GetMeta(vid));
      AddDelete(vm, &batch, &c);
    }
  }
  m.created_micros = NowMicros();
  if (!m.name.empty()) {
    RETURN_IF_ERROR(AddNameMove(m.name, m.id, &batch, &c, victims));
    ++c.named;
  }
  batch.Put(meta_, m.id.AsBytes(), EncodeMeta(m));
  for (uint32_t l = 0; l < m.num_layers; ++l) batch.Put(kv_, KvKey(m.id, l), values[l]);
  c.blocks += 1;
  c.pinned += m.pinned ? 1 : 0;
  c.tokens += m.num_tokens();
  c.raw_bytes += m.raw_bytes;
  c.stored_bytes += m.stored_bytes;
  batch.Put(sys_, kSysCountersKey, c.Encode());
  RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), "put " + IdText(m.id)));
  {
    std::lock_guard<std::mutex> l(index_mu_);
    counters_ = c;
    for (const BlockId& vid : victims) {
      IndexErase(vid);
      dirty_access_.erase(vid);
    }
    IndexEntry e;
    e.stored_bytes = m.stored_bytes;
    e.raw_bytes = m.raw_bytes;
    e.tokens = m.num_tokens();
    e.num_layers = m.num_layers;
    e.pinned = m.pinned;
    e.named = !m.name.empty();
    e.last_access = m.created_micros;
    IndexSet(m.id, e);
  }
  evictions_ += victims.size();
  if (!victims.empty()) MaybeScheduleCompaction(freed);
  Touch(m.id);
  return m.id;
}

Status BlockStoreImpl::AddNameMove(const std::string& name, const BlockId& id,
                                   rocksdb::WriteBatch* batch, Counters* c,
                                   const std::vector<BlockId>& deleted) {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), names_, name, &v);
  if (rs.ok() && v.size() == 16) {
    BlockId holder(Hash128::FromBytes(v));
    if (holder != id && std::find(deleted.begin(), deleted.end(), holder) == deleted.end()) {
      auto hm = GetMeta(holder);
      if (hm.ok()) {
        hm->name.clear();
        batch->Put(meta_, holder.AsBytes(), EncodeMeta(*hm));
        --c->named;
        std::lock_guard<std::mutex> l(index_mu_);
        auto it = index_.find(holder);
        if (it != index_.end()) it->second.named = false;
      }
    }
  } else if (!rs.ok() && !rs.IsNotFound()) {
    return FromRocks(rs, "name '" + name + "'");
  }
  batch->Put(names_, name, id.AsBytes());
  return Status::OK();
}

void BlockStoreImpl::AddDelete(const BlockMeta& m, rocksdb::WriteBatch* batch, Counters* c) {
  batch->Delete(meta_, m.id.AsBytes());
  for (uint32_t l = 0; l < m.num_layers; ++l) batch->Delete(kv_, KvKey(m.id, l));
  if (!m.name.empty()) {
    std::string v;
    if (db_->Get(rocksdb::ReadOptions(), names_, m.name, &v).ok() && v == m.id.AsBytes())
      batch->Delete(names_, m.name);
    c->named -= 1;
  }
  batch->Delete(sys_, AccessKey(m.id));
  c->blocks -= 1;
  c->pinned -= m.pinned ? 1 : 0;
  c->tokens -= m.num_tokens();
  c->raw_bytes -= m.raw_bytes;
  c->stored_bytes -= m.stored_bytes;
}

Status BlockStoreImpl::Delete(const BlockId& id) {
  RETURN_IF_ERROR(RequireWriter("delete"));
  std::lock_guard<std::mutex> wl(write_mu_);
  ASSIGN_OR_RETURN(BlockMeta m, GetMeta(id));
  rocksdb::WriteBatch batch;
  Counters c = counters_;
  AddDelete(m, &batch, &c);
  batch.Put(sys_, kSysCountersKey, c.Encode());
  RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), "delete " + IdText(id)));
  std::lock_guard<std::mutex> l(index_mu_);
  counters_ = c;
  IndexErase(id);
  dirty_access_.erase(id);
  return Status::OK();
}

Status BlockStoreImpl::SetPinned(const BlockId& id, bool pinned) {
  RETURN_IF_ERROR(RequireWriter(pinned ? "pin" : "unpin"));
  std::lock_guard<std::mutex> wl(write_mu_);
  ASSIGN_OR_RETURN(BlockMeta m, GetMeta(id));
  if (m.pinned == pinned) return Status::OK();
  m.pinned = pinned;
  Counters c = counters_;
  c.pinned += pinned ? 1 : -1;
  rocksdb::WriteBatch batch;
  batch.Put(meta_, id.AsBytes(), EncodeMeta(m));
  batch.Put(sys_, kSysCountersKey, c.Encode());
  RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), IdText(id)));
  std::lock_guard<std::mutex> l(index_mu_);
  counters_ = c;
  if (auto it = index_.find(id); it != index_.end()) it->second.pinned = pinned;
  return Status::OK();
}

Status BlockStoreImpl::SetName(const BlockId& id, const std::string& name) {
  RETURN_IF_ERROR(RequireWriter("set name"));
  if (name.empty()) return Status::InvalidArgument("set name: the name is empty");
  std::lock_guard<std::mutex> wl(write_mu_);
  ASSIGN_OR_RETURN(BlockMeta m, GetMeta(id));
  if (m.name == name) return Status::OK();
  rocksdb::WriteBatch batch;
  Counters c = counters_;
  RETURN_IF_ERROR(AddNameMove(name, id, &batch, &c));
  if (!m.name.empty()) batch.Delete(names_, m.name);
  else ++c.named;
  m.name = name;
  batch.Put(meta_, id.AsBytes(), EncodeMeta(m));
  batch.Put(sys_, kSysCountersKey, c.Encode());
  RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), IdText(id)));
  std::lock_guard<std::mutex> l(index_mu_);
  counters_ = c;
  if (auto it = index_.find(id); it != index_.end()) it->second.named = true;
  return Status::OK();
}

Status BlockStoreImpl::Pin(const BlockId& id) { return SetPinned(id, true); }
Status BlockStoreImpl::Unpin(const BlockId& id) { return SetPinned(id, false); }

// ---- eviction -----------------------------------------------------------------------------------

bool BlockStoreImpl::PlanEviction(uint64_t need, const BlockId* keep,
                                  std::vector<BlockId>* victims, uint64_t* freed) {
  *freed = 0;
  victims->clear();
  std::lock_guard<std::mutex> l(index_mu_);
  for (const auto& [t, id] : recency_) {
    if (*freed >= need) break;
    const IndexEntry& e = index_.at(id);
    if (e.pinned || (keep != nullptr && id == *keep)) continue;
    victims->push_back(id);
    *freed += e.stored_bytes;
  }
  return *freed >= need;
}

void BlockStoreImpl::IndexSet(const BlockId& id, const IndexEntry& e) {
  auto [it, inserted] = index_.try_emplace(id, e);
  if (!inserted) {
    recency_.erase({it->second.last_access, id});
    it->second = e;
  }
  recency_.emplace(e.last_access, id);
}

void BlockStoreImpl::IndexErase(const BlockId& id) {
  auto it = index_.find(id);
  if (it == index_.end()) return;
  recency_.erase({it->second.last_access, id});
  index_.erase(it);
}

StatusOr<EvictResult> BlockStoreImpl::EvictLocked(uint64_t target) {
  EvictResult r;
  if (counters_.stored_bytes <= target) return r;
  std::vector<BlockId> victims;
  uint64_t freed = 0;
  // Evict what can be evicted even if pinned blocks alone exceed the target.
  (void)PlanEviction(counters_.stored_bytes - target, nullptr, &victims, &freed);
  // One batch per 64 blocks keeps batches bounded; each block is still atomic.
  for (size_t i = 0; i < victims.size(); i += 64) {
    rocksdb::WriteBatch batch;
    Counters c = counters_;
    std::vector<BlockId> done;
    for (size_t j = i; j < std::min(victims.size(), i + 64); ++j) {
      auto m = GetMeta(victims[j]);
      if (!m.ok()) continue;
      AddDelete(*m, &batch, &c);
      done.push_back(victims[j]);
      r.bytes_freed += m->stored_bytes;
    }
    batch.Put(sys_, kSysCountersKey, c.Encode());
    RETURN_IF_ERROR(FromRocks(db_->Write(WriteOpts(), &batch), "evict"));
    std::lock_guard<std::mutex> l(index_mu_);
    counters_ = c;
    for (const BlockId& id : done) {
      IndexErase(id);
      dirty_access_.erase(id);
    }
    r.blocks_evicted += done.size();
  }
  evictions_ += r.blocks_evicted;
  return r;
}

StatusOr<EvictResult> BlockStoreImpl::EvictTo(uint64_t target) {
  RETURN_IF_ERROR(RequireWriter("evict"));
  std::lock_guard<std::mutex> wl(write_mu_);
  return EvictLocked(target);
}

StatusOr<EvictResult> BlockStoreImpl::SetBudget(uint64_t bytes) {
  RETURN_IF_ERROR(RequireWriter("set budget"));
  std::lock_guard<std::mutex> wl(write_mu_);
  std::string b(8, '\0');
  std::memcpy(b.data(), &bytes, 8);
  RETURN_IF_ERROR(FromRocks(db_->Put(WriteOpts(), sys_, kSysBudgetKey, b), "set budget"));
  budget_ = bytes;
  if (bytes == 0) return EvictResult();
  return EvictLocked(bytes);
}

void BlockStoreImpl::Touch(const BlockId& id) {
  if (options_.mode != OpenMode::kReadWrite) return;
  // Strictly increasing, so blocks read in one query keep their order.
  uint64_t now = NowMicros();
  uint64_t prev = access_clock_.load();
  uint64_t t;
  do {
    t = std::max(now, prev + 1);
  } while (!access_clock_.compare_exchange_weak(prev, t));
  std::lock_guard<std::mutex> l(index_mu_);
  auto it = index_.find(id);
  if (it == index_.end()) return;
  recency_.erase({it->second.last_access, id});
  it->second.last_access = t;
  recency_.emplace(t, id);
  dirty_access_.insert(id);
}

Status BlockStoreImpl::Flush() {
  if (options_.mode != OpenMode::kReadWrite) return Status::OK();
  rocksdb::WriteBatch batch;
  {
    std::lock_guard<std::mutex> l(index_mu_);
    for (const BlockId& id : dirty_access_) {
      auto it = index_.find(id);
      if (it == index_.end()) continue;
      std::string v(8, '\0');
      std::memcpy(v.data(), &it->second.last_access, 8);
      batch.Put(sys_, AccessKey(id), v);
    }
    dirty_access_.clear();
  }
  if (batch.Count() == 0) return Status::OK();
  // Recency is advisory: no sync, a crash loses at most the latest access times.
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &batch), "flush recency");
}

void BlockStoreImpl::MaybeScheduleCompaction(uint64_t freed) {
  std::lock_guard<std::mutex> l(compact_mu_);
  freed_since_compaction_ += freed;
  const uint64_t threshold = std::max<uint64_t>(64ull << 20, budget_ / 4);
  if (freed_since_compaction_ >= threshold) {
    compact_requested_ = true;
    compact_cv_.notify_all();
  }
}

void BlockStoreImpl::CompactionLoop() {
  std::unique_lock<std::mutex> l(compact_mu_);
  for (;;) {
    compact_cv_.wait(l, [this] { return stopping_ || compact_requested_; });
    if (stopping_) return;
    compact_requested_ = false;
    freed_since_compaction_ = 0;
    l.unlock();
    (void)Compact();
    (void)Flush();
    l.lock();
  }
}

// ---- reads --------------------------------------------------------------------------------------

StatusOr<BlockMeta> BlockStoreImpl::GetMeta(const BlockId& id) {
  rocksdb::PinnableSlice v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), meta_, id.AsBytes(), &v);
  if (rs.IsNotFound()) return Status::NotFound(IdText(id) + " is not in the store");
  RETURN_IF_ERROR(FromRocks(rs, IdText(id)));
  ASSIGN_OR_RETURN(BlockMeta m, DecodeMeta(id, std::string_view(v.data(), v.size())));
  FillLastAccess(&m);
  return m;
}

void BlockStoreImpl::FillLastAccess(BlockMeta* m) {
  if (options_.mode == OpenMode::kReadWrite) {
    std::lock_guard<std::mutex> l(index_mu_);
    auto e = index_.find(m->id);
    if (e != index_.end()) {
      m->last_access_micros = e->second.last_access;
      return;
    }
  }
  std::string a;
  if (db_->Get(rocksdb::ReadOptions(), sys_, AccessKey(m->id), &a).ok() && a.size() == 8)
    std::memcpy(&m->last_access_micros, a.data(), 8);
  else
    m->last_access_micros = m->created_micros;
}

StatusOr<bool> BlockStoreImpl::Contains(const BlockId& id) {
  if (options_.mode == OpenMode::kReadWrite) {
    std::lock_guard<std::mutex> l(index_mu_);
    return index_.count(id) > 0;
  }
  rocksdb::PinnableSlice v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), meta_, id.AsBytes(), &v);
  if (rs.IsNotFound()) return false;
  RETURN_IF_ERROR(FromRocks(rs, IdText(id)));
  return true;
}

Status BlockStoreImpl::GetLayer(const BlockId& id, uint32_t layer, void* k_out, void* v_out,
                                uint64_t tensor_bytes) {
  // RocksDB's own read-path CRC32c of the blob is skipped: every value carries a header checksum and
  // XXH3-64 of its decoded bytes, verified by DecodeTensor below, so damaged data is still never used;
  // Debian's librocksdb computes that CRC32c with a table-driven software loop, a large part of a read.
  // `blockkv verify` still checks RocksDB's block and whole-file checksums.
  rocksdb::ReadOptions ro;
  ro.verify_checksums = false;
  rocksdb::PinnableSlice v;
  rocksdb::Status rs = db_->Get(ro, kv_, KvKey(id, layer), &v);
  const std::string what = IdText(id) + " layer " + std::to_string(layer);
  if (rs.IsNotFound()) return Status::NotFound(what + " is not in the store");
  if (rs.IsIOError() && options_.mode != OpenMode::kReadWrite &&
      rs.ToString().find("No such file") != std::string::npos)
    return Status::Busy(what + ": the writer compacted the store under this read-only view; catch up "
                               "(TryCatchUp) or reopen, and retry");
  RETURN_IF_ERROR(FromRocks(rs, what));
  std::string_view value(v.data(), v.size());
  ASSIGN_OR_RETURN(TensorHeader h, ParseTensorHeader(value));
  if (h.dims[0] != 2 || h.raw_bytes() != 2 * tensor_bytes)
    return Status::InvalidArgument(what + ": holds " + std::to_string(h.raw_bytes() / 2) +
                                   " bytes per tensor, the caller expects " +
                                   std::to_string(tensor_bytes));
  MutablePiece pieces[2] = {{k_out, tensor_bytes}, {v_out, tensor_bytes}};
  RETURN_IF_ERROR(DecodeTensor(value, pieces).WithContext(what));
  if (layer == 0) Touch(id);
  return Status::OK();
}

Status BlockStoreImpl::GetLayers(std::span<const LayerRequest> requests) {
  std::vector<Status> errs(requests.size());
  pool_->ParallelFor(requests.size(), [&](size_t i) {
    const LayerRequest& r = requests[i];
    errs[i] = GetLayer(r.id, r.layer, r.k_out, r.v_out, r.tensor_bytes);
  });
  for (auto& e : errs) RETURN_IF_ERROR(e);
  return Status::OK();
}

Status BlockStoreImpl::List(const ListOptions& options,
                            const std::function<bool(const BlockMeta&)>& fn) {
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (it->key().size() != 16)
      return Status::Corruption(path_ + ": malformed key in the meta column family");
    BlockId id(Hash128::FromBytes(std::string_view(it->key().data(), 16)));
    ASSIGN_OR_RETURN(BlockMeta m, DecodeMeta(id, std::string_view(it->value().data(),
                                                                  it->value().size())));
    if (options.model && m.model != *options.model) continue;
    if (options.pinned_only && !m.pinned) continue;
    FillLastAccess(&m);
    if (!fn(m)) break;
  }
  return FromRocks(it->status(), path_ + ": listing blocks");
}

StatusOr<BlockId> BlockStoreImpl::ResolveName(const std::string& name) {
  std::string v;
  rocksdb::Status rs = db_->Get(rocksdb::ReadOptions(), names_, name, &v);
  if (rs.IsNotFound()) return Status::NotFound("no block named '" + name + "'");
  RETURN_IF_ERROR(FromRocks(rs, "name '" + name + "'"));
  if (v.size() != 16) return Status::Corruption("name '" + name + "' maps to a malformed id");
  return BlockId(Hash128::FromBytes(v));
}

Status BlockStoreImpl::TryCatchUp() {
  if (options_.mode != OpenMode::kSecondary) return Status::OK();
  return OpenAndLoad();
}

}  // namespace blockkv
