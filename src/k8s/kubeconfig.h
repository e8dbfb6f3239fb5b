// How to reach one Kubernetes cluster: read from a kubeconfig file (the
// format kubectl uses), one context of it.
//
// Supported: the server URL; the CA as a file or inline data, or
// insecure-skip-tls-verify; a bearer token (inline or tokenFile); a client
// certificate and key (files or inline data); exec credential plugins
// (client.authentication.k8s.io v1 and v1beta1: the plugin prints an
// ExecCredential with a token or a certificate, cached until it expires).
// Relative paths are relative to the kubeconfig's directory, as in kubectl.
// Not supported (refused with a message): auth-provider plugins, proxies.
#pragma once

#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace lifeboat::k8s {

struct ExecPlugin {
  std::string api_version;  // client.authentication.k8s.io/v1 or /v1beta1
  std::string command;
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
};

struct Access {
  std::string context, cluster_name, user_name;
  std::string server;       // https://host:port (no trailing slash)
  std::string ca_pem;       // empty: the system's CAs
  bool insecure = false;    // insecure-skip-tls-verify
  std::string tls_server_name;
  std::string token;        // bearer token (or read from token_file at each use)
  std::string token_file;
  std::string cert_pem, key_pem;  // client certificate
  std::optional<ExecPlugin> exec;
  std::string source;       // the kubeconfig file, for messages
};

// Reads `path` and picks `context` (empty: current-context).
// InvalidArgument names the file, the context and what is wrong.
Result<Access> LoadKubeconfig(const std::string& path, const std::string& context = "");
Result<Access> ParseKubeconfig(std::string_view text, const std::string& source, const std::string& base_dir,
                               const std::string& context);

// The pod's own service account, as client-go's in-cluster config: the API
// server from KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT, the token
// and CA from `dir` (the token is re-read at each use: the kubelet rotates
// it). A plan names it as `kubeconfig: in-cluster`.
inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
Result<Access> InClusterAccess(const std::string& dir = kServiceAccountDir);

// What an exec plugin gave: a token or a client certificate, and until when.
struct ExecCredential {
  std::string token, cert_pem, key_pem;
  std::optional<std::chrono::system_clock::time_point> expires;
};
// Parses the plugin's standard output.
Result<ExecCredential> ParseExecCredential(std::string_view json, const std::string& plugin);

// Runs the plugin (with KUBERNETES_EXEC_INFO set), at most 60 s.
Result<ExecCredential> RunExecPlugin(const ExecPlugin& plugin);

}  // namespace lifeboat::k8s
