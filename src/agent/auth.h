// Admin API helpers shared by the agent's services: JSON errors and the
// bearer token that guards every changing request (routing controls,
// replication promote/reverse).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/result.h"
#include "net/http.h"
#include "plan/plan.h"

namespace lifeboat::agent {

net::HttpResponse JsonError(int status, const std::string& message);
// The status for the error's code (HttpStatus, core/result.h) and its message.
net::HttpResponse JsonError(const Error& error);

// The token changing requests need: LIFEBOAT_TOKEN, else the plan's
// routing_controls.token_file; empty when neither is set.
Result<std::string> LoadToken(const plan::Plan& plan);

// True when an Authorization header value carries `token` with the Bearer
// scheme (any case). Takes the same time whatever `authorization` holds.
bool TokenMatches(std::string_view authorization, const std::string& token);

// nullopt when `req` carries "Authorization: Bearer <token>"; otherwise the
// 403 (this agent has no token) or 401 to send back. `what` names the change
// ("routing-control changes").
std::optional<net::HttpResponse> CheckToken(const net::HttpRequest& req, const std::string& token,
                                            const std::string& what);

}  // namespace lifeboat::agent
