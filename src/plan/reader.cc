#include "plan/reader.h"

#include <filesystem>

#include <algorithm>
#include <charconv>

#include "core/strings.h"
#include "plan/load.h"

namespace lifeboat::plan {

void Context::Add(Severity s, const YAML::Mark& at, std::string message, std::string hint) {
  if (s == Severity::kError) {
    if (errors_ >= kMaxDiagnostics) return;
    ++errors_;
  }
  Diagnostic d;
  d.file = file_;
  if (!at.is_null()) {
    d.line = at.line + 1;
    d.column = at.column + 1;
  }
  d.severity = s;
  d.message = std::move(message);
  d.hint = std::move(hint);
  diags_.push_back(std::move(d));
}

void Context::Error(const YAML::Mark& at, std::string message, std::string hint) {
  Add(Severity::kError, at, std::move(message), std::move(hint));
}
void Context::Warning(const YAML::Mark& at, std::string message, std::string hint) {
  Add(Severity::kWarning, at, std::move(message), std::move(hint));
}
std::string Context::Resolve(std::string& path) const {
  if (path.empty()) return "empty; write a path, absolute or relative to the plan file's directory";
  std::filesystem::path p(path);
  if (p.is_relative()) {
    if (base_dir_.empty()) {
      return "'" + path + "' is not an absolute path (relative paths are relative to the plan file, and this plan "
             "text comes from no file)";
    }
    p = std::filesystem::path(base_dir_) / p;
  }
  std::string normal = p.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  path = normal;
  return "";
}

bool Context::ResolvePath(const YAML::Mark& at, const std::string& where, std::string& path) {
  std::string problem = Resolve(path);
  if (!problem.empty()) Error(at, where + ": " + problem);
  return problem.empty();
}

bool Context::full() const { return errors_ >= kMaxDiagnostics; }

std::string KindOf(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsSequence()) return "a list";
  if (n.IsMap()) return "a mapping";
  const std::string& v = n.Scalar();
  if (v.size() > 40 || v.find('\n') != std::string::npos) {
    return "the text '" + v.substr(0, std::min(v.find('\n'), size_t{40})) + "...'";
  }
  return "'" + v + "'";
}

Map::Map(Context& ctx, const YAML::Node& node, std::string path, std::initializer_list<std::string_view> known)
    : ctx_(&ctx), path_(std::move(path)) {
  std::vector<std::string_view> k(known);
  Init(node, k, true);
}

Map Map::Named(Context& ctx, const YAML::Node& node, std::string path) {
  Map m(ctx, std::move(path));
  m.Init(node, {}, false);
  return m;
}

void Map::Init(const YAML::Node& node, std::span<const std::string_view> known, bool check_known) {
  mark_ = node.Mark();
  if (!node.IsDefined() || node.IsNull()) return;  // absent: an empty mapping
  if (!node.IsMap()) {
    ctx_->Error(mark_, Where() + ": expected a mapping of keys, got " + KindOf(node),
                "write it as 'key: value' lines indented under " + (path_.empty() ? "the top" : path_) +
                    ", or as { key: value, ... }");
    return;
  }
  is_map_ = true;
  for (auto it = node.begin(); it != node.end() && !ctx_->full(); ++it) {
    YAML::Node k = it->first;  // a copy: it-> yields a temporary proxy
    if (!k.IsScalar()) {
      ctx_->Error(k.Mark(), Where() + ": a key must be a plain name, got " + KindOf(k));
      continue;
    }
    std::string key = k.Scalar();
    if (auto it = index_.find(key); it != index_.end()) {
      int line = entries_[it->second].key_node.Mark().line + 1;
      ctx_->Error(k.Mark(), Sub(key) + ": duplicate key (first defined on line " + std::to_string(line) + ")",
                  "remove one of the two, or give this one another name");
      continue;
    }
    if (check_known) {
      bool found = false;
      for (auto kn : known) found = found || kn == key;
      if (!found) {
        std::string close = ClosestMatch(key, known);
        std::string list;
        for (auto kn : known) list += (list.empty() ? "" : ", ") + std::string(kn);
        ctx_->Error(k.Mark(), Where() + ": unknown key " + Quote(key),
                    close.empty() ? "known keys here: " + list
                                  : "did you mean '" + close + "'? known keys here: " + list);
        continue;
      }
    }
    index_.emplace(key, entries_.size());
    entries_.push_back({key, k, it->second});
  }
}

std::string Map::Sub(std::string_view key) const {
  return path_.empty() ? std::string(key) : path_ + "." + std::string(key);
}

YAML::Node Map::Get(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? YAML::Node(YAML::NodeType::Undefined) : entries_[it->second].value;
}

YAML::Mark Map::KeyMark(std::string_view key) const {
  auto it = index_.find(std::string(key));
  return it == index_.end() ? mark_ : entries_[it->second].key_node.Mark();
}

void Map::Missing(std::string_view key, std::string_view what) const {
  ctx_->Error(mark_, Where() + ": missing required key '" + std::string(key) + "'",
              "add '" + std::string(key) + ": " + std::string(what) + "'");
}

YAML::Node Child(const YAML::Node& node, std::string_view key) {
  if (node.IsMap()) {
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return it->second;
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::optional<std::string> ScalarOf(Context& ctx, const YAML::Node& n, const std::string& path,
                                    std::string_view expected) {
  if (!n.IsScalar()) {
    ctx.Error(n.Mark(), path + ": expected " + std::string(expected) + ", got " + KindOf(n));
    return std::nullopt;
  }
  return n.Scalar();
}

std::optional<std::pair<std::string, YAML::Mark>> Map::Scalar(std::string_view key, std::string_view expected,
                                                              bool required) const {
  YAML::Node n = Get(key);
  if (!n.IsDefined()) {
    if (required) Missing(key, expected);
    return std::nullopt;
  }
  if (n.IsNull()) {
    ctx_->Error(KeyMark(key), Sub(key) + ": has no value", "give it " + std::string(expected));
    return std::nullopt;
  }
  auto s = ScalarOf(*ctx_, n, Sub(key), expected);
  if (!s) return std::nullopt;
  return std::make_pair(*s, n.Mark());
}

bool Map::Str(std::string_view key, std::string& out, bool required) const {
  auto s = Scalar(key, "a string", required);
  if (!s) return false;
  out = s->first;
  return true;
}

bool Map::Int(std::string_view key, int& out, int lo, int hi, bool required) const {
  auto s = Scalar(key, "a whole number", required);
  if (!s) return false;
  const std::string& t = s->first;
  long long v = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size()) {
    ctx_->Error(s->second, Sub(key) + ": expected a whole number, got '" + t + "'");
    return false;
  }
  if (v < lo || v > hi) {
    ctx_->Error(s->second, Sub(key) + ": " + t + " is out of range",
                "use a number from " + std::to_string(lo) + " to " + std::to_string(hi));
    return false;
  }
  out = static_cast<int>(v);
  return true;
}

bool Map::Bool(std::string_view key, bool& out) const {
  auto s = Scalar(key, "true or false", false);
  if (!s) return false;
  if (s->first == "true") {
    out = true;
  } else if (s->first == "false") {
    out = false;
  } else {
    ctx_->Error(s->second, Sub(key) + ": expected true or false, got '" + s->first + "'");
    return false;
  }
  return true;
}

bool Map::Dur(std::string_view key, Duration& out, bool required) const {
  auto s = Scalar(key, "a duration such as 500ms, 30s or 1h", required);
  if (!s) return false;
  auto d = ParseDuration(s->first);
  if (!d) {
    ctx_->Error(s->second, Sub(key) + ": " + d.error().message());
    return false;
  }
  out = *d;
  return true;
}

bool Map::OptDur(std::string_view key, std::optional<Duration>& out) const {
  Duration d{};
  if (!Dur(key, d)) return false;
  out = d;
  return true;
}

bool Map::SizeOf(std::string_view key, Size& out) const {
  auto s = Scalar(key, "a size such as 16MB or 1GiB", false);
  if (!s) return false;
  auto v = ParseSize(s->first);
  if (!v) {
    ctx_->Error(s->second, Sub(key) + ": " + v.error().message());
    return false;
  }
  out = *v;
  return true;
}

bool Map::OptRate(std::string_view key, std::optional<Rate>& out) const {
  auto s = Scalar(key, "a rate such as 200MB/s", false);
  if (!s) return false;
  auto v = ParseRate(s->first);
  if (!v) {
    ctx_->Error(s->second, Sub(key) + ": " + v.error().message());
    return false;
  }
  out = *v;
  return true;
}

bool Map::Addr(std::string_view key, Address& out, bool required) const {
  auto s = Scalar(key, "host:port", required);
  if (!s) return false;
  auto a = ParseAddress(s->first);
  if (!a) {
    ctx_->Error(s->second, Sub(key) + ": " + a.error().message());
    return false;
  }
  out = *a;
  return true;
}

bool Map::StrList(std::string_view key, std::vector<std::string>& out, bool required) const {
  YAML::Node n = Get(key);
  if (!n.IsDefined()) {
    if (required) Missing(key, "[a, b, ...]");
    return false;
  }
  std::vector<std::string> v;
  if (n.IsScalar()) {
    v.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    bool ok = true;
    for (size_t i = 0; i < n.size() && !ctx_->full(); ++i) {
      auto s = ScalarOf(*ctx_, n[i], Sub(key) + "[" + std::to_string(i) + "]", "a string");
      if (s) {
        v.push_back(*s);
      } else {
        ok = false;
      }
    }
    if (!ok) return false;
  } else {
    ctx_->Error(n.Mark(), Sub(key) + ": expected a list of strings, got " + KindOf(n), "write [a, b, ...]");
    return false;
  }
  out = std::move(v);
  return true;
}

}  // namespace lifeboat::plan
