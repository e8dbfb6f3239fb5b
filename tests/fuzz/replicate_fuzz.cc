// libFuzzer target for the replication protocol's receiving side: the input
// is a stream of frames (4-byte length, type, payload) applied to a Session
// rooted in a scratch directory that holds a symlink pointing outside it.
// Any bytes must give an error or a change inside the root: never a crash, a
// sanitizer report, or a file outside the root. The same bytes are then read
// as the two files replication keeps on disk, a source's block record and a
// receiver's journal (a damaged one must be refused, never applied).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "replicate/blocks.h"
#include "replicate/journal.h"
#include "replicate/receiver.h"
#include "fstree/tree.h"

namespace fs = std::filesystem;
using namespace lifeboat::replicate;

namespace {

const fs::path& Base() {
  static const fs::path base = [] {
    auto b = fs::temp_directory_path() / ("lifeboat-fuzz-replicate-" + std::to_string(::getpid()));
    fs::create_directories(b / "outside");
    return b;
  }();
  return base;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const fs::path root = Base() / "root";
  std::error_code ec;
  fs::remove_all(root, ec);
  fs::create_directories(root / "dir");
  ::symlink((Base() / "outside").c_str(), (root / "escape").c_str());
  ::symlink("../outside", (root / "dir/up").c_str());

  auto session = Session::Open(root.string(), [](std::string) { return lifeboat::Ok(); }, nullptr, false,
                               lifeboat::Env::Default());
  if (!session.ok()) std::abort();
  size_t pos = 0;
  while (pos + 5 <= size) {
    auto len = FrameLength(std::span<const uint8_t, 4>(data + pos, 4));
    if (!len.ok() || pos + 4 + *len > size) break;
    Frame f{data[pos + 4], std::string(reinterpret_cast<const char*>(data) + pos + 5, *len - 1)};
    pos += 4 + *len;
    // The session decodes; HELLO and ERROR are decoded by the connection layer.
    (void)DecodeHello(f);
    (void)DecodeError(f);
    if (!(*session)->Handle(f).ok()) break;
  }
  (void)(*session)->Commit();
  session->reset();
  if (!fs::is_empty(Base() / "outside")) {
    std::abort();  // something was written through a symlink, outside the volume
  }

  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (auto path = PathOfRecord(bytes)) (void)DecodeBlocks(bytes, *path);
  (void)DecodeBlocks(bytes, "dir/file");
  {
    // Its own directory: the frames above may have made root/dir anything
    // (a symlink to a missing path, say).
    const fs::path dir = Base() / "journal";
    fs::remove_all(dir, ec);
    fs::create_directories(dir);
    FILE* f = std::fopen((dir / ".lifeboat~fuzz.journal").c_str(), "wb");
    if (f == nullptr) std::abort();
    std::fwrite(data, 1, size, f);
    std::fclose(f);
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    (void)ApplyJournal(lifeboat::Env::Default(), fd, ".lifeboat~fuzz.journal");
    ::close(fd);
  }
  if (!fs::is_empty(Base() / "outside")) std::abort();
  return 0;
}
