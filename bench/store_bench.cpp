// The time dingtalk_store adds to one delivery of one message, in its pool threads: the
// notification's claim, the slot's reservation and its settle with the record's marks (three Lua
// scripts, three round trips) against a redis-server, on a kept connection.
//   build/store_bench PORT [COUNT]
#include "store.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s PORT [COUNT]\n", argv[0]);
        return 2;
    }
    const int count = argc > 2 ? std::atoi(argv[2]) : 5000;
    std::string error;
    auto cfg = dingtalk::parse_store_url(std::string("redis://127.0.0.1:") + argv[1], error);
    if (!cfg) {
        std::fprintf(stderr, "%s\n", error.c_str());
        return 2;
    }
    const dingtalk::Store store(*cfg);
    dingtalk::RateLimit limit;
    limit.count = 64;
    limit.window_ms = 1; // every send ends at once: the window never fills
    limit.guard_ms = 0;
    const unsigned char robot[16] = {7};
    std::vector<double> us;
    const std::vector<std::uint64_t> alerts{11, 22, 33};
    for (int i = 0; i < count; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto n = static_cast<std::uint64_t>(i) + 1;
        const auto claim = store.claim(robot, n, alerts, "bench:1", 60000);
        const auto res = store.reserve(robot, limit, 1, true);
        const dingtalk::StoreMarks marks{
            dingtalk::StoreMarks::taken, "bench:1", 60000, {{n, alerts}}};
        if (claim.kind != dingtalk::StoreClaim::mine ||
            res.kind != dingtalk::StoreReservation::now ||
            !store.settle(robot, res.member, true, false, limit, marks, error)) {
            std::fprintf(stderr, "store: %d %d %s %s %s\n", claim.kind, res.kind,
                         claim.error.c_str(), res.error.c_str(), error.c_str());
            return 1;
        }
        us.push_back(
            std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
                .count());
    }
    std::sort(us.begin(), us.end());
    std::printf("claim + reserve + settle, %d times: median %.0f us, p99 %.0f us\n", count,
                us[us.size() / 2], us[us.size() * 99 / 100]);
    return 0;
}
