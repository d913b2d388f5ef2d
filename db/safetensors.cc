#include "db/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

namespace blockkv {

namespace {
// A header larger than this is not a real safetensors file (the format's own limit is 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

std::string ErrnoText() { return std::strerror(errno); }
}  // namespace

SafetensorsReader::~SafetensorsReader() {
  if (map_ != nullptr) munmap(map_, map_size_);
}

StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::Open(const std::string& path) {
  std::unique_ptr<SafetensorsReader> r(new SafetensorsReader());
  r->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": cannot open: " + ErrnoText());
  struct stat st;
  if (fstat(fd, &st) != 0) {
    ::close(fd);
    return Status::IOError(path + ": cannot stat: " + ErrnoText());
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return Status::InvalidArgument(path + ": is a directory, not a safetensors file");
  }
  r->map_size_ = static_cast<size_t>(st.st_size);
  if (r->map_size_ > 0) {
    r->map_ = mmap(nullptr, r->map_size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (r->map_ == MAP_FAILED) {
      r->map_ = nullptr;
      ::close(fd);
      return Status::IOError(path + ": cannot map: " + ErrnoText());
    }
  }
  ::close(fd);
  r->base_ = static_cast<const uint8_t*>(r->map_);
  r->size_ = r->map_size_;
  RETURN_IF_ERROR(r->Parse());
  return r;
}

StatusOr<std::unique_ptr<SafetensorsReader>> SafetensorsReader::FromBuffer(std::string buffer,
                                                                           std::string label) {
  std::unique_ptr<SafetensorsReader> r(new SafetensorsReader());
  r->path_ = std::move(label);
  r->owned_ = std::move(buffer);
  r->base_ = reinterpret_cast<const uint8_t*>(r->owned_.data());
  r->size_ = r->owned_.size();
  RETURN_IF_ERROR(r->Parse());
  return r;
}

Status SafetensorsReader::Parse() {
  auto bad = [&](const std::string& what) {
    return Status::Corruption(path_ + ": not a valid safetensors file: " + what);
  };
  if (size_ < 8) return bad("shorter than its 8-byte header length (truncated?)");
  uint64_t n;
  std::memcpy(&n, base_, 8);
  if (n > kMaxHeaderBytes) return bad("header length " + std::to_string(n) + " is implausible");
  if (n > size_ - 8) return bad("header runs past the end of the file (truncated?)");
  const size_t data_start = 8 + n;
  const size_t data_size = size_ - data_start;
  nlohmann::json header = nlohmann::json::parse(base_ + 8, base_ + 8 + n, nullptr,
                                                /*allow_exceptions=*/false);
  if (header.is_discarded()) return bad("header is not valid JSON");
  if (!header.is_object()) return bad("header is not a JSON object");
  std::vector<std::pair<size_t, size_t>> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const nlohmann::json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) return bad("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return bad("__metadata__." + m.key() + " is not a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    if (!v.is_object()) return bad("entry '" + name + "' is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return bad("tensor '" + name + "' has no dtype");
    if (sh == v.end() || !sh->is_array()) return bad("tensor '" + name + "' has no shape");
    if (off == v.end() || !off->is_array() || off->size() != 2)
      return bad("tensor '" + name + "' has no data_offsets");
    TensorView t;
    t.name = name;
    t.dtype_name = dt->get<std::string>();
    size_t elem = 0;
    static const std::map<std::string, size_t> kSizes = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8},
        {"F8_E4M3", 1}, {"F8_E5M2", 1}};
    auto es = kSizes.find(t.dtype_name);
    if (es == kSizes.end()) return bad("tensor '" + name + "' has unknown dtype " + t.dtype_name);
    elem = es->second;
    if (t.dtype_name == "F32" || t.dtype_name == "F16" || t.dtype_name == "BF16")
      t.dtype = ParseDType(t.dtype_name);
    __int128 numel = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        return bad("tensor '" + name + "' has a bad shape");
      int64_t dim = d.get<int64_t>();
      t.shape.push_back(dim);
      numel *= dim;
      if (numel > (static_cast<__int128>(1) << 48)) return bad("tensor '" + name + "' is too large");
    }
    const auto& o0 = (*off)[0];
    const auto& o1 = (*off)[1];
    if (!o0.is_number_unsigned() || !o1.is_number_unsigned())
      return bad("tensor '" + name + "' has bad data_offsets");
    uint64_t begin = o0.get<uint64_t>(), end = o1.get<uint64_t>();
    if (begin > end || end > data_size)
      return bad("tensor '" + name + "' lies outside the file (truncated?)");
    if (static_cast<__int128>(end - begin) != numel * static_cast<__int128>(elem))
      return bad("tensor '" + name + "' has " + std::to_string(end - begin) +
                 " bytes, but its dtype and shape need " +
                 std::to_string(static_cast<int64_t>(numel * elem)));
    t.data = base_ + data_start + begin;
    t.nbytes = end - begin;
    if (t.nbytes > 0) ranges.emplace_back(begin, end);
    tensors_.emplace(name, std::move(t));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second) return bad("tensors overlap");
  return Status::OK();
}

StatusOr<const TensorView*> SafetensorsReader::Get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) return Status::NotFound(path_ + ": no tensor named '" + name + "'");
  return &it->second;
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    uint64_t nbytes = numel * DTypeSize(t.dtype);
    header[t.name] = {{"dtype", DTypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8 != 0) h.push_back(' ');
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(tmp + ": cannot create: " + ErrnoText());
  auto write_all = [&](const void* p, size_t n) -> bool {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = ::write(fd, c, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      c += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  uint64_t hl = h.size();
  bool ok = write_all(&hl, 8) && write_all(h.data(), h.size());
  for (const auto& t : tensors) {
    if (!ok) break;
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    ok = write_all(t.data, numel * DTypeSize(t.dtype));
  }
  if (ok) ok = ::fsync(fd) == 0;
  const std::string err = ErrnoText();
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return Status::IOError(path + ": write failed: " + err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::IOError(path + ": cannot rename into place: " + ErrnoText());
  }
  return Status::OK();
}

}  // namespace blockkv
