// Feeds untrusted bytes to every parser of repository files: the first byte
// picks the parser (pack header, index, tree, zstd, config, key file,
// snapshot, lock), the rest is the file. Decoders must refuse or succeed in
// bounded time and memory; what decodes must encode back to bytes that
// decode to the same thing.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "repo/format.h"

using namespace lifeboat::repo;

namespace {

void Require(bool ok) {
  if (!ok) std::abort();
}

bool SameEntries(const std::vector<PackEntry>& a, const std::vector<PackEntry>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].flags != b[i].flags || a[i].offset != b[i].offset ||
        a[i].length != b[i].length || a[i].raw_length != b[i].raw_length || a[i].id != b[i].id) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0: {
      uint64_t data_size = in.size() * 7;  // any length the entries might claim to cover
      auto h = DecodePackHeader(in, data_size);
      if (h.ok()) {
        auto again = DecodePackHeader(EncodePackHeader(*h), data_size);
        Require(again.ok() && SameEntries(*h, *again));
      }
      break;
    }
    case 1: {
      auto idx = DecodeIndex(in);
      if (idx.ok()) {
        auto again = DecodeIndex(EncodeIndex(*idx));
        Require(again.ok() && again->size() == idx->size());
        for (size_t i = 0; i < idx->size(); ++i) {
          Require((*idx)[i].pack == (*again)[i].pack && SameEntries((*idx)[i].blobs, (*again)[i].blobs));
        }
      }
      break;
    }
    case 2: {
      auto t = DecodeTree(in);
      if (t.ok()) {
        std::string enc = EncodeTree(*t);
        auto again = DecodeTree(enc);
        Require(again.ok() && EncodeTree(*again) == enc);
        for (const auto& n : t->nodes) Require(!n.name.empty() && n.name != "." && n.name != ".." && n.name.find('/') == std::string::npos);
      }
      break;
    }
    case 3: {
      if (in.size() < 4) break;
      uint32_t raw = static_cast<uint32_t>(data[1]) | static_cast<uint32_t>(data[2]) << 8 |
                     static_cast<uint32_t>(data[3] & 0x0f) << 16;  // up to 1 MiB
      auto d = Decompress(in.substr(3), raw);
      if (d.ok()) Require(d->size() == raw);
      break;
    }
    case 4: (void)Config::FromJson(in); break;
    case 5: (void)KeyFile::FromJson(in); break;
    case 6: {
      auto s = Snapshot::FromJson(in);
      if (s.ok()) Require(Snapshot::FromJson(s->ToJson()).ok());
      break;
    }
    case 7: (void)LockInfo::FromJson(in); break;
  }
  return 0;
}
