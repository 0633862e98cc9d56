// The connections to DingTalk that the sending threads of one process share: how many are
// opened for sequential and concurrent requests from many threads, and when an idle one closes.
#include "sender.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace dingtalk;

namespace
{

// An HTTP/1.1 server that keeps connections open and answers every POST with DingTalk's "ok";
// it counts the connections it accepted and those the client closed.
class KeepAliveServer
{
public:
    KeepAliveServer()
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
            ::listen(fd_, 64) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
            return;
        }
        port_ = ntohs(addr.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    ~KeepAliveServer()
    {
        stop_ = true;
        acceptor_.join();
        const std::lock_guard<std::mutex> guard(mutex_);
        for (std::thread &t : connections_) {
            t.join();
        }
        ::close(fd_);
    }

    KeepAliveServer(const KeepAliveServer &) = delete;
    KeepAliveServer &operator=(const KeepAliveServer &) = delete;

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/robot/send"; }
    int accepted() const { return accepted_; }
    int closed() const { return closed_; }
    int received() const { return received_; }
    // The n-th request (counting from 1) is read whole, then its connection closed unanswered.
    void hang_up_at(int n) { hang_up_at_ = n; }

private:
    static bool readable(int fd, const std::atomic<bool> &stop)
    {
        while (!stop) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 50) > 0) {
                return true;
            }
        }
        return false;
    }

    void accept_loop()
    {
        while (readable(fd_, stop_)) {
            const int c = ::accept(fd_, nullptr, nullptr);
            if (c < 0) {
                continue;
            }
            ++accepted_;
            const std::lock_guard<std::mutex> guard(mutex_);
            connections_.emplace_back([this, c] { serve(c); });
        }
    }

    // One request after another: the head up to its blank line, then Content-Length bytes.
    void serve(int fd)
    {
        static const std::string ok = "{\"errcode\":0,\"errmsg\":\"ok\"}";
        static const std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                         "Content-Length: " +
                                         std::to_string(ok.size()) + "\r\n\r\n" + ok;
        std::string in;
        char buf[4096];
        while (readable(fd, stop_)) {
            const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) {
                ++closed_;
                break;
            }
            in.append(buf, static_cast<std::size_t>(n));
            const std::size_t head = in.find("\r\n\r\n");
            const std::size_t cl = in.find("Content-Length: ");
            if (head == std::string::npos || cl == std::string::npos) {
                continue;
            }
            const std::size_t length = std::stoul(in.substr(cl + 16));
            if (in.size() >= head + 4 + length) {
                in.erase(0, head + 4 + length);
                if (++received_ == hang_up_at_ ||
                    ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL) < 0) {
                    break;
                }
            }
        }
        ::close(fd);
    }

    int fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::atomic<int> closed_{0};
    std::atomic<int> received_{0};
    std::atomic<int> hang_up_at_{0};
    std::thread acceptor_;
    std::mutex mutex_;
    std::vector<std::thread> connections_;
};

HttpRequest request(const KeepAliveServer &server, std::chrono::seconds keepalive)
{
    HttpRequest req;
    req.url = server.url();
    req.body = "{\"msgtype\":\"markdown\"}";
    req.timeout = std::chrono::milliseconds(3000);
    req.keepalive = keepalive;
    return req;
}

// Sends from a thread of its own, as a pool thread would.
HttpReply post_from_a_thread(const HttpRequest &req)
{
    HttpReply reply;
    std::thread([&] { reply = http_post(req); }).join();
    return reply;
}

class Connections : public ::testing::Test
{
protected:
    static void SetUpTestSuite() { ASSERT_TRUE(global_init()); }
};

} // namespace

TEST_F(Connections, SequentialRequestsFromManyThreadsShareOneConnection)
{
    KeepAliveServer server;
    for (int i = 0; i < 20; ++i) {
        const HttpReply reply = post_from_a_thread(request(server, std::chrono::seconds(60)));
        ASSERT_EQ(reply.transport, Transport::ok) << reply.error;
        EXPECT_EQ(reply.status, 200);
    }
    EXPECT_EQ(server.accepted(), 1) << "one thread after another: one kept-alive connection";
}

TEST_F(Connections, ConcurrentRequestsOpenNoMoreThanTheirConcurrency)
{
    KeepAliveServer server;
    constexpr int kConcurrency = 4;
    std::atomic<int> failed{0};
    for (int round = 0; round < 10; ++round) {
        std::vector<std::thread> senders;
        for (int i = 0; i < kConcurrency; ++i) {
            senders.emplace_back([&] {
                if (http_post(request(server, std::chrono::seconds(60))).status != 200) {
                    ++failed;
                }
            });
        }
        for (std::thread &t : senders) {
            t.join();
        }
    }
    EXPECT_EQ(failed, 0);
    EXPECT_GE(server.accepted(), 1);
    EXPECT_LE(server.accepted(), kConcurrency) << "40 requests from 40 threads, 4 at a time";
}

TEST_F(Connections, AnIdleConnectionIsClosedAfterTheKeepaliveTimeout)
{
    KeepAliveServer server;
    const HttpRequest req = request(server, std::chrono::seconds(1));
    ASSERT_EQ(post_from_a_thread(req).status, 200);
    ASSERT_EQ(post_from_a_thread(req).status, 200);
    EXPECT_EQ(server.accepted(), 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1200));
    const HttpReply reply = post_from_a_thread(req);
    ASSERT_EQ(reply.status, 200) << reply.error;
    EXPECT_EQ(reply.new_connections, 1);
    EXPECT_EQ(server.accepted(), 2) << "the idle connection was not used after its time";
    for (int i = 0; i < 40 && server.closed() < 1; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(server.closed(), 1) << "and it was closed, not left open";
}

TEST_F(Connections, KeepaliveZeroClosesEachConnectionAfterItsRequest)
{
    KeepAliveServer server;
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(post_from_a_thread(request(server, std::chrono::seconds(0))).status, 200);
    }
    EXPECT_EQ(server.accepted(), 3);
}

TEST_F(Connections, TheSweepClosesIdleConnectionsPastTheirTimeAndSaysWhenTheNextIsDue)
{
    using Clock = std::chrono::steady_clock;
    KeepAliveServer server;
    const Clock::time_point sent = Clock::now();
    ASSERT_EQ(post_from_a_thread(request(server, std::chrono::seconds(1))).status, 200);
    const auto next = close_idle_connections();
    ASSERT_TRUE(next.has_value()) << "a connection is kept alive";
    EXPECT_LE(next->count(), 1000) << "ours is due within its keep-alive (others may be sooner)";
    EXPECT_EQ(server.closed(), 0);
    while (server.closed() < 1 && Clock::now() - sent < std::chrono::seconds(3)) {
        close_idle_connections(); // as the worker's timer does, with no request in between
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(server.closed(), 1) << "closed by the sweep";
    EXPECT_GE(Clock::now() - sent, std::chrono::seconds(1)) << "not before its time";
}

// libcurl sends a request again by itself when a kept-alive connection closes before any answer:
// after the whole request went out, DingTalk may have posted it, so that is refused, and the
// reply says the whole request went out (the caller decides whether it goes once more).
TEST(NoResend, AKeptAliveConnectionThatClosesUnansweredIsNotResentByLibcurl)
{
    ASSERT_TRUE(global_init());
    KeepAliveServer server;
    const HttpRequest req = request(server, std::chrono::seconds(60));
    ASSERT_EQ(http_post(req).status, 200);
    server.hang_up_at(2);
    const HttpReply second = http_post(req); // on the kept-alive connection
    EXPECT_NE(second.transport, Transport::ok);
    EXPECT_EQ(second.status, 0) << "no answer";
    EXPECT_TRUE(second.whole);
    EXPECT_EQ(server.received(), 2) << "the request reached the server once, and only once";

    HttpRequest fresh = req;
    fresh.fresh_connection = true;
    EXPECT_EQ(http_post(fresh).status, 200);
    EXPECT_EQ(server.received(), 3);
}
