// "Until resolved" silences (issue #25), in the worker's event loop. The action location keeps
// the silences it made "until resolved" in the shared zone (resolved.hpp's table). Every worker
// has a timer (cancelable: it never holds up a worker's exit); when it fires, the worker that
// finds the check due (under the zone's mutex) takes it: a task of the action location's thread
// pool asks Alertmanager, for each kept silence, whether its alert still fires, and expires the
// silences of alerts that do not. The completion handler, back in the worker's loop, updates the
// table, logs one line and counts one dingtalk_actions_total{action="expire"} per silence that
// ended (or whose check failed). Alertmanager sends no resolved notification for a silenced
// alert, so the module asks (docs/design.md).

#include "ngx_http_dingtalk_zone.hpp"

#include "resolved.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace
{

// A round's thread starts no check after this (the rest wait for the next round, the longest
// unchecked first), so that a slow Alertmanager cannot keep a thread for long.
constexpr std::chrono::milliseconds kRoundBudget{20000};
// How long a round may run before another worker may start one: its budget, then one check's
// four calls to their timeouts (5 s + 5 s each), and a slack.
constexpr ngx_msec_t kRoundLease = 20000 + 4 * 10000 + 5000;
// The keep-alive of the connection to Alertmanager (the sender's default).
constexpr time_t kAlertmanagerKeepalive = 60;

struct check_item_t {
    dingtalk::UntilResolved entry;
    const ngx_http_dingtalk_alertmanager_t *am;
    bool done = false;       // checked in this round (not skipped)
    bool skip = false;       // another instance sharing dingtalk_store checks it this round
    bool stored_now = false; // copied to dingtalk_store in this round
    dingtalk::Lift lift;
};

// What the round's thread needs and answers; owned by the worker's round (new, deleted by the
// completion handler; a worker that exits while its thread runs leaves it behind).
struct check_job_t {
    std::vector<check_item_t> items;
    std::vector<const ngx_http_dingtalk_alertmanager_t *> shared; // with dingtalk_store
    std::string owner;                     // this instance, for the store's lock of a round
    std::uint64_t lease_ms = 0;            // how long the store's lock holds
    std::vector<std::string> store_errors; // dingtalk_store calls that failed, for the log
    std::exception_ptr thrown;
};

// The worker's round: one at a time, its task reused (nginx allows it once complete).
struct round_t {
    ngx_event_t timer;
    ngx_connection_t ident; // nginx's debug log reads a timer's data as a connection
    ngx_thread_task_t task;
    check_job_t *job;
    ngx_http_dingtalk_main_conf_t *mcf;
    dingtalk::UntilResolved due[dingtalk::kMaxUntilResolved]; // copied out under the lock
};
round_t *round_of_worker = nullptr;

zone_ctx_t *zone_ctx(const round_t &round)
{
    return ngx_http_dingtalk_zone_ctx_of(round.mcf->zone);
}

const ngx_http_dingtalk_alertmanager_t *alertmanager(const round_t &round, uint64_t identity)
{
    const auto *ams =
        static_cast<const ngx_http_dingtalk_alertmanager_t *>(round.mcf->alertmanagers->elts);
    for (ngx_uint_t i = 0; i < round.mcf->alertmanagers->nelts; ++i) {
        if (ams[i].identity == identity) {
            return &ams[i];
        }
    }
    return nullptr;
}

// Whether this worker checks now: the check is due and nobody runs one. The entries to check
// are copied to round.due, n of them.
bool claim(round_t &round, std::size_t &n)
{
    zone_ctx_t *ctx = zone_ctx(round);
    const uint64_t now = ngx_http_dingtalk_now_ms();
    bool mine = false;
    n = 0;
    ngx_shmtx_lock(&ctx->shpool->mutex);
    zone_shared_t *sh = ctx->sh;
    if (now >= sh->resolved_due_ms && now >= sh->resolved_lease_ms) {
        // 90%: the workers' timers run apart by a few ms; a round is never skipped for it
        sh->resolved_due_ms = now + round.mcf->check_interval * 9 / 10;
        dingtalk::drop_ended(sh->until_resolved, ngx_time());
        n = dingtalk::due(sh->until_resolved, ngx_time(), round.due);
        mine = true;
        sh->resolved_lease_ms = now + kRoundLease;
        sh->resolved_lease_pid = ngx_pid;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return mine;
}

// Ends (or, while this worker's round runs, renews) the lease, only if it is still this
// worker's: a round that outlived it must not end another worker's.
void hold_lease(round_t &round, bool renew)
{
    zone_ctx_t *ctx = zone_ctx(round);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    if (ctx->sh->resolved_lease_pid == ngx_pid) {
        ctx->sh->resolved_lease_ms = renew ? ngx_http_dingtalk_now_ms() + kRoundLease : 0;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

void release_lease(round_t &round)
{
    hold_lease(round, false);
}

// In the thread: dingtalk_store's part of the round for one Alertmanager. What only this
// instance kept is copied there; then, if this instance has the store's round, the silences
// every instance kept are checked too, else the ones in the store are left to the instance
// that has it. A store that fails leaves the zone's copy to be checked here.
void share_round(check_job_t &job, const ngx_http_dingtalk_alertmanager_t *am)
{
    std::string error;
    const std::size_t ours = job.items.size();
    for (std::size_t i = 0; i < ours; ++i) {
        check_item_t &item = job.items[i];
        if (item.am == am && !item.entry.stored) {
            const dingtalk::UntilResolved &e = item.entry;
            item.stored_now = am->store->keep_silence(
                am->identity, {e.id, e.fingerprint, e.hard_end, e.kept_at}, error);
        }
    }
    const dingtalk::StoreRound round =
        am->store->silence_round(am->identity, job.owner, job.lease_ms);
    for (std::size_t i = 0; i < ours && round.kind == dingtalk::StoreRound::other; ++i) {
        check_item_t &item = job.items[i];
        item.skip = item.am == am && (item.entry.stored || item.stored_now);
    }
    for (const dingtalk::StoredSilence &s : round.silences) {
        const auto same = [&s](const check_item_t &item) { return s.id == item.entry.id; };
        check_item_t item{{}, am, false, false, false, {}};
        if (std::none_of(job.items.begin(), job.items.end(), same) &&
            dingtalk::make_entry(s.id, s.fingerprint, am->identity, s.hard_end, item.entry)) {
            item.entry.stored = 1;
            item.entry.kept_at = s.kept_at;
            job.items.push_back(item);
        }
    }
    if (!error.empty() || round.kind == dingtalk::StoreRound::failed) {
        job.store_errors.push_back(error.empty() ? round.error : error);
    }
}

// In the thread: an item that ended leaves dingtalk_store too.
void forget_shared(check_job_t &job, const check_item_t &item)
{
    const dingtalk::LiftResult r = item.lift.result;
    if (item.am->store == nullptr ||
        (r != dingtalk::LiftResult::expired && r != dingtalk::LiftResult::gone)) {
        return;
    }
    std::string error;
    const dingtalk::UntilResolved &e = item.entry;
    if (!item.am->store->forget_silence(item.am->identity,
                                        {e.id, e.fingerprint, e.hard_end, e.kept_at}, error)) {
        job.store_errors.push_back(error); // the next round finds it gone
    }
}

void check_task(void *data, ngx_log_t *) noexcept
{
    // Only the job's own memory is touched here: no pools, no logs, no zone.
    check_job_t *job = *static_cast<check_job_t **>(data);
    try {
        for (const ngx_http_dingtalk_alertmanager_t *am : job->shared) {
            share_round(*job, am);
        }
        const auto start = std::chrono::steady_clock::now();
        std::vector<uint64_t> down; // Alertmanagers that did not answer in this round
        for (check_item_t &item : job->items) {
            if (std::chrono::steady_clock::now() - start > kRoundBudget) {
                break;
            }
            if (item.skip ||
                std::find(down.begin(), down.end(), item.entry.alertmanager) != down.end()) {
                continue;
            }
            item.lift = dingtalk::lift_if_resolved(*item.am->api, item.entry,
                                                   static_cast<std::int64_t>(std::time(nullptr)));
            item.done = true;
            if (item.lift.unreachable) {
                down.push_back(item.entry.alertmanager);
            }
            forget_shared(*job, item);
        }
    } catch (...) {
        job->thrown = std::current_exception();
    }
}

// The table learns the round's results (under the lock: nothing here allocates or throws).
void update_table(round_t &round, const check_job_t &job)
{
    zone_ctx_t *ctx = zone_ctx(round);
    const std::int64_t now = ngx_time();
    ngx_shmtx_lock(&ctx->shpool->mutex);
    for (const check_item_t &item : job.items) {
        if (item.stored_now) {
            dingtalk::stored(ctx->sh->until_resolved, item.entry.id);
        }
        if (!item.done) {
            continue;
        }
        const dingtalk::LiftResult r = item.lift.result;
        if (r == dingtalk::LiftResult::expired || r == dingtalk::LiftResult::gone) {
            dingtalk::forget(ctx->sh->until_resolved, item.entry.id);
        } else {
            dingtalk::checked(ctx->sh->until_resolved, item.entry.id,
                              r == dingtalk::LiftResult::failed, now);
        }
    }
    if (ctx->sh->resolved_lease_pid == ngx_pid) {
        ctx->sh->resolved_lease_ms = 0;
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
}

// One line and one count per silence that ended or whose check failed.
void account(round_t &round, const check_item_t &item)
{
    ngx_log_t *log = ngx_cycle->log;
    const char *id = item.entry.id;
    switch (item.lift.result) {
    case dingtalk::LiftResult::firing:
        return;
    case dingtalk::LiftResult::expired:
        ngx_http_dingtalk_count_expire(round.mcf->zone, dingtalk::ExpireCount::expired);
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "dingtalk: action expire expired: silence %s, its alert %s resolved", id,
                      item.entry.fingerprint[0] ? item.entry.fingerprint : "(any)");
        return;
    case dingtalk::LiftResult::gone:
        ngx_http_dingtalk_count_expire(round.mcf->zone, dingtalk::ExpireCount::gone);
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "dingtalk: action expire gone: silence %s had ended or was expired in "
                      "Alertmanager; forgotten",
                      id);
        return;
    case dingtalk::LiftResult::failed:
        break;
    }
    ngx_http_dingtalk_count_expire(round.mcf->zone, dingtalk::ExpireCount::failed);
    // the first failure in a row at warn; Alertmanager down for an hour is not 240 warnings
    const ngx_uint_t level = item.entry.failures == 0 ? NGX_LOG_WARN : NGX_LOG_INFO;
    ngx_log_error(level, log, 0,
                  "dingtalk: action expire failed: silence %s: %s; kept, checked again in %M ms",
                  id, item.lift.error.c_str(), round.mcf->check_interval);
}

void check_done(ngx_event_t *) noexcept
{
    round_t &round = *round_of_worker;
    std::unique_ptr<check_job_t> job(round.job);
    round.job = nullptr;
    try {
        if (job->thrown) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "dingtalk: the check of \"until resolved\" silences failed: %s",
                          ngx_http_dingtalk_what(job->thrown));
        }
        update_table(round, *job);
        for (const std::string &error : job->store_errors) {
            // warn once when the store starts failing (dingtalk_store_errors_total counts)
            const ngx_uint_t level =
                ngx_http_dingtalk_store_failed(round.mcf->zone) ? NGX_LOG_WARN : NGX_LOG_INFO;
            ngx_log_error(level, ngx_cycle->log, 0,
                          "dingtalk_store failed in the check of \"until resolved\" silences: "
                          "%s; this instance checks its own",
                          error.c_str());
        }
        for (const check_item_t &item : job->items) {
            if (item.done) {
                account(round, item);
            }
        }
    } catch (...) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "dingtalk: the end of a check of \"until resolved\" silences failed: %s",
                      ngx_http_dingtalk_what(std::current_exception()));
    }
    ngx_http_dingtalk_watch_idle(kAlertmanagerKeepalive);
}

// The round's job: each due entry with its Alertmanager (an entry whose Alertmanager no
// location uses any more, after a reload, waits for its hard end), and the Alertmanagers whose
// silences dingtalk_store shares. The pool is the first Alertmanager's.
ngx_thread_pool_t *build_job(round_t &round, std::size_t n, check_job_t &job)
{
    for (std::size_t i = 0; i < n; ++i) {
        const ngx_http_dingtalk_alertmanager_t *am = alertmanager(round, round.due[i].alertmanager);
        if (am != nullptr) {
            job.items.push_back(check_item_t{round.due[i], am, false, false, false, {}});
        }
    }
    const auto *ams =
        static_cast<const ngx_http_dingtalk_alertmanager_t *>(round.mcf->alertmanagers->elts);
    for (ngx_uint_t i = 0; i < round.mcf->alertmanagers->nelts; ++i) {
        if (ams[i].store != nullptr) {
            job.shared.push_back(&ams[i]);
        }
    }
    job.owner = std::to_string(static_cast<long>(ngx_pid)) + "@" +
                std::string(reinterpret_cast<const char *>(ngx_cycle->hostname.data),
                            ngx_cycle->hostname.len);
    job.lease_ms = round.mcf->check_interval * 9 / 10;
    return job.items.empty() && job.shared.empty() ? nullptr : ams[0].pool;
}

void start_round(round_t &round)
{
    std::size_t n = 0;
    if (!claim(round, n)) {
        return;
    }
    auto job = std::make_unique<check_job_t>();
    ngx_thread_pool_t *pool = build_job(round, n, *job);
    if (pool == nullptr) {
        release_lease(round);
        return;
    }
    *static_cast<check_job_t **>(round.task.ctx) = job.get();
    if (ngx_thread_task_post(pool, &round.task) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "dingtalk: thread pool queue is full; the check of \"until resolved\" "
                      "silences waits for the next round");
        release_lease(round);
        return;
    }
    round.job = job.release();
}

void check_timer(ngx_event_t *ev) noexcept
{
    round_t &round = *round_of_worker;
    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return; // a worker that is leaving starts nothing; another one checks
    }
    try {
        if (round.job == nullptr) {
            start_round(round);
        } else {
            hold_lease(round, true); // still running (a queue, a slow Alertmanager or Redis)
        }
    } catch (...) {
        release_lease(round);
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "dingtalk: a check of \"until resolved\" silences could not start: %s",
                      ngx_http_dingtalk_what(std::current_exception()));
    }
    ngx_add_timer(ev, round.mcf->check_interval);
}

} // namespace

bool ngx_http_dingtalk_add_alertmanager(ngx_conf_t *cf, const dingtalk::Settings &s,
                                        ngx_thread_pool_t *pool)
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_dingtalk_module));
    if (mcf->alertmanagers == nullptr) {
        mcf->alertmanagers =
            ngx_array_create(cf->pool, 2, sizeof(ngx_http_dingtalk_alertmanager_t));
        if (mcf->alertmanagers == nullptr) {
            return false;
        }
    }
    const uint64_t identity = dingtalk::alertmanager_identity(s.alertmanager_url);
    const auto *ams =
        static_cast<const ngx_http_dingtalk_alertmanager_t *>(mcf->alertmanagers->elts);
    for (ngx_uint_t i = 0; i < mcf->alertmanagers->nelts; ++i) {
        if (ams[i].identity == identity) {
            return true; // the first location's credential and pool serve its checks
        }
    }
    auto *api = ngx_http_dingtalk_pool_new<dingtalk::AlertmanagerApi>(
        cf->pool, ngx_http_dingtalk_alertmanager_api(s));
    auto *am = static_cast<ngx_http_dingtalk_alertmanager_t *>(ngx_array_push(mcf->alertmanagers));
    if (api == nullptr || am == nullptr) {
        return false;
    }
    *am = {identity, api, pool, s.store.get()};
    return true;
}

dingtalk::KeepResult ngx_http_dingtalk_keep_until_resolved(ngx_shm_zone_t *zone,
                                                           const std::string &id,
                                                           const dingtalk::ActionLink &link,
                                                           const dingtalk::Settings &s,
                                                           std::int64_t now, bool stored)
{
    zone_ctx_t *ctx = ngx_http_dingtalk_zone_ctx_of(zone);
    const uint64_t identity = dingtalk::alertmanager_identity(s.alertmanager_url);
    ngx_shmtx_lock(&ctx->shpool->mutex);
    const dingtalk::KeepResult kept = dingtalk::keep(ctx->sh->until_resolved, id, link.fingerprint,
                                                     identity, now + link.seconds, now);
    if (stored) {
        dingtalk::stored(ctx->sh->until_resolved, id);
    }
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    if (kept == dingtalk::KeepResult::full || kept == dingtalk::KeepResult::invalid) {
        ngx_http_dingtalk_count_expire(zone, dingtalk::ExpireCount::full);
    }
    return kept;
}

void ngx_http_dingtalk_resolved_start(ngx_cycle_t *cycle) noexcept
{
    auto *mcf = static_cast<ngx_http_dingtalk_main_conf_t *>(
        ngx_http_cycle_get_module_main_conf(cycle, ngx_http_dingtalk_module));
    // a cache manager or loader runs init_process too, but has no thread pools to post to
    const bool worker = ngx_process == NGX_PROCESS_WORKER || ngx_process == NGX_PROCESS_SINGLE;
    if (!worker || mcf == nullptr || mcf->zone == nullptr || mcf->alertmanagers == nullptr ||
        mcf->alertmanagers->nelts == 0) {
        return;
    }
    auto *round = static_cast<round_t *>(ngx_pcalloc(cycle->pool, sizeof(round_t)));
    auto *ctx = static_cast<check_job_t **>(ngx_pcalloc(cycle->pool, sizeof(check_job_t *)));
    if (round == nullptr || ctx == nullptr) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                      "dingtalk: no memory for the check of \"until resolved\" silences");
        return;
    }
    round->mcf = mcf;
    round->task.ctx = ctx;
    round->task.handler = check_task;
    round->task.event.handler = check_done;
    round->task.event.data = round;
    round->ident.fd = static_cast<ngx_socket_t>(-1);
    round->timer.data = &round->ident;
    round->timer.handler = check_timer;
    round->timer.log = cycle->log;
    round->timer.cancelable = 1;
    round_of_worker = round;
    ngx_add_timer(&round->timer, mcf->check_interval);
}
