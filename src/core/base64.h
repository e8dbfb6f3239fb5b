// Base64 (RFC 4648, standard alphabet, with padding) over OpenSSL's EVP
// codec: etcd's JSON gateway and Kubernetes' kubeconfig and Secrets use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace lifeboat {

std::string Base64Encode(std::string_view in);
// nullopt when `in` is not base64 (whitespace is not skipped).
std::optional<std::string> Base64Decode(std::string_view in);

}  // namespace lifeboat
