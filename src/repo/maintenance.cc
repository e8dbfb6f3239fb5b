// Check, prune and repair: verifying the repository, removing unused data, rebuilding a lost index.
#include "repo/repository.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <set>
#include <spdlog/spdlog.h>
#include <unordered_set>

#include "chunk/hash.h"
#include "core/bytes.h"
#include "core/clock.h"
#include "repo/repository_internal.h"

namespace lifeboat::repo {

using namespace detail;

namespace {

// Every blob the snapshots use. Trees that cannot be loaded are reported.
struct Usage {
  std::unordered_set<Id, IdHash> blobs;
  std::vector<std::string> errors;
  uint64_t trees = 0;
  uint64_t unindexed = 0;  // blobs (chunks or directories) no index lists
};

void MarkTree(Repository& repo, const Id& root, const std::string& snapshot, Usage& u) {
  std::deque<std::pair<Id, std::string>> queue{{root, "/"}};
  while (!queue.empty()) {
    auto [id, path] = queue.front();
    queue.pop_front();
    if (!u.blobs.insert(id).second) continue;
    ++u.trees;
    auto tree = repo.LoadTree(id);
    if (!tree.ok()) {
      if (!repo.Has(id)) ++u.unindexed;
      u.errors.push_back("backup " + snapshot.substr(0, 8) + ": directory " + path + ": " + tree.error().message());
      continue;
    }
    for (const auto& n : tree->nodes) {
      std::string child = path + (path == "/" ? "" : "/") + n.name;
      if (n.type == NodeType::kDir) {
        queue.push_back({n.subtree, child});
      } else if (n.type == NodeType::kFile) {
        for (const auto& c : n.content) {
          if (u.blobs.insert(c).second && !repo.Has(c)) {
            ++u.unindexed;
            u.errors.push_back("backup " + snapshot.substr(0, 8) + ": file " + child + ": chunk " + Short(c) +
                               " is in no index");
          }
        }
      }
    }
  }
}

}  // namespace

Result<CheckReport> Repository::Check(bool read_data, const std::function<void(const std::string&)>& progress) {
  CheckReport rep;
  auto say = [&](const std::string& s) {
    if (progress) progress(s);
  };
  say("loading index");
  LB_RETURN_IF_ERROR(LoadIndex(&rep.errors));
  say("listing packs");
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  std::unordered_map<Id, uint64_t, IdHash> present;
  for (const auto& f : files) {
    Id p;
    if (!ParseHex(BaseName(f.name), p) || PackName(p) != f.name) {
      rep.warnings.push_back(f.name + ": not a pack name");
      continue;
    }
    present[p] = f.size;
  }
  std::unordered_map<Id, std::vector<PackEntry>, IdHash> by_pack;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, loc] : index_) by_pack[loc.pack].push_back(loc.entry);
    rep.blobs = index_.size();
    for (const auto& [p, n] : packs_) {
      if (by_pack.count(p) == 0) by_pack[p] = {};
    }
  }
  rep.packs = present.size();
  for (auto& [p, entries] : by_pack) {
    auto it = present.find(p);
    if (it == present.end()) {
      rep.errors.push_back("pack " + Short(p) + " is missing (" + std::to_string(entries.size()) + " blobs lost)");
      continue;
    }
    for (const auto& e : entries) {
      if (static_cast<uint64_t>(e.offset) + e.length + 4 > it->second) {
        rep.errors.push_back("pack " + Short(p) + " is " + std::to_string(it->second) +
                             " bytes, too short for the blobs the index lists (truncated?)");
        break;
      }
    }
  }
  size_t unindexed = 0;
  for (const auto& [p, size] : present) {
    if (by_pack.count(p) == 0) {
      rep.warnings.push_back("pack " + Short(p) +
                             " is in no index (left by an interrupted backup, or its index file was lost)");
      ++unindexed;
    }
  }
  say("reading the backups");
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots(&rep.errors));
  rep.snapshots = snaps.size();
  Usage usage;
  for (const auto& s : snaps) {
    say("checking backup " + s.id.substr(0, 8));
    MarkTree(*this, s.TreeId(), s.id, usage);
  }
  rep.trees = usage.trees;
  rep.errors.insert(rep.errors.end(), usage.errors.begin(), usage.errors.end());
  if (usage.unindexed > 0) {
    rep.errors.push_back(
        "backups use " + std::to_string(usage.unindexed) + " blob(s) that no index lists: the index is damaged or lost" +
        std::string(unindexed > 0 ? " (" + std::to_string(unindexed) + " pack(s) are in no index and may hold them)" : "") +
        ". Run `lifeboat repo repair` to rebuild the index from the packs; prune refuses to run until then, so "
        "nothing is deleted");
  }
  if (read_data) {
    size_t done = 0;
    for (const auto& [p, size] : present) {
      ++done;
      say("reading pack " + std::to_string(done) + "/" + std::to_string(present.size()));
      auto body = backend_->Get(PackName(p));
      if (!body.ok()) {
        rep.errors.push_back("pack " + Short(p) + ": " + body.error().message());
        continue;
      }
      rep.bytes_read += body->size();
      if (Sha(*body) != p) rep.errors.push_back("pack " + Short(p) + ": content does not match its name (damaged)");
      auto it = by_pack.find(p);
      if (it == by_pack.end()) continue;
      for (const auto& e : it->second) {
        if (static_cast<uint64_t>(e.offset) + e.length > body->size()) continue;  // reported above
        auto blob = ReadBlob({p, e}, std::string_view(*body).substr(e.offset, e.length));
        if (!blob.ok()) rep.errors.push_back(blob.error().message());
      }
    }
  }
  return rep;
}

Result<PruneReport> Repository::Prune(double repack_threshold) {
  // Order of writes, each step safe to be killed after (docs/format/repository.md,
  // "Prune"): new packs for the repacked blobs; index files that list every kept
  // blob exactly once; then the old index files go; then the packs nothing
  // lists any more. Until the old index files are gone every blob is reachable
  // through them; afterwards through the new ones.
  PruneReport rep;
  LB_RETURN_IF_ERROR(LoadIndex());
  LB_ASSIGN_OR_RETURN(auto old_index, backend_->List("index"));
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots());
  Usage usage;
  for (const auto& s : snaps) {
    MarkTree(*this, s.TreeId(), s.id, usage);
  }
  if (!usage.errors.empty()) {
    return Error(Code::kDataLoss, "prune refuses to run on a damaged repository (run `repo check`): " + usage.errors[0]);
  }
  // The copy of each used blob that is kept: the one the index points at.
  std::unordered_map<Id, std::vector<PackEntry>, IdHash> keep;
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, loc] : index_) {
      if (usage.blobs.count(id)) keep[loc.pack].push_back(loc.entry);
    }
  }
  std::vector<IndexPack> next;  // the whole index after prune
  std::vector<Id> remove;
  Packer packer;
  auto flush = [&]() -> Status {
    if (packer.empty()) return Ok();
    LB_ASSIGN_OR_RETURN(Id pack, UploadPack(packer));
    next.push_back({pack, std::move(packer.entries)});
    packer = Packer{};
    return Ok();
  };
  for (const auto& f : files) {
    Id p;
    if (!ParseHex(BaseName(f.name), p)) continue;
    auto k = keep.find(p);
    if (k == keep.end()) {
      remove.push_back(p);
      rep.bytes_freed += f.size;
      continue;
    }
    std::vector<PackEntry>& used_entries = k->second;
    std::sort(used_entries.begin(), used_entries.end(),
              [](const PackEntry& a, const PackEntry& b) { return a.offset < b.offset; });
    uint64_t used = 4;
    for (const auto& e : used_entries) used += e.length;
    bool repack = static_cast<double>(f.size - std::min<uint64_t>(used, f.size)) >
                  repack_threshold * static_cast<double>(f.size);
    if (!repack) {
      ++rep.packs_kept;
      next.push_back({p, std::move(used_entries)});
      continue;
    }
    LB_ASSIGN_OR_RETURN(std::string body, backend_->Get(f.name));
    for (const auto& e : used_entries) {
      if (static_cast<uint64_t>(e.offset) + e.length > body.size()) {
        return Error(Code::kDataLoss, "pack " + Short(p) + " is shorter than its index says (run `repo check`)");
      }
      PackEntry ne = e;
      ne.offset = static_cast<uint32_t>(packer.data.size());
      packer.data.append(body, e.offset, e.length);
      packer.entries.push_back(ne);
      if (packer.data.size() >= kPackTargetSize) LB_RETURN_IF_ERROR(flush());
    }
    remove.push_back(p);
    rep.bytes_freed += f.size;
    ++rep.packs_repacked;
  }
  LB_RETURN_IF_ERROR(flush());
  std::vector<std::string> written;
  LB_ASSIGN_OR_RETURN(rep.index_files_replaced, ReplaceIndex(next, old_index, written));
  for (const auto& p : remove) {
    LB_RETURN_IF_ERROR(backend_->Delete(PackName(p)));
    ++rep.packs_deleted;
  }
  // Under the exclusive lock no writer runs: any temporary file is a killed one's.
  LB_ASSIGN_OR_RETURN(rep.leftovers_removed, backend_->RemoveLeftovers());
  // This process's view becomes exactly what is stored now.
  uint64_t kept = 0;
  for (const auto& p : next) kept += p.blobs.size();
  std::unique_lock lock(mu_);
  rep.blobs_removed = index_.size() - std::min<uint64_t>(index_.size(), kept);
  index_.clear();
  packs_.clear();
  claimed_.clear();
  pending_.clear();
  for (const auto& p : next) {
    packs_[p.pack] = p.blobs.size();
    for (const auto& e : p.blobs) index_.try_emplace(e.id, BlobLocation{p.pack, e});
  }
  loaded_index_ = std::unordered_set<std::string>(written.begin(), written.end());
  return rep;
}

Result<RepairReport> Repository::Repair(const std::function<void(const std::string&)>& progress) {
  RepairReport rep;
  auto say = [&](const std::string& what) {
    if (progress) progress(what);
  };
  LB_ASSIGN_OR_RETURN(auto old_index, backend_->List("index"));
  LB_ASSIGN_OR_RETURN(auto files, backend_->List("data"));
  std::vector<IndexPack> packs;
  size_t done = 0;
  for (const auto& f : files) {
    say("reading pack headers " + std::to_string(++done) + "/" + std::to_string(files.size()));
    Id p;
    if (!ParseHex(BaseName(f.name), p) || PackName(p) != f.name) continue;
    auto entries = ReadPackHeader(f.name, f.size);
    if (!entries.ok()) {
      rep.unreadable_packs.push_back(entries.error().message());
      continue;
    }
    rep.blobs_indexed += entries->size();
    packs.push_back({p, std::move(*entries)});
  }
  rep.packs_indexed = packs.size();
  say("writing the index");
  std::vector<std::string> written;
  LB_ASSIGN_OR_RETURN(rep.index_files_replaced, ReplaceIndex(packs, old_index, written));
  {
    std::unique_lock lock(mu_);
    index_.clear();
    packs_.clear();
    claimed_.clear();
    pending_.clear();
    loaded_index_.clear();
  }
  LB_RETURN_IF_ERROR(LoadIndex());
  say("checking every backup against the new index");
  LB_ASSIGN_OR_RETURN(auto snaps, ListSnapshots());
  Usage usage;
  for (const auto& s : snaps) MarkTree(*this, s.TreeId(), s.id, usage);
  rep.still_missing = std::move(usage.errors);
  return rep;
}

}  // namespace lifeboat::repo
