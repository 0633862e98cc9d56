#!/usr/bin/env bash
# Posts a sample Alertmanager notification to the module: first firing, then resolved.
#   [WEBHOOK_TOKEN=<bearer token>] [DINGTALK_PORT=5000] scripts/send-sample.sh [URL]
# URL: default http://127.0.0.1:$DINGTALK_PORT/, where `make run` (scripts/run-example.sh) listens.
# WEBHOOK_TOKEN: when the webhook asks for Alertmanager's bearer token (dingtalk_auth_bearer_file).
set -euo pipefail
url=${1:-http://127.0.0.1:${DINGTALK_PORT:-5000}/}
auth=()
if [ -n "${WEBHOOK_TOKEN:-}" ]; then
    auth=(-H "Authorization: Bearer $WEBHOOK_TOKEN")
fi
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
start=$(date -u -d '-5 min' +%Y-%m-%dT%H:%M:%SZ)

payload() {  # $1 = firing|resolved, $2 = endsAt
    cat <<JSON
{"version":"4","groupKey":"{}:{alertname=\"KubePodCrashLooping\"}","truncatedAlerts":0,
 "status":"$1","receiver":"dingtalk",
 "groupLabels":{"alertname":"KubePodCrashLooping"},
 "commonLabels":{"alertname":"KubePodCrashLooping","severity":"critical","namespace":"kube-ops"},
 "commonAnnotations":{},"externalURL":"http://alertmanager.example:9093",
 "alerts":[
  {"status":"$1","labels":{"alertname":"KubePodCrashLooping","severity":"critical",
    "namespace":"kube-ops","pod":"api-7d9f8b-x2x4z","container":"api","job":"kube-state-metrics"},
   "annotations":{"message":"Pod kube-ops/api-7d9f8b-x2x4z (api) is restarting 2.1 times / 5 minutes."},
   "startsAt":"$start","endsAt":"$2",
   "generatorURL":"http://prometheus.example:9090/graph?g0.expr=increase%28kube_pod_container_status_restarts_total%5B5m%5D%29+%3E+0",
   "fingerprint":"5f1c2b9a7e3d4c10"},
  {"status":"$1","labels":{"alertname":"KubePodCrashLooping","severity":"critical",
    "namespace":"kube-ops","pod":"worker-0","container":"worker","job":"kube-state-metrics"},
   "annotations":{"message":"Pod kube-ops/worker-0 (worker) is restarting 1.4 times / 5 minutes."},
   "startsAt":"$start","endsAt":"$2",
   "generatorURL":"http://prometheus.example:9090/graph?g0.expr=up",
   "fingerprint":"5f1c2b9a7e3d4c11"}]}
JSON
}

echo "firing:"
payload firing 0001-01-01T00:00:00Z |
    curl -sS -X POST -H 'Content-Type: application/json' "${auth[@]}" --data-binary @- "$url"
sleep 1
echo "resolved:"
payload resolved "$now" |
    curl -sS -X POST -H 'Content-Type: application/json' "${auth[@]}" --data-binary @- "$url"
