#include "tests/fault_fs.h"

#include <unistd.h>

#include <filesystem>

namespace blockkv::testing {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

namespace {

class WritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  WritableFile(std::unique_ptr<rocksdb::FSWritableFile>&& f, std::string name, FaultInjectionFS* fs)
      : FSWritableFileOwnerWrapper(std::move(f)), name_(std::move(name)), fs_(fs) {}
  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* d) override {
    if (fs_->fail_writes_) return fs_->Fault("write");
    IOStatus s = target()->Append(data, o, d);
    if (s.ok()) fs_->OnAppend(name_, data.size());
    return s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o, const rocksdb::DataVerificationInfo& v,
                  IODebugContext* d) override {
    if (fs_->fail_writes_) return fs_->Fault("write");
    IOStatus s = target()->Append(data, o, v, d);
    if (s.ok()) fs_->OnAppend(name_, data.size());
    return s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* d) override {
    if (fs_->fail_writes_) return fs_->Fault("write");
    IOStatus s = target()->PositionedAppend(data, offset, o, d);
    if (s.ok()) fs_->OnAppend(name_, data.size());
    return s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->fail_syncs_) return fs_->Fault("sync");
    IOStatus s = target()->Sync(o, d);
    if (s.ok()) fs_->OnSync(name_);
    return s;
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* d) override {
    if (fs_->fail_syncs_) return fs_->Fault("sync");
    IOStatus s = target()->Fsync(o, d);
    if (s.ok()) fs_->OnSync(name_);
    return s;
  }
  IOStatus Close(const IOOptions& o, IODebugContext* d) override {
    // Closing flushes RocksDB's buffer through Append first; it does not make data durable.
    return target()->Close(o, d);
  }

 private:
  std::string name_;
  FaultInjectionFS* fs_;
};

class RandomAccessFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  RandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile>&& f, FaultInjectionFS* fs)
      : FSRandomAccessFileOwnerWrapper(std::move(f)), fs_(fs) {}
  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result, char* scratch,
                IODebugContext* d) const override {
    if (fs_->fail_reads_) return fs_->Fault("read");
    return target()->Read(offset, n, o, result, scratch, d);
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t n, const IOOptions& o,
                     IODebugContext* d) override {
    if (fs_->fail_reads_) return fs_->Fault("read");
    return target()->MultiRead(reqs, n, o, d);
  }

 private:
  FaultInjectionFS* fs_;
};

class SequentialFile : public rocksdb::FSSequentialFileOwnerWrapper {
 public:
  SequentialFile(std::unique_ptr<rocksdb::FSSequentialFile>&& f, FaultInjectionFS* fs)
      : FSSequentialFileOwnerWrapper(std::move(f)), fs_(fs) {}
  IOStatus Read(size_t n, const IOOptions& o, Slice* result, char* scratch, IODebugContext* d) override {
    if (fs_->fail_reads_) return fs_->Fault("read");
    return target()->Read(n, o, result, scratch, d);
  }

 private:
  FaultInjectionFS* fs_;
};

}  // namespace

FaultInjectionFS::FaultInjectionFS(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

IOStatus FaultInjectionFS::Fault(const char* what) {
  ++injected_;
  return IOStatus::IOError(std::string("injected ") + what + " failure");
}

void FaultInjectionFS::OnAppend(const std::string& f, uint64_t n) {
  std::lock_guard<std::mutex> l(mu_);
  files_[f].written += n;
}

void FaultInjectionFS::OnSync(const std::string& f) {
  std::lock_guard<std::mutex> l(mu_);
  auto& st = files_[f];
  st.synced = st.written;
  st.ever_synced = true;
}

IOStatus FaultInjectionFS::NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                           std::unique_ptr<rocksdb::FSWritableFile>* r, IODebugContext* d) {
  if (fail_writes_) return Fault("create");
  std::unique_ptr<rocksdb::FSWritableFile> base;
  IOStatus s = target()->NewWritableFile(f, o, &base, d);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> l(mu_);
    files_[f] = FileState();
  }
  r->reset(new WritableFile(std::move(base), f, this));
  return s;
}

IOStatus FaultInjectionFS::ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                                              IODebugContext* d) {
  if (fail_writes_) return Fault("reopen");
  std::unique_ptr<rocksdb::FSWritableFile> base;
  IOStatus s = target()->ReopenWritableFile(f, o, &base, d);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> l(mu_);
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(f, ec);
    auto it = files_.find(f);
    if (it == files_.end()) files_[f] = FileState{ec ? 0 : size, ec ? 0 : size, true};
  }
  r->reset(new WritableFile(std::move(base), f, this));
  return s;
}

IOStatus FaultInjectionFS::NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                                               std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                                               IODebugContext* d) {
  if (fail_reads_) return Fault("open");
  std::unique_ptr<rocksdb::FSRandomAccessFile> base;
  IOStatus s = target()->NewRandomAccessFile(f, o, &base, d);
  if (s.ok()) r->reset(new RandomAccessFile(std::move(base), this));
  return s;
}

IOStatus FaultInjectionFS::NewSequentialFile(const std::string& f, const rocksdb::FileOptions& o,
                                             std::unique_ptr<rocksdb::FSSequentialFile>* r,
                                             IODebugContext* d) {
  if (fail_reads_) return Fault("open");
  std::unique_ptr<rocksdb::FSSequentialFile> base;
  IOStatus s = target()->NewSequentialFile(f, o, &base, d);
  if (s.ok()) r->reset(new SequentialFile(std::move(base), this));
  return s;
}

IOStatus FaultInjectionFS::RenameFile(const std::string& src, const std::string& dst, const IOOptions& o,
                                      IODebugContext* d) {
  if (fail_writes_) return Fault("rename");
  IOStatus s = target()->RenameFile(src, dst, o, d);
  if (s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    auto it = files_.find(src);
    if (it != files_.end()) {
      files_[dst] = it->second;
      files_.erase(it);
    }
  }
  return s;
}

IOStatus FaultInjectionFS::DeleteFile(const std::string& f, const IOOptions& o, IODebugContext* d) {
  if (fail_writes_) return Fault("delete");
  IOStatus s = target()->DeleteFile(f, o, d);
  if (s.ok()) {
    std::lock_guard<std::mutex> l(mu_);
    files_.erase(f);
  }
  return s;
}

int FaultInjectionFS::DropUnsyncedData() {
  std::lock_guard<std::mutex> l(mu_);
  int changed = 0;
  for (auto it = files_.begin(); it != files_.end();) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(it->first, ec);
    if (ec) {
      it = files_.erase(it);
      continue;
    }
    if (!it->second.ever_synced) {
      std::filesystem::remove(it->first, ec);
      ++changed;
      it = files_.erase(it);
      continue;
    }
    if (size > it->second.synced) {
      if (truncate(it->first.c_str(), static_cast<off_t>(it->second.synced)) == 0) ++changed;
    }
    it->second.written = it->second.synced;
    ++it;
  }
  return changed;
}

}  // namespace blockkv::testing
