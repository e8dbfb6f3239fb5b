#include "net/http.h"

#include <gtest/gtest.h>

#include <thread>

namespace lifeboat::net {
namespace {

using namespace std::chrono_literals;

class HttpTest : public ::testing::Test {
 protected:
  void Start(HttpHandler h, HttpServerOptions o = {}) {
    server_ = std::make_unique<HttpServer>(io_, std::move(h), o);
    ASSERT_TRUE(server_->Listen(Address{"127.0.0.1", 0}).ok());
    work_.emplace(io_.get_executor());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    if (server_) server_->Stop();
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }
  std::string Url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(server_->port()) + path; }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
};

TEST_F(HttpTest, RoutesRequestsAndKeepsHeadersAndBody) {
  Start([](const HttpRequest& r) {
    return HttpResponse::Json(201, "{\"method\":\"" + r.method + "\",\"path\":\"" + r.path + "\",\"q\":\"" +
                                       r.query + "\",\"auth\":\"" + r.Header("authorization") + "\",\"body\":\"" +
                                       r.body + "\"}");
  });
  auto r = Fetch("POST", Url("/v1/x?a=1"), 2s, "hello", {"Authorization: Bearer t"});
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->content_type, "application/json");
  EXPECT_EQ(r->body, R"({"method":"POST","path":"/v1/x","q":"a=1","auth":"Bearer t","body":"hello"})");
}

TEST_F(HttpTest, OversizedBodyIs413) {
  HttpServerOptions o;
  o.max_body_bytes = 10;
  Start([](const HttpRequest&) { return HttpResponse::Text(200, "ok"); }, o);
  auto r = Fetch("POST", Url("/"), 2s, std::string(100, 'x'));
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 413);
}

TEST_F(HttpTest, TakenAddressIsAClearError) {
  Start([](const HttpRequest&) { return HttpResponse::Text(200, "ok"); });
  HttpServer second(io_, [](const HttpRequest&) { return HttpResponse::Text(200, "ok"); });
  auto s = second.Listen(Address{"127.0.0.1", server_->port()});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), Code::kFailedPrecondition);
  EXPECT_NE(s.error().message().find("already in use"), std::string::npos);
}

TEST(HttpClient, NothingListeningIsUnavailable) {
  boost::asio::io_context io;
  HttpServer s(io, [](const HttpRequest&) { return HttpResponse::Text(200, ""); });
  ASSERT_TRUE(s.Listen(Address{"127.0.0.1", 0}).ok());
  uint16_t port = s.port();
  s.Stop();
  io.run();  // runs the close
  auto r = Fetch("GET", "http://127.0.0.1:" + std::to_string(port) + "/", 1s);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Code::kUnavailable);
}

TEST(HttpServerListen, ForeignAddressIsInvalidArgument) {
  boost::asio::io_context io;
  HttpServer s(io, [](const HttpRequest&) { return HttpResponse::Text(200, ""); });
  auto st = s.Listen(Address{"192.0.2.1", 7700});  // TEST-NET-1: never local
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace lifeboat::net
