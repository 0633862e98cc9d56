// A stand-in for Alertmanager that answers a list of replies, one connection each (the
// silencer's and the "until resolved" check's several calls).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace dingtalk_test
{

// Answers the i-th connection with replies[i] (one request each, then closes); keeps the
// requests' first lines. With fewer replies than connections, the rest are refused.
class MockSequence
{
public:
    explicit MockSequence(std::vector<std::string> replies) : replies_(std::move(replies))
    {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 ||
            ::listen(fd_, 4) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len) != 0) {
            return;
        }
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { serve(); });
    }
    ~MockSequence()
    {
        if (thread_.joinable()) {
            thread_.join();
        }
        ::close(fd_);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    const std::vector<std::string> &requests() const { return requests_; }

private:
    void serve()
    {
        for (const std::string &reply : replies_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 3000) <= 0) {
                return;
            }
            const int conn = ::accept(fd_, nullptr, nullptr);
            std::string in;
            char buf[8192];
            while (in.find("\r\n\r\n") == std::string::npos || !whole(in)) {
                pollfd c{conn, POLLIN, 0};
                const ssize_t n = ::poll(&c, 1, 3000) > 0 ? ::recv(conn, buf, sizeof buf, 0) : 0;
                if (n <= 0) {
                    break;
                }
                in.append(buf, static_cast<std::size_t>(n));
            }
            requests_.push_back(in);
            ::send(conn, reply.data(), reply.size(), MSG_NOSIGNAL);
            ::shutdown(conn, SHUT_RDWR);
            ::close(conn);
        }
    }
    static bool whole(const std::string &in)
    {
        const std::size_t end = in.find("\r\n\r\n");
        const std::size_t at = in.find("Content-Length: ");
        const std::size_t length =
            at == std::string::npos || at > end ? 0 : std::stoul(in.substr(at + 16));
        return in.size() >= end + 4 + length;
    }

    std::vector<std::string> replies_;
    std::vector<std::string> requests_;
    int fd_ = -1;
    int port_ = 0;
    std::thread thread_;
};

} // namespace dingtalk_test
