// Internal to plan/: typed, positioned reading of YAML nodes. Every problem
// becomes a Diagnostic at the offending node; reading goes on so that one
// pass reports everything.
#pragma once

#include <yaml-cpp/yaml.h>

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/address.h"
#include "core/units.h"
#include "plan/diagnostics.h"

namespace lifeboat::plan {

class Context {
 public:
  // `base_dir` is the plan file's directory: relative paths in the plan
  // resolve against it. Empty for a text that comes from no file: then every
  // path must be absolute.
  explicit Context(std::string file, std::string base_dir = "")
      : file_(std::move(file)), base_dir_(std::move(base_dir)) {}

  void Error(const YAML::Mark& at, std::string message, std::string hint = "");
  void Warning(const YAML::Mark& at, std::string message, std::string hint = "");
  // True once kMaxDiagnostics errors are in: readers stop early.
  bool full() const;
  std::vector<Diagnostic>& diagnostics() { return diags_; }
  const std::string& file() const { return file_; }
  // A file path the plan names, made absolute and normal: as written when it
  // starts with '/', else relative to the plan file's directory. `where`
  // names the value in the message; false after reporting an empty path or a
  // relative one without a plan file.
  bool ResolvePath(const YAML::Mark& at, const std::string& where, std::string& path);
  // The same without reporting: the problem's text, or "" when resolved.
  std::string Resolve(std::string& path) const;

 private:
  void Add(Severity s, const YAML::Mark& at, std::string message, std::string hint);
  std::string file_, base_dir_;
  std::vector<Diagnostic> diags_;
  size_t errors_ = 0;
};

// "a list", "a mapping", "a string", "nothing" — for "expected X, got Y".
std::string KindOf(const YAML::Node& n);

// A YAML mapping read against a set of known keys. Duplicate and unknown keys
// are reported when it is constructed; a node that is not a mapping is
// reported and reads as empty.
class Map {
 public:
  // `path` names it in messages ("checks.web"); `known` lists its keys.
  Map(Context& ctx, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> known);
  // A mapping whose keys are names chosen by the user (regions, checks, ...):
  // duplicates are reported, every key is accepted.
  static Map Named(Context& ctx, const YAML::Node& node, std::string path);

  bool is_map() const { return is_map_; }
  const YAML::Mark& mark() const { return mark_; }
  const std::string& path() const { return path_; }
  Context& ctx() const { return *ctx_; }
  std::string Sub(std::string_view key) const;  // "path.key"
  std::string Where() const { return path_.empty() ? "plan" : path_; }

  struct Entry {
    std::string key;
    YAML::Node key_node, value;
  };
  const std::vector<Entry>& entries() const { return entries_; }
  // The value under `key`, or an undefined node.
  YAML::Node Get(std::string_view key) const;
  bool Has(std::string_view key) const { return Get(key).IsDefined(); }
  // Where `key` itself is written (for values that are empty, whose own
  // position is wherever the next token is); the mapping's when absent.
  YAML::Mark KeyMark(std::string_view key) const;
  // Reports a missing required key at the mapping.
  void Missing(std::string_view key, std::string_view what) const;

  // Typed readers: return true when the key is present and valid; leave `out`
  // unchanged otherwise. `required` reports a missing key.
  bool Str(std::string_view key, std::string& out, bool required = false) const;
  bool Int(std::string_view key, int& out, int lo, int hi, bool required = false) const;
  bool Bool(std::string_view key, bool& out) const;
  bool Dur(std::string_view key, Duration& out, bool required = false) const;
  bool OptDur(std::string_view key, std::optional<Duration>& out) const;
  bool SizeOf(std::string_view key, Size& out) const;
  bool OptRate(std::string_view key, std::optional<Rate>& out) const;
  bool Addr(std::string_view key, Address& out, bool required = false) const;
  // A string or a list of strings.
  bool StrList(std::string_view key, std::vector<std::string>& out, bool required = false) const;
  template <typename E>
  bool Enum(std::string_view key, E& out, std::initializer_list<std::pair<std::string_view, E>> choices,
            bool required = false) const;

 private:
  Map(Context& ctx, std::string path) : ctx_(&ctx), path_(std::move(path)) {}
  void Init(const YAML::Node& node, std::span<const std::string_view> known, bool check_known);
  // The scalar under `key`; reports a non-scalar. nullopt when absent or bad.
  std::optional<std::pair<std::string, YAML::Mark>> Scalar(std::string_view key, std::string_view expected,
                                                            bool required) const;

  Context* ctx_;
  std::string path_;
  YAML::Mark mark_;
  bool is_map_ = false;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;  // key -> position in entries_
};

// The value under `key` of a mapping node, or an undefined node; reports
// nothing (for second looks at nodes a Map has already checked).
YAML::Node Child(const YAML::Node& node, std::string_view key);

// Reads a scalar node as a string; reports and returns nullopt otherwise.
std::optional<std::string> ScalarOf(Context& ctx, const YAML::Node& n, const std::string& path,
                                    std::string_view expected);

template <typename E>
bool Map::Enum(std::string_view key, E& out, std::initializer_list<std::pair<std::string_view, E>> choices,
               bool required) const {
  std::string list, alternatives;
  for (const auto& c : choices) {
    list += (list.empty() ? "" : ", ") + std::string(c.first);
    alternatives += (alternatives.empty() ? "" : "|") + std::string(c.first);
  }
  auto s = Scalar(key, alternatives, required);
  if (!s) return false;
  for (const auto& [name, value] : choices) {
    if (s->first == name) {
      out = value;
      return true;
    }
  }
  ctx_->Error(s->second, Sub(key) + ": unknown value '" + s->first + "'", "use one of: " + list);
  return false;
}

}  // namespace lifeboat::plan
