// A one-shot HTTP server on 127.0.0.1 standing in for DingTalk: it accepts one connection, keeps
// the request, and answers with a canned reply (or never answers, to provoke a timeout).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

namespace dingtalk_test
{

class MockDingTalk
{
public:
    // `reply` is the whole HTTP response; "" means: read the request, then say nothing.
    explicit MockDingTalk(std::string reply) : reply_(std::move(reply))
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
            ::listen(fd_, 4) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
            return;
        }
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }

    ~MockDingTalk()
    {
        stop_ = true;
        if (thread_.joinable()) {
            thread_.join();
        }
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }

    MockDingTalk(const MockDingTalk &) = delete;
    MockDingTalk &operator=(const MockDingTalk &) = delete;

    int port() const { return port_; }
    std::string url(const std::string &path = "/robot/send") const
    {
        return "http://127.0.0.1:" + std::to_string(port_) + path;
    }

    // The request as received; complete once the Delivery has finished.
    std::string request() const
    {
        return done_ ? request_ : std::string("(the mock has not finished reading)");
    }

    static std::string json_reply(int status, const std::string &body)
    {
        return "HTTP/1.1 " + std::to_string(status) +
               " X\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    }

private:
    // Waits up to 5 s (in slices, to notice stop_) for the socket to become readable.
    bool readable(int fd)
    {
        for (int i = 0; i < 50 && !stop_; ++i) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) > 0) {
                return true;
            }
        }
        return false;
    }

    void serve()
    {
        if (!readable(fd_)) {
            done_ = true;
            return;
        }
        const int conn = ::accept(fd_, nullptr, nullptr);
        if (conn < 0) {
            done_ = true;
            return;
        }
        std::string in;
        char buf[65536];
        while (!complete(in) && readable(conn)) {
            const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
            if (n <= 0) {
                break;
            }
            in.append(buf, static_cast<std::size_t>(n));
        }
        request_ = in;
        done_ = true;
        if (!reply_.empty()) {
            ::send(conn, reply_.data(), reply_.size(), MSG_NOSIGNAL);
        } else {
            // Silent: hold the connection until the client gives up (or the test ends).
            while (readable(conn) && ::recv(conn, buf, sizeof buf, 0) > 0) {
            }
        }
        ::shutdown(conn, SHUT_RDWR);
        ::close(conn);
    }

    static bool complete(const std::string &in)
    {
        const std::size_t end = in.find("\r\n\r\n");
        if (end == std::string::npos) {
            return false;
        }
        std::size_t length = 0;
        const std::string head = in.substr(0, end);
        for (const char *name : {"\r\nContent-Length:", "\r\ncontent-length:"}) {
            const std::size_t pos = head.find(name);
            if (pos != std::string::npos) {
                length = std::stoul(head.substr(pos + std::strlen(name)));
            }
        }
        return in.size() >= end + 4 + length;
    }

    std::string reply_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> done_{false};
    std::string request_;
};

} // namespace dingtalk_test
