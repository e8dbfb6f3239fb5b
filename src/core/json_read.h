// Reading members of JSON from outside (another agent, etcd, a stored
// record) without trusting their types: nlohmann's value() and get() throw on
// a mismatch, so a peer's odd answer would end the reader. Here the wrong
// type reads as absent. For nlohmann::json and ordered_json alike.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace lifeboat::json {

template <class J>
bool Bool(const J& j, const char* name, bool fallback = false) {
  auto it = j.find(name);
  return it != j.end() && it->is_boolean() ? it->template get<bool>() : fallback;
}

template <class J>
std::string Str(const J& j, const char* name, std::string fallback = "") {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->template get<std::string>() : fallback;
}

template <class J>
const J& Obj(const J& j, const char* name) {
  static const J empty = J::object();
  auto it = j.find(name);
  return it != j.end() && it->is_object() ? *it : empty;
}

template <class J>
const J& Arr(const J& j, const char* name) {
  static const J empty = J::array();
  auto it = j.find(name);
  return it != j.end() && it->is_array() ? *it : empty;
}

// A number; nullopt when absent, null or not a number.
template <class J>
std::optional<double> Num(const J& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->template get<double>();
}

// An integer, also written as a decimal string (etcd's gateway writes int64
// so); `fallback` when absent or neither.
template <class J>
int64_t I64(const J& j, const char* name, int64_t fallback = 0) {
  auto it = j.find(name);
  if (it == j.end()) return fallback;
  if (it->is_string()) {
    const std::string& s = it->template get_ref<const std::string&>();
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    return end != s.c_str() ? v : fallback;
  }
  return it->is_number_integer() ? it->template get<int64_t>() : fallback;
}

template <class J>
uint64_t U64(const J& j, const char* name, uint64_t fallback = 0) {
  auto it = j.find(name);
  return it != j.end() && it->is_number_unsigned() ? it->template get<uint64_t>()
         : it != j.end() && it->is_number_integer() && it->template get<int64_t>() >= 0
             ? static_cast<uint64_t>(it->template get<int64_t>())
             : fallback;
}

// A value that is an integer and fits T; nullopt otherwise. nlohmann's
// get<T>() converts a float to an integer type without complaint, and a
// float out of T's range (1e22) makes that conversion undefined behaviour:
// an integer type read from outside goes through this.
template <class T, class J>
std::optional<T> IntOf(const J& v) {
  static_assert(std::is_integral_v<T>);
  if (v.is_number_unsigned()) {
    uint64_t u = v.template get<uint64_t>();
    return std::in_range<T>(u) ? std::optional<T>(static_cast<T>(u)) : std::nullopt;
  }
  if (v.is_number_integer()) {
    int64_t s = v.template get<int64_t>();
    return std::in_range<T>(s) ? std::optional<T>(static_cast<T>(s)) : std::nullopt;
  }
  return std::nullopt;
}

}  // namespace lifeboat::json
