-- wrk script: POST one Alertmanager notification (the file in $PAYLOAD) and report the run as
-- one line of JSON, latencies in microseconds.
local f = assert(io.open(os.getenv("PAYLOAD") or "/dev/null", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

if os.getenv("METHOD") == "GET" then
    wrk.method = "GET"
    wrk.body = nil
end

done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
        summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
        latency.mean))
end
