#include "net/http.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

// A connection from `from` (any 127/8 address) that sent a partial request.
int PartialRequest(const char* from, uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a = {};
  a.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &a.sin_addr);
  sockaddr_in to = a;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  const char head[] = "GET /v1/status HTTP/1.1\r\nHost: x\r\n";  // never finished
  if (::send(fd, head, sizeof head - 1, MSG_NOSIGNAL) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// 256 idle partial requests locked everyone out of /healthz, status, traffic
// and promote for 30 s at a time.
TEST_F(HttpTest, IdlePartialRequestsDoNotLockOutOthers) {
  HttpServerOptions o;
  o.max_connections = 16;
  o.max_connections_per_address = 4;
  Start([](const HttpRequest&) { return HttpResponse::Text(200, "ok"); }, o);
  std::vector<int> slow;
  for (int host = 2; host < 12; ++host) {
    std::string from = "127.0.0." + std::to_string(host);
    for (int i = 0; i < 8; ++i) {
      int fd = PartialRequest(from.c_str(), server_->port());
      if (fd >= 0) slow.push_back(fd);
    }
  }
  ASSERT_EQ(slow.size(), 80u);
  auto r = Fetch("GET", Url("/healthz"), 2s);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_GE(server_->refused(), 80u - 16u) << "over the per-address limit, or evicted";
  for (int fd : slow) ::close(fd);
}

TEST_F(HttpTest, RequestDeadlineClosesATrickler) {
  HttpServerOptions o;
  o.request_timeout = 300ms;
  Start([](const HttpRequest&) { return HttpResponse::Text(200, "ok"); }, o);
  int fd = PartialRequest("127.0.0.1", server_->port());
  ASSERT_GE(fd, 0);
  struct pollfd p = {fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1) << "the server never closed the connection";
  char buf[64];
  EXPECT_EQ(::recv(fd, buf, sizeof buf, 0), 0) << "closed, with no answer";
  ::close(fd);
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
