// What the hand-off to a pool thread and back costs by itself, on this machine: a model of
// nginx's thread pool (ngx_thread_pool.c): the event loop puts a task on a queue under a mutex
// and signals a condition variable one of the pool's threads waits on; the thread runs it (here:
// nothing), puts it on the done queue and writes to an eventfd (ngx_notify) the loop waits for
// in epoll_wait. Prints the round trip's percentiles and the CPU it took, as one JSON line.
// Usage: handoff_bench [threads]
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace
{

double cpu_seconds()
{
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class Pool
{
public:
    explicit Pool(int threads) : notify_(eventfd(0, EFD_NONBLOCK)), epoll_(epoll_create1(0))
    {
        epoll_event ev{};
        ev.events = EPOLLIN;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, notify_, &ev);
        for (int i = 0; i < threads; ++i) {
            threads_.emplace_back([this] { work(); });
        }
    }

    ~Pool()
    {
        {
            const std::lock_guard<std::mutex> guard(mutex_);
            stop_ = true;
        }
        cond_.notify_all();
        for (std::thread &t : threads_) {
            t.join();
        }
        close(notify_);
        close(epoll_);
    }

    Pool(const Pool &) = delete;
    Pool &operator=(const Pool &) = delete;

    // One task there and back, as the event loop sees it.
    void round_trip()
    {
        {
            const std::lock_guard<std::mutex> guard(mutex_);
            queue_.push_back(1);
        }
        cond_.notify_one();
        epoll_event ev{};
        while (epoll_wait(epoll_, &ev, 1, -1) != 1) {
        }
        std::uint64_t n = 0;
        if (read(notify_, &n, sizeof n) != sizeof n) {
            return;
        }
        const std::lock_guard<std::mutex> guard(done_mutex_);
        done_.clear();
    }

private:
    void work()
    {
        for (;;) {
            int task = 0;
            {
                std::unique_lock<std::mutex> lock(mutex_);
                cond_.wait(lock, [this] { return stop_ || !queue_.empty(); });
                if (stop_) {
                    return;
                }
                task = queue_.front();
                queue_.pop_front();
            }
            {
                const std::lock_guard<std::mutex> guard(done_mutex_);
                done_.push_back(task);
            }
            const std::uint64_t one = 1;
            if (write(notify_, &one, sizeof one) != sizeof one) {
                return;
            }
        }
    }

    int notify_;
    int epoll_;
    std::mutex mutex_;
    std::condition_variable cond_;
    std::deque<int> queue_;
    std::mutex done_mutex_;
    std::vector<int> done_;
    bool stop_ = false;
    std::vector<std::thread> threads_;
};

} // namespace

int main(int argc, char **argv)
{
    constexpr int kRounds = 20000;
    Pool pool(argc > 1 ? std::atoi(argv[1]) : 4); // threads; 4: as nginx.conf.example declares
    for (int i = 0; i < 1000; ++i) {
        pool.round_trip();
    }
    std::vector<double> us;
    us.reserve(kRounds);
    const double cpu0 = cpu_seconds();
    for (int i = 0; i < kRounds; ++i) {
        const auto start = std::chrono::steady_clock::now();
        pool.round_trip();
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                .count());
    }
    const double cpu_us = (cpu_seconds() - cpu0) / kRounds * 1e6;
    std::sort(us.begin(), us.end());
    std::printf("{\"p50_us\":%.1f,\"p99_us\":%.1f,\"cpu_us\":%.1f}\n", us[us.size() / 2],
                us[us.size() * 99 / 100], cpu_us);
}
