#include "k8s/kubeconfig.h"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/json_read.h"
#include "core/base64.h"
#include "core/fs.h"
#include "core/process.h"
#include "core/strings.h"

namespace lifeboat::k8s {
namespace {

constexpr size_t kMaxFile = 4 << 20;

std::string Scalar(const YAML::Node& n, const char* key) {
  if (!n.IsMap()) return "";
  const YAML::Node v = n[key];
  return v && v.IsScalar() ? v.as<std::string>() : std::string();
}

// The entry of `list` (clusters, users or contexts) named `name`.
YAML::Node Named(const YAML::Node& list, const std::string& name, const char* field) {
  if (!list || !list.IsSequence()) return YAML::Node();
  for (const auto& e : list) {
    if (e.IsMap() && Scalar(e, "name") == name) return e[field];
  }
  return YAML::Node();
}

std::string Resolve(const std::string& base_dir, const std::string& p) {
  if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
  return (std::filesystem::path(base_dir) / p).string();
}

// A PEM from `<key>-data` (base64) or `<key>` (a file).
Result<std::string> Pem(const YAML::Node& n, const std::string& key, const std::string& base_dir,
                        const std::string& where) {
  std::string data = Scalar(n, (key + "-data").c_str());
  if (!data.empty()) {
    auto pem = Base64Decode(data);
    if (!pem) return InvalidArgument(where + ": " + key + "-data is not base64");
    return std::move(*pem);
  }
  std::string file = Scalar(n, key.c_str());
  if (file.empty()) return std::string();
  auto text = ReadFile(Resolve(base_dir, file), kMaxFile);
  if (!text.ok()) return text.error().Wrap(where + ": " + key);
  return std::move(*text);
}

// Single-quoted for /bin/sh.
std::string ShellWord(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

Result<Access> ParseKubeconfigTree(std::string_view text, const std::string& source, const std::string& base_dir,
                                   const std::string& context);

}  // namespace

Result<Access> ParseKubeconfig(std::string_view text, const std::string& source, const std::string& base_dir,
                               const std::string& context) {
  try {
    return ParseKubeconfigTree(text, source, base_dir, context);
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed trees; a message, not a crash.
    return InvalidArgument(source + ": not a valid kubeconfig: " + e.what());
  }
}

namespace {

Result<Access> ParseKubeconfigTree(std::string_view text, const std::string& source, const std::string& base_dir,
                                   const std::string& context) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const std::exception& e) {
    return InvalidArgument(source + ": not valid YAML: " + e.what());
  }
  if (!root.IsMap()) return InvalidArgument(source + ": not a kubeconfig (expected a map with clusters, users, contexts)");
  Access a;
  a.source = source;
  a.context = context.empty() ? Scalar(root, "current-context") : context;
  if (a.context.empty()) return InvalidArgument(source + ": no current-context; name one (clusters.<region>.context)");
  YAML::Node ctx = Named(root["contexts"], a.context, "context");
  if (!ctx || !ctx.IsMap()) {
    std::vector<std::string> names;
    if (root["contexts"] && root["contexts"].IsSequence()) {
      for (const auto& e : root["contexts"]) names.push_back(Scalar(e, "name"));
    }
    return InvalidArgument(source + ": no context '" + a.context + "'" +
                           (names.empty() ? std::string() : " (it has " + Join(names, ", ") + ")"));
  }
  a.cluster_name = Scalar(ctx, "cluster");
  a.user_name = Scalar(ctx, "user");
  std::string where = source + ": cluster '" + a.cluster_name + "'";
  YAML::Node cluster = Named(root["clusters"], a.cluster_name, "cluster");
  if (!cluster || !cluster.IsMap()) return InvalidArgument(source + ": context '" + a.context + "' names cluster '" +
                                                           a.cluster_name + "', which the file does not define");
  a.server = Scalar(cluster, "server");
  while (!a.server.empty() && a.server.back() == '/') a.server.pop_back();
  if (!a.server.starts_with("https://") && !a.server.starts_with("http://")) {
    return InvalidArgument(where + ": server '" + a.server + "' is not an http(s) URL");
  }
  if (!Scalar(cluster, "proxy-url").empty()) return InvalidArgument(where + ": proxy-url is not supported");
  a.insecure = Scalar(cluster, "insecure-skip-tls-verify") == "true";
  a.tls_server_name = Scalar(cluster, "tls-server-name");
  LB_ASSIGN_OR_RETURN(a.ca_pem, Pem(cluster, "certificate-authority", base_dir, where));

  if (a.user_name.empty()) return a;  // anonymous
  where = source + ": user '" + a.user_name + "'";
  YAML::Node user = Named(root["users"], a.user_name, "user");
  if (!user || !user.IsMap()) return InvalidArgument(source + ": context '" + a.context + "' names user '" +
                                                     a.user_name + "', which the file does not define");
  if (user["auth-provider"]) {
    return InvalidArgument(where + ": auth-provider plugins are not supported; use an exec plugin (kubectl's "
                                   "own advice since 1.22)");
  }
  a.token = Scalar(user, "token");
  if (std::string f = Scalar(user, "tokenFile"); !f.empty()) a.token_file = Resolve(base_dir, f);
  LB_ASSIGN_OR_RETURN(a.cert_pem, Pem(user, "client-certificate", base_dir, where));
  LB_ASSIGN_OR_RETURN(a.key_pem, Pem(user, "client-key", base_dir, where));
  if (a.cert_pem.empty() != a.key_pem.empty()) {
    return InvalidArgument(where + ": a client certificate needs both client-certificate and client-key");
  }
  if (!Scalar(user, "username").empty() && a.token.empty() && a.cert_pem.empty()) {
    return InvalidArgument(where + ": basic authentication (username/password) is not supported");
  }
  if (const YAML::Node exec = user["exec"]; exec && exec.IsMap()) {
    ExecPlugin p;
    p.api_version = Scalar(exec, "apiVersion");
    if (p.api_version != "client.authentication.k8s.io/v1" && p.api_version != "client.authentication.k8s.io/v1beta1") {
      return InvalidArgument(where + ": exec apiVersion '" + p.api_version +
                             "' is not supported (client.authentication.k8s.io/v1 or v1beta1)");
    }
    p.command = Scalar(exec, "command");
    if (p.command.empty()) return InvalidArgument(where + ": exec has no command");
    if (p.command.find('/') != std::string::npos) p.command = Resolve(base_dir, p.command);
    if (exec["args"] && exec["args"].IsSequence()) {
      for (const auto& arg : exec["args"]) {
        if (!arg.IsScalar()) return InvalidArgument(where + ": exec args must be strings");
        p.args.push_back(arg.as<std::string>());
      }
    }
    if (exec["env"] && exec["env"].IsSequence()) {
      for (const auto& e : exec["env"]) p.env.emplace_back(Scalar(e, "name"), Scalar(e, "value"));
    }
    a.exec = std::move(p);
  }
  return a;
}

}  // namespace

Result<Access> LoadKubeconfig(const std::string& path, const std::string& context) {
  auto text = ReadFile(path, kMaxFile);
  if (!text.ok()) return text.error().Wrap("kubeconfig");
  return ParseKubeconfig(*text, path, std::filesystem::path(path).parent_path().string(), context);
}

Result<Access> InClusterAccess(const std::string& dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return FailedPrecondition("kubeconfig: in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not "
                              "set (lifeboat is not running in a pod); name a kubeconfig file instead");
  }
  Access a;
  a.context = a.cluster_name = a.user_name = "in-cluster";
  std::string h = host;
  a.server = "https://" + (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + port;
  a.token_file = dir + "/token";
  if (::access(a.token_file.c_str(), R_OK) != 0) {
    return FailedPrecondition("kubeconfig: in-cluster: cannot read the service account token " + a.token_file +
                              " (is automountServiceAccountToken off?)");
  }
  auto ca = ReadFile(dir + "/ca.crt", kMaxFile);
  if (!ca.ok()) return ca.error().Wrap("kubeconfig: in-cluster: the cluster's CA");
  a.ca_pem = std::move(*ca);
  a.source = "in-cluster (" + dir + ")";
  return a;
}

Result<ExecCredential> ParseExecCredential(std::string_view json, const std::string& plugin) {
  auto j = nlohmann::json::parse(json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Unauthenticated("exec plugin " + plugin + " did not print an ExecCredential (not JSON)");
  }
  if (json::Str(j, "kind") != "ExecCredential") {
    return Unauthenticated("exec plugin " + plugin + " printed kind '" + json::Str(j, "kind") +
                           "', not an ExecCredential");
  }
  const auto status = j.find("status");
  if (status == j.end() || !status->is_object()) return Unauthenticated("exec plugin " + plugin + ": no status");
  ExecCredential c;
  auto str = [&](const char* k) {
    auto it = status->find(k);
    return it != status->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  c.token = str("token");
  c.cert_pem = str("clientCertificateData");
  c.key_pem = str("clientKeyData");
  if (c.token.empty() && (c.cert_pem.empty() || c.key_pem.empty())) {
    return Unauthenticated("exec plugin " + plugin + " gave neither a token nor a client certificate and key");
  }
  if (std::string exp = str("expirationTimestamp"); !exp.empty()) {
    std::tm tm{};
    const char* end = strptime(exp.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (end == nullptr) return Unauthenticated("exec plugin " + plugin + ": expirationTimestamp '" + exp + "' is not RFC 3339");
    // Beyond what a system_clock time can hold (2262): as good as never.
    if (tm.tm_year < 70) {
      c.expires = std::chrono::system_clock::time_point{};  // long expired
    } else if (tm.tm_year < 2200 - 1900) {
      c.expires = std::chrono::system_clock::from_time_t(timegm(&tm));
    }
  }
  return c;
}

Result<ExecCredential> RunExecPlugin(const ExecPlugin& plugin) {
  // stdout is the credential; what the plugin says on stderr goes into the
  // error message when it fails.
  char err_path[] = "/tmp/lifeboat-exec-XXXXXX";
  int fd = ::mkstemp(err_path);
  if (fd < 0) return ErrnoError(errno, "exec plugin: temporary file");
  ::close(fd);
  std::string cmd = ShellWord(plugin.command);
  for (const auto& a : plugin.args) cmd += " " + ShellWord(a);
  cmd += " 2>" + ShellWord(err_path);
  auto env = plugin.env;
  env.emplace_back("KUBERNETES_EXEC_INFO",
                   nlohmann::json{{"apiVersion", plugin.api_version},
                                  {"kind", "ExecCredential"},
                                  {"spec", {{"interactive", false}}}}
                       .dump());
  auto run = RunCommand(cmd, env, std::chrono::seconds(60), 1 << 20);
  std::string err = ReadFile(err_path, 4096).value_or("");
  ::unlink(err_path);
  while (!err.empty() && (err.back() == '\n' || err.back() == '\r')) err.pop_back();
  if (!run.ok()) return run.error().Wrap("exec plugin " + plugin.command);
  if (run->exit_code != 0) {
    return Unauthenticated("exec plugin " + plugin.command + " exited with " + std::to_string(run->exit_code) +
                           (err.empty() ? std::string() : ": " + err));
  }
  return ParseExecCredential(run->output, plugin.command);
}

}  // namespace lifeboat::k8s
