// Scenario 4: parse + render cost of one notification, by alert count, and the memory a
// notification allocates on its way through (every operator new and every jansson malloc).

#include "alert.hpp"
#include "render.hpp"
#include "timezone.hpp"

#include <benchmark/benchmark.h>
#include <jansson.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>

namespace
{

std::atomic<std::size_t> g_bytes{0}, g_calls{0};

void *counting_malloc(std::size_t n)
{
    g_bytes += n;
    ++g_calls;
    return std::malloc(n);
}

// Out of line, so the compiler does not pair operator new with free() and warn.
__attribute__((noinline)) void release(void *p) noexcept
{
    std::free(p);
}

} // namespace

void *operator new(std::size_t n)
{
    void *p = counting_malloc(n ? n : 1);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}
void operator delete(void *p) noexcept
{
    release(p);
}
void operator delete(void *p, std::size_t) noexcept
{
    release(p);
}

namespace
{

// An Alertmanager notification of `n` alerts like kube-prometheus sends (about 600 bytes each).
std::string payload(int n)
{
    std::string alerts;
    for (int i = 0; i < n; ++i) {
        const std::string pod = "api-7d9f8b6c5d-" + std::to_string(10000 + i);
        alerts +=
            std::string(i ? "," : "") +
            R"({"status":"firing","labels":{"alertname":"KubePodCrashLooping","severity":"critical","namespace":"kube-ops","pod":")" +
            pod + R"(","container":"api","endpoint":"http","instance":"10.244.1.)" +
            std::to_string(i % 250) +
            R"(:8080","job":"kube-state-metrics","prometheus":"monitoring/k8s","service":"kube-state-metrics"},"annotations":{"description":"Pod kube-ops/)" +
            pod +
            R"( (api) is in waiting state (reason: \"CrashLoopBackOff\").","runbook_url":"https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping","summary":"Pod is crash looping."},"startsAt":"2026-11-23T16:04:05.123456789Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://prometheus.example:9090/graph?g0.expr=max_over_time%28kube_pod_container_status_waiting_reason%7Breason%3D%22CrashLoopBackOff%22%7D%5B5m%5D%29+%3E%3D+1&g0.tab=1","fingerprint":")" +
            std::to_string(1000000 + i) + R"("})";
    }
    return R"({"version":"4","groupKey":"{}:{alertname=\"KubePodCrashLooping\"}","truncatedAlerts":0,"status":"firing","receiver":"dingtalk","groupLabels":{"alertname":"KubePodCrashLooping"},"commonLabels":{"alertname":"KubePodCrashLooping","severity":"critical"},"commonAnnotations":{},"externalURL":"http://alertmanager.example:9093","alerts":[)" +
           alerts + "]}";
}

const dingtalk::TimeZone &shanghai()
{
    static const dingtalk::TimeZone zone = [] {
        std::string error;
        return *dingtalk::TimeZone::find("Asia/Shanghai", error);
    }();
    return zone;
}

void BM_ParseRender(benchmark::State &state)
{
    const std::string body = payload(static_cast<int>(state.range(0)));
    dingtalk::Settings settings;
    settings.timezone = std::make_shared<const dingtalk::TimeZone>(shanghai());
    dingtalk::RenderOptions opt;
    opt.settings = &settings;
    std::size_t bytes = 0, calls = 0, out = 0;
    for (auto _ : state) {
        const std::size_t b0 = g_bytes, c0 = g_calls;
        dingtalk::ParseResult r = dingtalk::parse_notification(body);
        dingtalk::Message m = dingtalk::render_message(*r.notification, opt);
        benchmark::DoNotOptimize(m.request_body.data());
        bytes = g_bytes - b0;
        calls = g_calls - c0;
        out = m.request_body.size();
    }
    state.counters["payload_bytes"] = static_cast<double>(body.size());
    state.counters["alloc_bytes"] = static_cast<double>(bytes);
    state.counters["allocs"] = static_cast<double>(calls);
    state.counters["message_bytes"] = static_cast<double>(out);
}

void BM_Parse(benchmark::State &state)
{
    const std::string body = payload(static_cast<int>(state.range(0)));
    for (auto _ : state) {
        dingtalk::ParseResult r = dingtalk::parse_notification(body);
        benchmark::DoNotOptimize(r.notification->alerts.data());
    }
}

} // namespace

BENCHMARK(BM_ParseRender)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Parse)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

int main(int argc, char **argv)
{
    json_set_alloc_funcs(counting_malloc, std::free);
    json_object_seed(1);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
