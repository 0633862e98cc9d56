// Scenario 4: parse + render cost of one notification, by alert count, and the memory a
// notification allocates on its way through (every operator new and every jansson malloc).
// Then the worst 1 MiB bodies through parse + render_messages (dingtalk_max_messages 10) with
// the built-in layout and each template: time, and the most heap held at once.

#include "alert.hpp"
#include "fold.hpp"
#include "render.hpp"
#include "template.hpp"
#include "timezone.hpp"

#include <benchmark/benchmark.h>
#include <jansson.h>
#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <new>
#include <string>
#include <unistd.h>
#include <vector>

namespace
{

// Allocated in all (bytes, calls), and held now and at most (by malloc_usable_size: what free
// gives back is what malloc handed out).
std::atomic<std::size_t> g_bytes{0}, g_calls{0}, g_live{0}, g_peak{0};

void *counting_malloc(std::size_t n)
{
    g_bytes += n;
    ++g_calls;
    void *p = std::malloc(n);
    if (p != nullptr) {
        const std::size_t live = g_live += malloc_usable_size(p);
        if (live > g_peak) {
            g_peak = live;
        }
    }
    return p;
}

// Out of line, so the compiler does not pair operator new with free() and warn.
__attribute__((noinline)) void release(void *p) noexcept
{
    if (p != nullptr) {
        g_live -= malloc_usable_size(p);
    }
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
void *operator new[](std::size_t n)
{
    return operator new(n);
}
void *operator new(std::size_t n, const std::nothrow_t &) noexcept
{
    return counting_malloc(n ? n : 1);
}
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept
{
    return counting_malloc(n ? n : 1);
}
void operator delete(void *p) noexcept
{
    release(p);
}
void operator delete(void *p, std::size_t) noexcept
{
    release(p);
}
void operator delete[](void *p) noexcept
{
    release(p);
}
void operator delete[](void *p, std::size_t) noexcept
{
    release(p);
}
void operator delete(void *p, const std::nothrow_t &) noexcept
{
    release(p);
}
void operator delete[](void *p, const std::nothrow_t &) noexcept
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

// --- the worst 1 MiB bodies ----------------------------------------------------------------
// Each shape is as expensive as a body of 1 MiB can be in one way (bench/cost.py has the same
// first six, through nginx); the last three are the worst for the pages of templates: every
// kept alert as large as 1 MiB allows (128 labels and 128 annotations each), alerts each a
// little larger than a page, and tiny alerts all kept (dingtalk_max_alerts 10000).

constexpr std::size_t kMiB = std::size_t(1) << 20;

std::string fill(const std::string &head, const std::string &item, const std::string &tail,
                 std::size_t size)
{
    const std::size_t n =
        std::max<std::size_t>(1, (size - head.size() - tail.size()) / (item.size() + 1));
    std::string out = head;
    out.reserve(size);
    for (std::size_t i = 0; i < n; ++i) {
        out += i ? "," : "";
        out += item;
    }
    return out + tail;
}

std::string empty_alerts(std::size_t size)
{
    return fill(R"({"alerts":[)", "{}", "]}", size);
}

std::string status_alerts(std::size_t size)
{
    std::string b = fill(R"({"alerts":[)", R"({"status":"resolved"})", "]}", size);
    const std::string last = R"({"status":"resolved"}])";
    return b.replace(b.rfind(last), last.size(), R"({"status":"firing"}])");
}

std::string many_labels(std::size_t size)
{
    std::string labels;
    char item[32];
    for (std::size_t i = 0; 64 + labels.size() + 24 < size; ++i) {
        std::snprintf(item, sizeof item, "%s\"l%07zu\":\"v%zu\"", i ? "," : "", i, i % 10);
        labels += item;
    }
    return R"({"alerts":[{"labels":{)" + labels + "}}]}";
}

std::string labelled_alerts(std::size_t size)
{
    std::string labels;
    char item[64];
    for (int i = 0; i < 60; ++i) {
        std::snprintf(item, sizeof item, "\"label_%02d\":\"value-%02d-xxxxxxxx\",", i, i);
        labels += item;
    }
    std::string description;
    for (int i = 0; i < 4; ++i) {
        description += "node is down ";
    }
    return fill(R"({"alerts":[)",
                R"({"status":"firing","labels":{)" + labels +
                    R"("alertname":"NodeDown","severity":"critical","instance":"10.0.0.1:9100"},)"
                    R"("annotations":{"description":")" +
                    description +
                    R"("},"startsAt":"2026-11-23T16:04:05Z","endsAt":"0001-01-01T00:00:00Z",)"
                    R"("generatorURL":"http://prometheus.example:9090/graph?g0.expr=up"})",
                "]}", size);
}

std::string long_values(std::size_t size)
{
    const std::string v((size - 200) / 4, 'x');
    return R"({"alerts":[{"labels":{"alertname":")" + v + R"(","a":")" + v +
           R"("},"annotations":{"description":")" + v + R"(","b":")" + v + R"("}}]})";
}

std::string escapes(std::size_t size)
{
    std::string value;
    for (int i = 0; i < 2000; ++i) {
        value += "*_[<&\\u2028";
    }
    return fill(R"({"alerts":[)",
                R"({"labels":{"alertname":")" + value.substr(0, 11 * 272) + R"(","k":")" + value +
                    R"("},"annotations":{"description":")" + value + R"("}})",
                "]}", size);
}

// An alert of `pairs` labels and as many annotations, each value `value_bytes` long.
std::string big_alert(int pairs, std::size_t value_bytes, int serial)
{
    std::string labels = R"("alertname":"Big)" + std::to_string(serial) + R"(")",
                annotations = R"("description":"big alert")";
    char name[16];
    for (int i = 1; i < pairs; ++i) {
        std::snprintf(name, sizeof name, "k%03d", i);
        const std::string value(value_bytes, static_cast<char>('a' + (i + serial) % 26));
        labels += std::string(",\"") + name + "\":\"" + value + "\"";
        annotations += std::string(",\"") + name + "\":\"" + value + "\"";
    }
    return R"({"status":"firing","labels":{)" + labels + R"(},"annotations":{)" + annotations +
           R"(},"startsAt":"2026-11-23T16:04:05Z","generatorURL":"http://prometheus.example/g"})";
}

std::string alerts_of(std::size_t size, int pairs, std::size_t value_bytes)
{
    std::string out = R"({"alerts":[)";
    for (int i = 0;; ++i) {
        const std::string a = big_alert(pairs, value_bytes, i);
        if (out.size() + a.size() + 3 > size) {
            break;
        }
        out += (i ? "," : "") + a;
    }
    return out + "]}";
}

// 100 alerts (dingtalk_max_alerts' default) of 128 labels and 128 annotations: 1 MiB of
// values the every-label template shows in full.
std::string full_alerts(std::size_t size)
{
    return alerts_of(size, 128, (size / 100 - 256 * 10) / 256);
}

// Alerts whose every label and annotation take a little more than a page.
std::string page_alerts(std::size_t size)
{
    return alerts_of(size, 128, 70);
}

struct Shape {
    const char *name;
    std::string (*make)(std::size_t);
    std::size_t max_alerts;
};

const Shape kShapes[] = {
    {"empty alerts", empty_alerts, 100},
    {"resolved alerts, one firing last", status_alerts, 100},
    {"one alert, many labels", many_labels, 100},
    {"alerts with 60 labels", labelled_alerts, 100},
    {"long values", long_values, 100},
    {"escaping-heavy values", escapes, 100},
    {"100 alerts of 128 labels and annotations", full_alerts, 100},
    {"alerts a little over a page", page_alerts, 100},
    {"empty alerts, max_alerts 10000", empty_alerts, 10000},
};

// The templates of the gallery and the one that lists every label (a fixture).
const char *const kTemplates[] = {
    nullptr, // the built-in layout
    "templates/compact.mustache",
    "templates/default.mustache",
    "templates/english.mustache",
    "templates/go-bridge.mustache",
    "templates/oncall.mustache",
    "t/fixtures/every-label.mustache",
    "t/fixtures/go-features.mustache",
};

// A title template that names every alert shown: its cost grows with the page.
const char *const kTitleTemplate = "[{{status_upper}}{{#has_firing}}:{{firing_count}}"
                                   "{{/has_firing}}] {{group_label_values}}{{#alerts}} "
                                   "{{alertname}}{{/alerts}}";

// The repository: two levels above build/render_bench.
std::string repo_path(const std::string &file)
{
    char exe[4096];
    const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    std::string dir(exe, n > 0 ? static_cast<std::size_t>(n) : 0);
    for (int up = 0; up < 2; ++up) {
        dir = dir.substr(0, dir.rfind('/'));
    }
    return dir + "/" + file;
}

std::shared_ptr<const dingtalk::Template> load_template(const std::string &source,
                                                        dingtalk::Template::Kind kind)
{
    std::string error;
    auto t = dingtalk::Template::parse(source, kind, error);
    if (!t) {
        std::fprintf(stderr, "template: %s\n", error.c_str());
        std::abort();
    }
    return t;
}

// A notification sent as one message, folded as the robot's room folds at most: its section
// with kMaxFolded - 1 copies of it (a storm of notifications that large); how many went in.
std::size_t fold_copies(const dingtalk::Notification &n, const dingtalk::RenderOptions &opt,
                        const std::vector<dingtalk::Message> &ms)
{
    const std::optional<dingtalk::Section> s = dingtalk::section_of(n, opt, ms[0], ms.size());
    if (!s) {
        return 0;
    }
    std::size_t taken = 0;
    const dingtalk::Message m =
        dingtalk::render_fold(std::vector<dingtalk::Section>(dingtalk::kMaxFolded, *s), opt, taken);
    benchmark::DoNotOptimize(m.request_body.data());
    return taken;
}

void BM_WorstBody(benchmark::State &state)
{
    const Shape &shape = kShapes[state.range(0)];
    const char *file = kTemplates[state.range(1)];
    const std::string body = shape.make(kMiB);
    dingtalk::Settings settings;
    settings.timezone = std::make_shared<const dingtalk::TimeZone>(shanghai());
    settings.max_messages = 10;
    settings.limits.max_alerts = shape.max_alerts;
    if (file != nullptr) {
        std::ifstream in(repo_path(file), std::ios::binary);
        if (!in) {
            state.SkipWithError(("cannot read " + repo_path(file)).c_str());
            return;
        }
        settings.text_template = load_template(
            std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()),
            dingtalk::Template::Kind::text);
        settings.title_template = load_template(kTitleTemplate, dingtalk::Template::Kind::title);
    }
    dingtalk::RenderOptions opt;
    opt.settings = &settings;
    opt.now = dingtalk::TimePoint(std::chrono::seconds(1795450000));
    std::size_t peak = 0, messages = 0, shown = 0, out = 0, folded = 0;
    std::chrono::steady_clock::duration fold_time{};
    for (auto _ : state) {
        g_peak = g_live.load();
        const std::size_t live0 = g_live;
        dingtalk::ParseResult r = dingtalk::parse_notification(body, settings.limits);
        if (!r.notification) {
            state.SkipWithError(r.error.c_str());
            break;
        }
        const std::vector<dingtalk::Message> ms = dingtalk::render_messages(*r.notification, opt);
        benchmark::DoNotOptimize(ms.data());
        const auto fold_start = std::chrono::steady_clock::now();
        folded = fold_copies(*r.notification, opt, ms);
        fold_time = std::max(fold_time, std::chrono::steady_clock::now() - fold_start);
        peak = std::max(peak, g_peak - live0);
        messages = ms.size();
        shown = out = 0;
        for (const auto &m : ms) {
            shown += m.shown;
            out += m.request_body.size();
        }
    }
    state.SetLabel(std::string(shape.name) + ", " + (file ? file : "built-in"));
    state.counters["payload_bytes"] = static_cast<double>(body.size());
    state.counters["peak_heap_bytes"] = static_cast<double>(peak);
    state.counters["messages"] = static_cast<double>(messages);
    state.counters["shown"] = static_cast<double>(shown);
    state.counters["message_bytes"] = static_cast<double>(out);
    state.counters["folded"] = static_cast<double>(folded);
    state.counters["fold_ms_max"] = std::chrono::duration<double, std::milli>(fold_time).count();
}

void worst_bodies(benchmark::internal::Benchmark *b)
{
    for (std::size_t s = 0; s < std::size(kShapes); ++s) {
        for (std::size_t t = 0; t < std::size(kTemplates); ++t) {
            b->Args({static_cast<long>(s), static_cast<long>(t)});
        }
    }
}

} // namespace

BENCHMARK(BM_WorstBody)->Apply(worst_bodies)->Unit(benchmark::kMillisecond);

BENCHMARK(BM_ParseRender)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_Parse)->Arg(1)->Arg(10)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

int main(int argc, char **argv)
{
    json_set_alloc_funcs(counting_malloc, release);
    json_object_seed(1);
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
