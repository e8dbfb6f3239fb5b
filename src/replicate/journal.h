// The receiver's redo journal for in-place updates of large files
// (docs/format/replication.md, "In-place updates"). The changed ranges of a
// file are written to ".lifeboat~<hash>.journal" beside it and made durable
// (the journal, then its directory) before the file is touched; then they are
// applied, the size and metadata set, the file made durable, and the journal
// removed (and that made durable). A receiver that dies anywhere in between
// finds the journal when it starts again: a sealed one is applied again
// (applying twice writes the same bytes), an unsealed one is removed (the
// file was never touched). So after recovery every file holds its old or its
// new content, never a mix, and nothing that did not change is rewritten.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/env.h"
#include "core/fd.h"
#include "core/result.h"
#include "fstree/tree.h"

namespace lifeboat::replicate {

class JournalWriter {
 public:
  // Creates (or truncates) `journal` in `dirfd` for the file `target` (a name
  // in the same directory) that is to become `size` bytes with `meta`.
  static Result<std::unique_ptr<JournalWriter>> Create(Env& env, int dirfd, std::string journal, std::string target,
                                                       uint64_t size, const fstree::Meta& meta);
  ~JournalWriter();
  // Appends a range of the new content.
  Status Add(uint64_t offset, std::span<const uint8_t> bytes);
  // Writes the seal and makes the journal and its name durable: from here on
  // the update happens even if this process dies.
  Status Seal();
  // Removes an unsealed journal (the file was never touched).
  void Abandon();
  uint64_t ranges() const { return ranges_; }
  const std::string& name() const { return journal_; }

 private:
  JournalWriter(Env& env, int dirfd, std::string journal);
  Status Flush();
  Env& env_;
  int dirfd_;
  std::string journal_;
  UniqueFd fd_;
  std::string buf_;
  struct Checksum;
  std::unique_ptr<Checksum> sum_;
  uint64_t ranges_ = 0;
  bool sealed_ = false;
};

// Applies the sealed journal `journal` in `dirfd` to its file, makes the file
// durable and removes the journal. DataLoss for a journal that is not sealed
// or is damaged (the caller removes it: its file was never touched). The
// file's bytes, size, owner, mode and mtime end as the journal says.
Status ApplyJournal(Env& env, int dirfd, const std::string& journal);

// An I/O error at the target: a full disk (ENOSPC, EDQUOT) is
// ResourceExhausted saying so, anything else ErrnoError. The receiver's and
// the journal's writes share it.
Error IoError(int err, const std::string& what);

// Writes all `n` bytes of `p` at `offset` of `fd` through `env`, on through
// short writes and EINTR; IoError "write '<path>'" otherwise.
Status WriteAll(Env& env, int fd, const uint8_t* p, size_t n, uint64_t offset, std::string_view path);

inline bool IsJournalName(std::string_view name) {
  return fstree::IsTempName(name) && name.ends_with(".journal");
}

}  // namespace lifeboat::replicate
