// The one adapter from rocksdb::Status to blockkv::Status.
#pragma once

#include <rocksdb/status.h>

#include <string>

#include "db/status.h"

namespace blockkv {

// Converts `s`, putting `context` (what was being done, naming the thing) in front of the message.
inline Status FromRocks(const rocksdb::Status& s, const std::string& context) {
  if (s.ok()) return Status::OK();
  std::string msg = context + ": " + s.ToString();
  if (s.IsNotFound()) return Status::NotFound(msg);
  if (s.IsCorruption()) return Status::Corruption(msg);
  if (s.IsInvalidArgument()) return Status::InvalidArgument(msg);
  if (s.IsNotSupported()) return Status::NotSupported(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return Status::Busy(msg);
  if (s.IsIOError()) {
    // RocksDB reports a store locked by another process as an IOError on the LOCK file.
    if (s.ToString().find("lock") != std::string::npos &&
        (s.ToString().find("Resource temporarily unavailable") != std::string::npos ||
         s.ToString().find("No locks available") != std::string::npos))
      return Status::Busy(context + ": the store is open for writing by another process");
    return Status::IOError(msg);
  }
  return Status::Internal(msg);
}

}  // namespace blockkv
