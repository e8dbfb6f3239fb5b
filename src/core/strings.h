// Small string helpers shared by the plan validator and the CLI.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lifeboat {

// Levenshtein distance.
size_t EditDistance(std::string_view a, std::string_view b);
// The candidate closest to `word`, or "" when none is close enough to be a
// plausible typo (edit distance at most a third of its length, 1 to 3).
std::string ClosestMatch(std::string_view word, std::span<const std::string_view> candidates);
std::string Join(std::span<const std::string> parts, std::string_view sep);
std::string ToLower(std::string_view s);
// Lower-case hex of `bytes`.
std::string HexOf(std::span<const uint8_t> bytes);
std::string HexOf(std::string_view bytes);
// Parses lower- or upper-case hex of exactly out.size() bytes.
bool ParseHex(std::string_view hex, std::span<uint8_t> out);
bool StartsWith(std::string_view s, std::string_view prefix);
// Quotes and escapes a string for display: 'abc', or a C-style escaped form
// when it has control or non-ASCII bytes.
std::string Quote(std::string_view s);
// Text made safe for HTML element content and attribute values (& < > " ').
std::string HtmlEscape(std::string_view text);

}  // namespace lifeboat
