// BlockStoreImpl: statistics, compaction with blob garbage collection, and verification.
#include <rocksdb/db.h>

#include <algorithm>

#include "db/block_store_impl.h"
#include "db/rocksdb_util.h"

namespace blockkv {

StatusOr<StoreStats> BlockStoreImpl::GetStats() {
  StoreStats s;
  Counters c;
  if (options_.mode == OpenMode::kReadWrite) {
    std::lock_guard<std::mutex> l(index_mu_);
    c = counters_;
  } else {
    ASSIGN_OR_RETURN(c, ReadCounters());
  }
  s.blocks = c.blocks;
  s.pinned_blocks = c.pinned;
  s.named_blocks = c.named;
  s.tokens = c.tokens;
  s.raw_bytes = c.raw_bytes;
  s.stored_bytes = c.stored_bytes;
  s.byte_budget = budget_;
  s.evictions = evictions_.load();
  uint64_t v = 0;
  if (db_->GetIntProperty(kv_, rocksdb::DB::Properties::kLiveBlobFileSize, &v)) s.live_blob_file_bytes = v;
  if (db_->GetIntProperty(kv_, rocksdb::DB::Properties::kTotalBlobFileSize, &v))
    s.total_blob_file_bytes = v;
  for (auto* h : handles_) {
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kTotalSstFilesSize, &v)) s.sst_file_bytes += v;
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kCurSizeAllMemTables, &v))
      s.memtable_bytes += v;
  }
  return s;
}

Status BlockStoreImpl::Compact() {
  RETURN_IF_ERROR(RequireWriter("compact"));
  rocksdb::CompactRangeOptions o;
  o.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  o.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
  o.blob_garbage_collection_age_cutoff = 1.0;
  for (auto* h : handles_)
    RETURN_IF_ERROR(FromRocks(db_->CompactRange(o, h, nullptr, nullptr),
                              "compacting " + h->GetName()));
  return Status::OK();
}

StatusOr<VerifyReport> BlockStoreImpl::Verify(
    const std::function<void(uint64_t, uint64_t)>& progress) {
  VerifyReport report;
  // Collect the ids first (from the meta column family; a block whose metadata is unreadable is
  // reported as bad and its layers cannot be located).
  std::vector<BlockId> ids;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key().size() != 16) {
        report.file_problems.push_back("malformed key in the meta column family");
        continue;
      }
      ids.push_back(BlockId(Hash128::FromBytes(std::string_view(it->key().data(), 16))));
    }
    if (!it->status().ok())
      report.file_problems.push_back(FromRocks(it->status(), "listing blocks").ToString());
  }
  Counters sum;
  std::vector<std::string> scratch(pool_->size() + 1);
  for (size_t bi = 0; bi < ids.size(); ++bi) {
    const BlockId& id = ids[bi];
    auto m = GetMeta(id);
    ++report.blocks_checked;
    if (!m.ok()) {
      report.bad_blocks.emplace_back(id, m.status().ToString());
      continue;
    }
    if (ComputeBlockId(m->model, m->tokens) != id) {
      report.bad_blocks.emplace_back(id, "metadata does not hash to the block id");
      continue;
    }
    sum.blocks += 1;
    sum.pinned += m->pinned;
    sum.named += !m->name.empty();
    sum.tokens += m->num_tokens();
    sum.raw_bytes += m->raw_bytes;
    sum.stored_bytes += m->stored_bytes;
    const uint64_t tb = m->tensor_bytes();
    std::vector<Status> errs(m->num_layers);
    std::vector<uint64_t> sizes(m->num_layers);
    pool_->ParallelFor(m->num_layers, [&](size_t l) {
      thread_local std::string buf;
      buf.resize(2 * tb);
      rocksdb::PinnableSlice v;
      rocksdb::ReadOptions ro;
      ro.fill_cache = false;
      const std::string what = "layer " + std::to_string(l);
      rocksdb::Status rs = db_->Get(ro, kv_, KvKey(id, static_cast<uint32_t>(l)), &v);
      if (!rs.ok()) {
        errs[l] = rs.IsNotFound() ? Status::NotFound(what + " is missing") : FromRocks(rs, what);
        return;
      }
      sizes[l] = v.size();
      std::string_view value(v.data(), v.size());
      auto h = ParseTensorHeader(value);
      if (!h.ok()) {
        errs[l] = h.status().WithContext(what);
        return;
      }
      if (h->dims[0] != 2 || h->dims[1] != m->num_tokens() || h->dims[2] != m->kv_heads ||
          h->dims[3] != m->head_dim || h->dtype != m->dtype) {
        errs[l] = Status::Corruption(what + ": tensor shape disagrees with the block's metadata");
        return;
      }
      MutablePiece piece{buf.data(), buf.size()};
      errs[l] = DecodeTensor(value, {&piece, 1}).WithContext(what);
    });
    uint64_t stored = 0;
    for (uint32_t l = 0; l < m->num_layers; ++l) {
      stored += sizes[l];
      if (!errs[l].ok()) {
        report.bad_blocks.emplace_back(id, errs[l].ToString());
        break;
      }
    }
    report.values_checked += m->num_layers;
    report.bytes_checked += stored;
    if (stored != m->stored_bytes && (report.bad_blocks.empty() || report.bad_blocks.back().first != id))
      report.bad_blocks.emplace_back(id, "stored size disagrees with the block's metadata");
    if (progress) progress(bi + 1, ids.size());
  }
  // Names must point at blocks that exist.
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), names_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string name = it->key().ToString();
      if (it->value().size() != 16) {
        report.file_problems.push_back("name '" + name + "' maps to a malformed id");
        continue;
      }
      BlockId id(Hash128::FromBytes(std::string_view(it->value().data(), 16)));
      if (!std::binary_search(ids.begin(), ids.end(), id))
        report.file_problems.push_back("name '" + name + "' points to missing block " + id.ToHex());
    }
  }
  auto stored_counters = ReadCounters();
  if (!stored_counters.ok()) {
    report.file_problems.push_back(stored_counters.status().ToString());
  } else if (report.bad_blocks.empty() &&
             (stored_counters->blocks != sum.blocks || stored_counters->raw_bytes != sum.raw_bytes ||
              stored_counters->stored_bytes != sum.stored_bytes ||
              stored_counters->tokens != sum.tokens || stored_counters->pinned != sum.pinned ||
              stored_counters->named != sum.named)) {
    report.file_problems.push_back("store counters disagree with the blocks present (" +
                                   std::to_string(stored_counters->blocks) + " blocks counted, " +
                                   std::to_string(sum.blocks) + " found)");
  }
  rocksdb::Status rs = db_->VerifyChecksum();
  if (!rs.ok()) report.file_problems.push_back("SST block checksums: " + rs.ToString());
  rs = db_->VerifyFileChecksums(rocksdb::ReadOptions());
  if (!rs.ok()) report.file_problems.push_back("file checksums: " + rs.ToString());
  return report;
}

}  // namespace blockkv
