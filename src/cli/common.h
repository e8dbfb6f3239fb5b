// Shared pieces of the command-line front ends: exit codes, error printing,
// output formats and plain-text tables.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/address.h"
#include "core/result.h"
#include "plan/plan.h"

namespace lifeboat::cli {

// Exit codes, the same for every command (docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed (address in use, agent unreachable, ...)
inline constexpr int kExitInvalid = 2;  // bad input: an invalid plan, unknown region, bad flags

// "lifeboat: error: <message>" on stderr; returns the exit code for it.
int Fail(const Error& error);
int Fail(const std::string& message, int code = kExitFailure);

// Adds "-o, --output" accepting the given formats; every command that
// prints state takes table (the default), json and yaml, with the same
// document in json and yaml.
CLI::Option* AddOutputFlag(CLI::App& cmd, std::string& value,
                           const std::vector<std::string>& allowed = {"table", "json", "yaml"});

// True for the machine-readable formats (json, yaml).
inline bool Structured(const std::string& output) { return output == "json" || output == "yaml"; }
// Prints `doc` on stdout as JSON (2-space indent) or block YAML, by `output`.
void PrintDocument(const nlohmann::ordered_json& doc, const std::string& output);

// Parses every "host:port" of a repeatable flag; InvalidArgument naming the flag.
Result<std::vector<Address>> ParseAddresses(const std::vector<std::string>& texts, const std::string& flag);

// Applies "NAME=HOST:PORT" pairs of `flag` to the plan's proxy listeners'
// listen addresses (several agents or proxies on one host).
Status OverrideProxyListen(plan::Plan& plan, const std::vector<std::string>& pairs, const std::string& flag);

// The admin API's bearer token: `flag` (--token) when given, else
// $LIFEBOAT_TOKEN; empty when neither is set.
std::string AdminToken(const std::string& flag);

// --plan, required, defaulting to $LIFEBOAT_PLAN: every command that reads a plan.
CLI::Option* AddPlanFlag(CLI::App& cmd, std::string& file);

// The plan's database `name`; NotFound naming the ones it has.
Result<const plan::Database*> FindDatabase(const plan::Plan& plan, const std::string& name);

// A left-aligned text table.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  std::string Render() const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// "3d4h", "5m12s", "42s": a compact age for tables.
std::string ShortDuration(double seconds);

// Registration of each command group (one file each under cli/).
void AddPlanCommands(CLI::App& app, int& exit_code);
void AddAgentCommand(CLI::App& app, int& exit_code);
void AddStatusCommand(CLI::App& app, int& exit_code);
void AddDemoCommand(CLI::App& app, int& exit_code);
void AddDnsCommands(CLI::App& app, int& exit_code);  // dns serve, check run
void AddTrafficCommands(CLI::App& app, int& exit_code);
void AddReplicateCommands(CLI::App& app, int& exit_code);
void AddBackupCommands(CLI::App& app, int& exit_code);  // repo, backup, restore
void AddFailoverCommand(CLI::App& app, int& exit_code);
void AddAppCommands(CLI::App& app, int& exit_code);  // app serve
void AddDrillCommands(CLI::App& app, int& exit_code);
void AddProxyCommands(CLI::App& app, int& exit_code);  // proxy serve
void AddDbCommands(CLI::App& app, int& exit_code);     // db status|bootstrap|rewind|promote|fence

}  // namespace lifeboat::cli
