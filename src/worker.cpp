// The relay's per-database worker (see worker.hpp).
//
// A worker serves one database: it publishes its latch for wake-on-commit
// (its shared-memory slot), then loops: upkeep when due (expired leases,
// archive retention), one batch (relay.cpp), and, unless the batch came back
// full, a wait on its latch with the poll interval as a fallback. An error
// outside the handlers aborts the transaction and backs off
// (outbox.max_error_backoff); it never takes the cluster down. The launcher
// (launcher.cpp) starts it again if it exits.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/inflight.hpp"
#include "outbox/relay.hpp"
#include "outbox/settings.hpp"
#include "outbox/shmem.hpp"
#include "outbox/worker.hpp"

extern "C" {
#include "access/xact.h"
#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace outbox {

bool in_relay_worker = false;

namespace {

char my_dbname[NAMEDATALEN];  // the worker's database (no catalog access needed)

constexpr int kMissingExtensionRecheckMs = 10000;
constexpr int kUpkeepMaxIntervalMs = 5000;  // expired leases are looked for at least this often (while there can be any)
constexpr int kQuietLookMs = 60 * 1000;     // a quiet relay looks at least this often
constexpr int64 kArchiveIntervalMs = 3600 * 1000;
constexpr int64 kSweepIntervalMs = 60 * 1000;
constexpr int64 kBacklogCheckIntervalMs = 10 * 1000;

void
worker_exit(int code, Datum arg)
{
    slot_detach(DatumGetInt32(arg));
    ereport(LOG, (errmsg("outbox relay stopped for database \"%s\"", my_dbname)));
}

long
ms_until(TimestampTz t)
{
    long ms = static_cast<long>((t - GetCurrentTimestamp()) / 1000) + 1;
    return ms < 0 ? 0 : ms;
}

TimestampTz
earlier(TimestampTz a, TimestampTz b)
{
    return a < b ? a : b;
}

// How often the backlog is measured while it may grow: every 10 s, or twice
// per warning age if that is shorter (at most every second).
int64
backlog_check_every_ms()
{
    int64 every = static_cast<int64>(guc_backlog_warning_age_s) * 500;
    return every < 1000 ? 1000 : every > kBacklogCheckIntervalMs ? kBacklogCheckIntervalMs : every;
}

// Sleep until `until`, or until a commit asks for a round (slot_wake: its
// flag and the latch) or a signal comes (SIGTERM, SIGHUP, DROP DATABASE). A
// latch set for nothing of that (the SIGALRM of a handler's timeout, which
// PostgreSQL leaves armed after the handler) is slept through. Statistics held
// back (PostgreSQL flushes at most once a second) go out a second later,
// forced, without a round, as an idle backend's do (pgstat_report_stat(false)
// would hold them back again: it measures from the last transaction's end).
// The flag is cleared before the round, after the latch: a commit that asks
// from then on is seen by that round, or wakes the next wait. Returns early,
// true, when the sink worker handed settled events over to archive (and the
// relay is enabled): the caller archives them and waits again until `until`.
bool
wait_for_round(int idx, TimestampTz until)
{
    long stats_ms = pgstat_report_stat(false) > 0 ? 1000 : 0;
    for (;;) {
        long ms = ms_until(until);
        if (ms == 0)
            break;
        bool for_stats = stats_ms > 0 && stats_ms < ms;
        int rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, for_stats ? stats_ms : ms,
                           PG_WAIT_EXTENSION);
        if ((rc & WL_LATCH_SET) != 0) {
            ResetLatch(MyLatch);
            if (slot_take_wake(idx) || InterruptPending || ConfigReloadPending || slot_asked_to_leave(idx))
                return false;
            if (guc_enabled && slot_archive_waiting(idx))
                return true;
            continue;
        }
        if (!for_stats)
            break;
        (void) pgstat_report_stat(true);
        stats_ms = 0;
    }
    ResetLatch(MyLatch);
    (void) slot_take_wake(idx);
    return false;
}

// In a PG_CATCH: the error logged and copied (into cxt), the transaction
// aborted; with inflight, the note of a handler in progress cleared too
// (the batch was rolled back by us, not by a handler ending the process),
// before an interrupt can end the process.
ErrorData *
catch_error(MemoryContext cxt, bool inflight)
{
    HOLD_INTERRUPTS();
    MemoryContextSwitchTo(cxt);
    ErrorData *edata = CopyErrorData();
    EmitErrorReport();
    FlushErrorState();
    AbortOutOfAnyTransaction();
    if (inflight)
        inflight_clear();
    RESUME_INTERRUPTS();
    MemoryContextSwitchTo(cxt);
    return edata;
}

// Between rounds: archive what the sink worker settled, in transactions of
// its own. False when that failed (logged, recorded as the worker's last
// error; its ids are left to the sweep).
bool
archive_between_rounds(int idx, MemoryContext cxt)
{
    volatile bool ok = true;
    PG_TRY();
    {
        slot_set_activity(idx, "archiving events the sink settled");
        (void) archive_sink_settled(idx);
        slot_set_activity(idx, "idle");
    }
    PG_CATCH();
    {
        ErrorData *edata = catch_error(cxt, false);
        slot_record_error(idx, edata->message);
        pgstat_report_activity(STATE_IDLE, nullptr);
        ok = false;
    }
    PG_END_TRY();
    return ok;
}

// Each round runs one transaction: the upkeep that is due (expired leases,
// the sweep, the backlog's age) and a batch, which ends by looking at what
// is left. Rounds come when a commit wakes the relay, and otherwise at the
// first of: the next due time it knows of (a delivery time, a retry), its
// upkeep (which finds the leases that ended), and a look at the poll interval. A relay whose
// outbox has no event due for consumers (no lease, none waiting: the look,
// BatchResult::waiting) is quiet: nothing can become due there that no commit
// wakes it for and it does not know the time of, so it does not look for
// expired leases and looks otherwise only every kQuietLookMs (or poll
// interval, if longer), for what no commit announced (a prepared transaction
// committed, rows changed by hand), with its sweep and backlog check.
void
worker_loop(int idx, const InflightNote *left)
{
    MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "outbox relay", ALLOCSET_DEFAULT_SIZES);
    // The previous worker's process ended in a handler: charge that event
    // (once: if charging fails, the error is logged and delivery goes on).
    volatile bool charge_pending = left != nullptr;
    // After such an end, the next events run one per transaction, so that
    // the events delivered before a poison that ends the process again are
    // committed (a batch dies with all its events).
    volatile int careful_left = left != nullptr ? guc_relay_batch_size : 0;
    // Changed inside PG_TRY and read after it: volatile.
    volatile TimestampTz next_upkeep = 0;         // expired leases
    volatile TimestampTz next_archive = 0;
    volatile TimestampTz next_sweep = 0;
    volatile TimestampTz next_backlog_check = 0;  // measured in a round from then on
    volatile TimestampTz backlog_wake = 0;        // and a round comes for it then
    volatile bool quiet = false;
    volatile int error_backoff_ms = 0;
    volatile bool was_missing = false;
    bool archive_only = false;  // the last wait ended for the sink's settled events
    TimestampTz resume_until = 0;

    for (;;) {
        start_round(cxt);
        if (slot_asked_to_leave(idx)) {
            ereport(LOG, (errmsg("outbox relay: leaving database \"%s\": it is being dropped", my_dbname)));
            proc_exit(0);
        }
        if (archive_only) {
            // Woken only for that: archive, and wait again for the round.
            archive_only = false;
            if (guc_enabled && !RecoveryInProgress()) {
                (void) archive_between_rounds(idx, cxt);
                (void) pgstat_report_stat(false);
                archive_only = wait_for_round(idx, resume_until);
                continue;
            }
        }

        // What the sink worker settled first: its events' deliveries are
        // done, and archiving them is the relay's share of them. Apart from
        // the round: a failure there (logged; its ids are left to the sweep)
        // holds back neither the round nor its upkeep.
        if (guc_enabled && !RecoveryInProgress() && slot_archive_waiting(idx))
            (void) archive_between_rounds(idx, cxt);

        TimestampTz start = GetCurrentTimestamp();
        volatile TimestampTz next_round = TimestampTzPlusMilliseconds(start, guc_poll_interval_ms);
        volatile bool drain = false;
        if (!guc_enabled) {
            slot_set_activity(idx, "disabled");
        } else if (RecoveryInProgress()) {
            slot_set_activity(idx, "standby: not delivering");
        } else {
            PG_TRY();
            {
                BatchResult r;
                if (charge_pending) {
                    charge_pending = false;
                    charge_interrupted_delivery(left);
                }
                TimestampTz now = GetCurrentTimestamp();
                // Upkeep is rescheduled before it runs: if it fails, the
                // error backs off and delivery goes on meanwhile.
                if (now >= next_archive && !was_missing) {
                    next_archive = TimestampTzPlusMilliseconds(now, kArchiveIntervalMs);
                    maintain_archive(guc_archive_retention_min);
                }
                Upkeep upkeep = {};
                if (now >= next_sweep && !was_missing) {
                    next_sweep = TimestampTzPlusMilliseconds(now, kSweepIntervalMs);
                    upkeep.sweep = true;
                }
                if (now >= next_backlog_check && !was_missing && guc_backlog_warning_age_s > 0) {
                    next_backlog_check = TimestampTzPlusMilliseconds(now, backlog_check_every_ms());
                    upkeep.backlog = true;
                }
                if (now >= next_upkeep && !was_missing && !quiet) {
                    next_upkeep = TimestampTzPlusMilliseconds(
                        now, guc_poll_interval_ms < kUpkeepMaxIntervalMs ? guc_poll_interval_ms : kUpkeepMaxIntervalMs);
                    upkeep.reclaim = true;
                }
                slot_set_activity(idx, careful_left > 0 ? "delivering one by one after an abnormal exit" : "delivering");
                int size = careful_left > 0 ? 1 : guc_relay_batch_size;
                relay_batch(size, &upkeep, &r);
                inflight_clear();  // the batch's transaction is over
                if (r.extension_missing || r.schema_outdated) {
                    if (!was_missing && r.extension_missing)
                        ereport(LOG, (errmsg("outbox relay: extension \"outbox\" is not installed in database \"%s\": waiting for CREATE EXTENSION",
                                             my_dbname)));
                    else if (!was_missing)
                        ereport(LOG, (errmsg("outbox relay: database \"%s\" has an outbox schema older than 0.2.0: "
                                             "waiting for ALTER EXTENSION outbox UPDATE",
                                             my_dbname),
                                      errhint("The library is newer than the installed extension; until the update "
                                              "publishing and consuming work as before, and the relay delivers nothing.")));
                    was_missing = true;
                    quiet = false;
                    // All upkeep at once when the extension is there.
                    next_archive = 0;
                    next_upkeep = 0;
                    next_sweep = 0;
                    next_backlog_check = 0;
                    backlog_wake = 0;
                    slot_set_activity(idx, r.extension_missing ? "waiting for CREATE EXTENSION outbox"
                                                               : "waiting for ALTER EXTENSION outbox UPDATE");
                    // CREATE EXTENSION wakes the relay when it commits; an
                    // update does not.
                    next_round = TimestampTzPlusMilliseconds(
                        now, r.extension_missing || guc_poll_interval_ms > kMissingExtensionRecheckMs
                                 ? kMissingExtensionRecheckMs
                                 : guc_poll_interval_ms);
                } else {
                    if (was_missing)
                        ereport(LOG, (errmsg("outbox relay: extension \"outbox\" found in database \"%s\": delivering",
                                             my_dbname)));
                    was_missing = false;
                    report_upkeep(my_dbname, &r);
                    if (r.sweep_more)
                        next_sweep = 0;
                    if (r.reclaimed > 0)
                        slot_count_reclaimed(idx, r.reclaimed, r.reclaimed_failed);
                    slot_count_batch(idx, r.claimed, r.delivered, r.retried, r.failed, r.last_error);
                    // The launcher starts (or stops) the sink worker of this
                    // database; new external deliveries wake it.
                    slot_set_wants_sink(idx, r.has_external);
                    if (r.dispatched_external) {
                        Latch *sink = slot_sink_latch_of(MyDatabaseId);
                        if (sink != nullptr)
                            SetLatch(sink);
                    }
                    // Full: the batch did not look at what is left.
                    drain = r.claimed >= r.batch_size || r.cut_short || r.more;
                    if (careful_left > 0)
                        careful_left = r.claimed == 0 ? 0 : careful_left - r.claimed;
                    TimestampTz after = GetCurrentTimestamp();
                    // Leases taken from now on expire a lease length from now
                    // at the earliest: the first look for them can wait.
                    // A batch followed by the next at once may not have
                    // looked at what is left (a full one does not): not
                    // known to be quiet, so the upkeep goes on meanwhile (a
                    // lease may end during a long drain).
                    if (r.looked) {
                        if (quiet && r.waiting)
                            next_upkeep = TimestampTzPlusMilliseconds(
                                after, guc_poll_interval_ms < kUpkeepMaxIntervalMs ? guc_poll_interval_ms
                                                                                   : kUpkeepMaxIntervalMs);
                        quiet = !r.waiting;
                    } else {
                        quiet = false;
                    }
                    int look_ms = quiet && guc_poll_interval_ms < kQuietLookMs ? kQuietLookMs : guc_poll_interval_ms;
                    TimestampTz next = TimestampTzPlusMilliseconds(after, look_ms);
                    if (r.next_due != 0)
                        next = earlier(next, r.next_due);
                    if (!quiet)
                        next = earlier(next, next_upkeep);
                    next = earlier(next, next_sweep);
                    next = earlier(next, next_archive);
                    if (guc_backlog_warning_age_s > 0) {
                        // Nothing due now: nothing can be older than the
                        // warning age before that age has passed.
                        if (upkeep.backlog)
                            backlog_wake = r.backlog_age >= 0
                                               ? next_backlog_check
                                               : TimestampTzPlusMilliseconds(
                                                     now, Max(backlog_check_every_ms(),
                                                              static_cast<int64>(guc_backlog_warning_age_s) * 1000));
                        next = earlier(next, Max(backlog_wake, next_backlog_check));
                    }
                    next_round = next;
                    slot_set_activity(idx, "idle");
                }
                error_backoff_ms = 0;
            }
            PG_CATCH();
            {
                ErrorData *edata = catch_error(cxt, true);
                slot_record_error(idx, edata->message);
                error_backoff_ms = error_backoff_ms == 0 ? 1000 : error_backoff_ms * 2;
                if (error_backoff_ms > guc_max_error_backoff_ms)
                    error_backoff_ms = guc_max_error_backoff_ms;
                quiet = false;
                next_round = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), error_backoff_ms);
                pgstat_report_activity(STATE_IDLE, nullptr);
            }
            PG_END_TRY();
        }
        if (drain) {
            (void) pgstat_report_stat(false);
            continue;
        }
        resume_until = next_round;
        archive_only = wait_for_round(idx, next_round);
    }
}

void
worker_main(Datum arg)
{
    int idx = DatumGetInt32(arg);
    WorkerArgs args = worker_connect();
    if (idx < 0 || idx >= relay_slot_count() || !slot_attach(idx, args.dboid, my_dbname))
        proc_exit(0);
    before_shmem_exit(worker_exit, Int32GetDatum(idx));
    InflightNote left;
    bool had_note = inflight_open(args.dboid, &left);
    worker_session("outbox relay");
    ereport(LOG, (errmsg("outbox relay started for database \"%s\"", my_dbname)));
    worker_loop(idx, had_note ? &left : nullptr);
}

} // namespace

WorkerArgs
worker_connect()
{
    WorkerArgs args;
    memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof args);
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(args.dboid, args.role, 0);
    return args;
}

void
worker_session(const char *appname)
{
    pgstat_report_appname(appname);
    // No JIT: the workers' statements are short, and with stale statistics
    // a claim's estimate can pass jit_above_cost and pay a compilation per batch.
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    // Settling the last delivery of an event relies on READ COMMITTED: after
    // locking the event, the next statement sees the other deliveries settled
    // by transactions that committed meanwhile (_outbox_archive_settled).
    SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
    in_relay_worker = true;
}

void
start_round(MemoryContext cxt)
{
    CHECK_FOR_INTERRUPTS();
    // WaitLatch notices the postmaster's death only while we sleep; a relay
    // draining full batches may not sleep for a long time.
    if (!PostmasterIsAlive())
        proc_exit(1);
    if (ConfigReloadPending) {
        ConfigReloadPending = false;
        ProcessConfigFile(PGC_SIGHUP);
    }
    MemoryContextSwitchTo(cxt);
    MemoryContextReset(cxt);
}

} // namespace outbox

extern "C" void
outbox_worker_main(Datum arg)
{
    outbox::guarded_entry([arg] { outbox::worker_main(arg); });
}
