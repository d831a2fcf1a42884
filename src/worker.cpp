// The relay's background workers.
//
// The launcher (a static worker, started by the postmaster after recovery)
// keeps one worker per database of outbox.databases: it starts the missing
// ones, stops those no longer listed (or when outbox.enabled goes off, or
// outbox.role changes), and restarts one that exited, one second later. It
// connects to no database: pg_database and pg_authid are shared catalogs.
//
// A worker serves one database: it publishes its latch for wake-on-commit,
// then loops: upkeep when due (expired leases, archive retention), one batch
// (src/relay.cpp), and, unless the batch came back full, a wait on its latch
// with the poll interval as a fallback. An error outside the handlers aborts
// the transaction and backs off (outbox.max_error_backoff); it never takes
// the cluster down.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/inflight.hpp"
#include "outbox/log_limit.hpp"
#include "outbox/state.hpp"
#include "outbox/relay.hpp"
#include "outbox/wakeup.hpp"
#include "outbox/worker.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/varlena.h"
}

#include <climits>
#include <csignal>
#include <cstring>

namespace outbox {

char *guc_databases = nullptr;
bool guc_enabled = true;
int guc_poll_interval_ms = 1000;
int guc_max_error_backoff_ms = 30000;
int guc_archive_retention_min = 7 * 24 * 60;
char *guc_role = nullptr;
int guc_handler_timeout_ms = 10000;
int guc_max_batch_duration_ms = 1000;

namespace {

char my_dbname[NAMEDATALEN];  // the worker's database (no catalog access needed)

constexpr int kRestartDelayMs = 1000;       // a worker that exited is started again after this,
constexpr int kStableRunMs = 60 * 1000;     // doubled each time it exits within this of its start
constexpr int kLauncherRecheckMs = 10000;   // databases not found yet are looked up again
constexpr int kMissingExtensionRecheckMs = 10000;
constexpr int kUpkeepMaxIntervalMs = 5000;  // expired leases are looked for at least this often
constexpr int64 kArchiveIntervalMs = 3600 * 1000;

// What the launcher passes to a worker (bgw_extra).
struct WorkerArgs {
    Oid dboid;
    Oid role;  // InvalidOid: the bootstrap superuser
};

bool
check_databases(char **newval, void **extra, GucSource source)
{
    char *raw = pstrdup(*newval);
    List *names;
    bool ok = SplitIdentifierString(raw, ',', &names);
    if (!ok)
        GUC_check_errdetail("List syntax is invalid: give database names separated by commas.");
    list_free(names);
    pfree(raw);
    return ok;
}

// ---------------------------------------------------------------------------
// Slots (shared memory)

RelaySlot *
slot_at(int i)
{
    return &relay_shared->slots[i];
}

void
set_activity(int idx, const char *what)
{
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    strlcpy(slot_at(idx)->activity, what, kActivityLen);
    LWLockRelease(relay_shared->lock);
}

void
record_error(int idx, const char *msg)
{
    char buf[kLastErrorLen];
    copy_message(buf, kLastErrorLen, msg);
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    memcpy(slot_at(idx)->last_error, buf, kLastErrorLen);
    slot_at(idx)->last_error_at = now;
    strlcpy(slot_at(idx)->activity, "error backoff", kActivityLen);
    LWLockRelease(relay_shared->lock);
}

void
record_batch(int idx, const BatchResult &r)
{
    TimestampTz now = GetCurrentTimestamp();
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    RelaySlot *s = slot_at(idx);
    s->delivered += r.delivered;
    s->failed += r.failed;
    s->retried += r.retried;
    if (r.claimed > 0) {
        s->batches++;
        s->last_batch_at = now;
    }
    if (r.last_error[0] != '\0') {
        memcpy(s->last_error, r.last_error, kLastErrorLen);
        s->last_error_at = now;
    }
    LWLockRelease(relay_shared->lock);
}

void
record_reclaimed(int idx, int n, int failed)
{
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    slot_at(idx)->reclaimed += n;
    slot_at(idx)->failed += failed;
    LWLockRelease(relay_shared->lock);
}

void
worker_exit(int code, Datum arg)
{
    int idx = DatumGetInt32(arg);
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    if (slot_at(idx)->pid == MyProcPid) {
        slot_at(idx)->pid = 0;
        slot_at(idx)->latch = nullptr;
    }
    LWLockRelease(relay_shared->lock);
}

// DROP DATABASE of our database is under way (drop_database.cpp): leave.
bool
asked_to_leave(int idx)
{
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    bool leave = slot_at(idx)->leave_until != 0;
    LWLockRelease(relay_shared->lock);
    return leave;
}

// ---------------------------------------------------------------------------
// The worker

long
ms_until(TimestampTz t)
{
    long ms = static_cast<long>((t - GetCurrentTimestamp()) / 1000) + 1;
    return ms < 0 ? 0 : ms;
}

// The start of each round of the launcher's and the workers' loops: handle
// interrupts and a pending reload, then work in a fresh `cxt`.
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
    volatile int careful_left = left != nullptr ? guc_batch_size : 0;
    // Changed inside PG_TRY and read after it: volatile.
    volatile TimestampTz next_upkeep = 0;
    volatile TimestampTz next_archive = 0;
    volatile int error_backoff_ms = 0;
    volatile bool was_missing = false;

    for (;;) {
        start_round(cxt);
        if (asked_to_leave(idx)) {
            ereport(LOG, (errmsg("outbox relay: leaving database \"%s\": it is being dropped", my_dbname)));
            proc_exit(0);
        }

        volatile long sleep_ms = guc_poll_interval_ms;
        volatile bool drain = false;
        if (!guc_enabled) {
            set_activity(idx, "disabled");
        } else if (RecoveryInProgress()) {
            set_activity(idx, "standby: not delivering");
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
                if (now >= next_upkeep && !was_missing) {
                    next_upkeep = TimestampTzPlusMilliseconds(
                        now, guc_poll_interval_ms < kUpkeepMaxIntervalMs ? guc_poll_interval_ms : kUpkeepMaxIntervalMs);
                    int failed;
                    int n = reclaim_expired(&failed);
                    if (n > 0)
                        record_reclaimed(idx, n, failed);
                }
                set_activity(idx, careful_left > 0 ? "delivering one by one after an abnormal exit" : "delivering");
                int size = careful_left > 0 ? 1 : guc_batch_size;
                relay_batch(size, &r);
                inflight_clear();  // the batch's transaction is over
                if (r.extension_missing) {
                    if (!was_missing)
                        ereport(LOG, (errmsg("outbox relay: extension \"outbox\" is not installed in database \"%s\": waiting for CREATE EXTENSION",
                                             my_dbname)));
                    was_missing = true;
                    next_archive = 0;
                    next_upkeep = 0;
                    set_activity(idx, "waiting for CREATE EXTENSION outbox");
                    if (sleep_ms > kMissingExtensionRecheckMs)
                        sleep_ms = kMissingExtensionRecheckMs;
                } else {
                    if (was_missing)
                        ereport(LOG, (errmsg("outbox relay: extension \"outbox\" found in database \"%s\": delivering",
                                             my_dbname)));
                    was_missing = false;
                    record_batch(idx, r);
                    drain = r.claimed >= size || r.cut_short;
                    if (careful_left > 0)
                        careful_left = r.claimed == 0 ? 0 : careful_left - r.claimed;
                    if (r.next_due != 0) {
                        long until = ms_until(r.next_due);
                        if (until < sleep_ms)
                            sleep_ms = until;
                    }
                    long upkeep = ms_until(next_upkeep);
                    if (upkeep < sleep_ms)
                        sleep_ms = upkeep;
                    set_activity(idx, "idle");
                }
                error_backoff_ms = 0;
            }
            PG_CATCH();
            {
                HOLD_INTERRUPTS();
                MemoryContextSwitchTo(cxt);
                ErrorData *edata = CopyErrorData();
                EmitErrorReport();
                FlushErrorState();
                AbortOutOfAnyTransaction();
                inflight_clear();  // rolled back by us, not by a handler ending the process
                RESUME_INTERRUPTS();
                MemoryContextSwitchTo(cxt);
                record_error(idx, edata->message);
                error_backoff_ms = error_backoff_ms == 0 ? 1000 : error_backoff_ms * 2;
                if (error_backoff_ms > guc_max_error_backoff_ms)
                    error_backoff_ms = guc_max_error_backoff_ms;
                sleep_ms = error_backoff_ms;
                pgstat_report_activity(STATE_IDLE, nullptr);
            }
            PG_END_TRY();
        }
        // Statistics held back (at most one flush a second) go out before a
        // long sleep.
        long stats_ms = pgstat_report_stat(false);
        if (drain)
            continue;
        if (stats_ms > 0 && stats_ms < sleep_ms)
            sleep_ms = stats_ms;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, sleep_ms, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

// ---------------------------------------------------------------------------
// The launcher

struct LauncherSlot {
    BackgroundWorkerHandle *handle;
    Oid role;
    bool stopping;
    TimestampTz started_at;
    TimestampTz stopped_at;
    int restart_delay_ms;     // doubles while the worker keeps exiting soon after its start
};

// The launcher's warnings: one line per condition, then at most every few
// minutes (with how often it recurred meanwhile).
LogLimit no_slot_log = {};

LauncherSlot *local_slots = nullptr;

// The launcher has no database: it may only scan shared catalogs by heap
// (their indexes need a database's relcache), as the autovacuum launcher does.
Oid
shared_catalog_lookup(Oid relid, const char *name)
{
    Relation rel = table_open(relid, AccessShareLock);
    TableScanDesc scan = table_beginscan_catalog(rel, 0, nullptr);
    Oid found = InvalidOid;
    HeapTuple tup;
    while (!OidIsValid(found) && (tup = heap_getnext(scan, ForwardScanDirection)) != nullptr) {
        if (relid == DatabaseRelationId) {
            Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
            if (strcmp(NameStr(db->datname), name) == 0)
                found = db->oid;
        } else {
            Form_pg_authid role = (Form_pg_authid) GETSTRUCT(tup);
            if (strcmp(NameStr(role->rolname), name) == 0)
                found = role->oid;
        }
    }
    table_endscan(scan);
    table_close(rel, AccessShareLock);
    return found;
}
char last_missing[1024];
char last_toomany[1024];
TimestampTz last_missing_at = 0;

BgwHandleStatus
worker_status(int i)
{
    if (local_slots[i].handle == nullptr)
        return BGWH_STOPPED;
    pid_t pid;
    return GetBackgroundWorkerPid(local_slots[i].handle, &pid);
}

bool
start_worker(int i, Oid dboid, Oid role)
{
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    // The launcher restarts it; after a crash of the cluster the launcher
    // starts afresh, so the postmaster must not restart it on its own.
    w.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "outbox_worker_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "outbox relay for database %s", slot_at(i)->dbname);
    snprintf(w.bgw_type, BGW_MAXLEN, "outbox relay");
    w.bgw_main_arg = Int32GetDatum(i);
    w.bgw_notify_pid = MyProcPid;
    WorkerArgs args = {dboid, role};
    memcpy(w.bgw_extra, &args, sizeof args);

    // The handle lives as long as the worker: not in the round's context.
    BackgroundWorkerHandle *handle;
    MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
    bool registered = RegisterDynamicBackgroundWorker(&w, &handle);
    MemoryContextSwitchTo(old);
    if (!registered) {
        uint64 others;
        if (log_limit_allows(&no_slot_log, &others))
            ereport(WARNING, (errmsg("outbox launcher: no background worker slot free for the relay of database \"%s\"",
                                     slot_at(i)->dbname),
                              others > 0 ? errdetail("That happened %llu more times since the last such message.",
                                                     static_cast<unsigned long long>(others))
                                         : 0,
                              errhint("Raise max_worker_processes: the relay needs one worker per database plus its "
                                      "launcher. The launcher keeps trying; this message repeats at most every %d minutes.",
                                      kLogRepeatMs / 60000)));
        return false;
    }
    local_slots[i].handle = handle;
    local_slots[i].role = role;
    local_slots[i].stopping = false;
    local_slots[i].started_at = GetCurrentTimestamp();
    local_slots[i].stopped_at = 0;
    return true;
}

// Stop workers left running by an earlier launcher (one that exited).
void
adopt_leftovers()
{
    int nslots = relay_shared->nslots;
    int *pids = static_cast<int *>(palloc(sizeof(int) * nslots));
    for (int attempt = 0; attempt < 100; attempt++) {
        bool any = false;
        LWLockAcquire(relay_shared->lock, LW_SHARED);
        for (int i = 0; i < nslots; i++)
            pids[i] = slot_at(i)->pid;
        LWLockRelease(relay_shared->lock);
        for (int i = 0; i < nslots; i++) {
            if (pids[i] != 0) {
                any = true;
                if (attempt == 0)
                    kill(pids[i], SIGTERM);  // no system call under the lock
            }
        }
        if (!any)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++)
        if (slot_at(i)->pid == 0)
            memset(slot_at(i), 0, sizeof(RelaySlot));
    LWLockRelease(relay_shared->lock);
}

int
find_or_assign_slot(Oid dboid, const char *dbname)
{
    int free_slot = -1;
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = slot_at(i);
        if (s->in_use && s->dboid == dboid) {
            LWLockRelease(relay_shared->lock);
            return i;
        }
        if (!s->in_use && s->pid == 0 && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        RelaySlot *s = slot_at(free_slot);
        memset(s, 0, sizeof *s);
        s->in_use = true;
        s->dboid = dboid;
        strlcpy(s->dbname, dbname, NAMEDATALEN);
        strlcpy(s->activity, "starting", kActivityLen);
    }
    LWLockRelease(relay_shared->lock);
    return free_slot;
}

// One pass: compare what runs with what is configured. Returns how long to
// wait before the next pass (unless woken earlier).
long
launcher_pass()
{
    long timeout = kLauncherRecheckMs;
    int nslots = relay_shared->nslots;
    Oid *want = static_cast<Oid *>(palloc0(sizeof(Oid) * nslots));
    char **want_names = static_cast<char **>(palloc0(sizeof(char *) * nslots));
    int nwant = 0;
    Oid role = InvalidOid;
    bool role_ok = true;
    StringInfoData missing;  // names in outbox.databases / outbox.role that do not exist
    initStringInfo(&missing);
    StringInfoData toomany;  // databases that exist, past outbox.max_databases
    initStringInfo(&toomany);

    if (guc_enabled && guc_databases != nullptr && guc_databases[0] != '\0') {
        char *raw = pstrdup(guc_databases);
        List *names = NIL;
        (void) SplitIdentifierString(raw, ',', &names);
        // The names outlive the catalog transaction: copied into the round's
        // context (CurrentMemoryContext is the transaction's in between).
        MemoryContext round_cxt = CurrentMemoryContext;
        StartTransactionCommand();
        if (guc_role != nullptr && guc_role[0] != '\0') {
            role = shared_catalog_lookup(AuthIdRelationId, guc_role);
            if (!OidIsValid(role)) {
                role_ok = false;
                appendStringInfo(&missing, "role %s", guc_role);
            }
        }
        ListCell *lc;
        foreach (lc, names) {
            const char *name = static_cast<const char *>(lfirst(lc));
            Oid db = shared_catalog_lookup(DatabaseRelationId, name);
            if (!OidIsValid(db)) {
                appendStringInfo(&missing, "%sdatabase %s", missing.len > 0 ? ", " : "", name);
                continue;
            }
            bool dup = false;
            for (int k = 0; k < nwant; k++)
                dup = dup || want[k] == db;
            if (dup)
                continue;
            if (nwant == nslots) {
                appendStringInfo(&toomany, "%s%s", toomany.len > 0 ? ", " : "", name);
                continue;
            }
            want_names[nwant] = MemoryContextStrdup(round_cxt, name);
            want[nwant++] = db;
        }
        CommitTransactionCommand();
        MemoryContextSwitchTo(round_cxt);
        if (!role_ok)
            nwant = 0;
    }
    // Said once when it changes, and again at most every few minutes while it lasts.
    TimestampTz now = GetCurrentTimestamp();
    if (strcmp(missing.data, last_missing) != 0 || strcmp(toomany.data, last_toomany) != 0 ||
        ((missing.len > 0 || toomany.len > 0) && TimestampDifferenceExceeds(last_missing_at, now, kLogRepeatMs))) {
        if (missing.len > 0)
            ereport(WARNING, (errmsg("outbox launcher: not found: %s", missing.data),
                              errhint("Check outbox.databases and outbox.role in postgresql.conf; "
                                      "the launcher looks again every %d seconds.", kLauncherRecheckMs / 1000)));
        if (toomany.len > 0)
            ereport(WARNING, (errmsg("outbox launcher: not serving database%s %s: outbox.max_databases (%d) are served already",
                                     strchr(toomany.data, ',') ? "s" : "", toomany.data, nslots),
                              errhint("Raise outbox.max_databases (needs a restart), or list fewer databases in outbox.databases.")));
        strlcpy(last_missing, missing.data, sizeof last_missing);
        strlcpy(last_toomany, toomany.data, sizeof last_toomany);
        last_missing_at = now;
    }

    // Stop what is no longer wanted; forget it once it has stopped.
    for (int i = 0; i < nslots; i++) {
        if (!slot_at(i)->in_use)
            continue;
        Oid db = slot_at(i)->dboid;
        bool wanted = false;
        for (int k = 0; k < nwant; k++)
            wanted = wanted || want[k] == db;
        if (wanted && local_slots[i].handle != nullptr && local_slots[i].role != role)
            wanted = false;  // outbox.role changed: restart it as the new role
        BgwHandleStatus st = worker_status(i);
        if (!wanted || local_slots[i].stopping) {
            if (st != BGWH_STOPPED) {
                if (!local_slots[i].stopping) {
                    ereport(LOG, (errmsg("outbox launcher: stopping the relay for database \"%s\"", slot_at(i)->dbname)));
                    TerminateBackgroundWorker(local_slots[i].handle);
                }
                local_slots[i].stopping = true;
                timeout = Min(timeout, 100);
            } else {
                if (local_slots[i].handle != nullptr)
                    pfree(local_slots[i].handle);
                memset(&local_slots[i], 0, sizeof(LauncherSlot));
                if (!wanted) {
                    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
                    slot_at(i)->in_use = false;
                    slot_at(i)->leave_until = 0;
                    LWLockRelease(relay_shared->lock);
                }
            }
        }
    }
    // Start what is wanted and not running.
    for (int k = 0; k < nwant; k++) {
        int i = find_or_assign_slot(want[k], want_names[k]);
        if (i < 0) {
            timeout = Min(timeout, kRestartDelayMs);
            continue;
        }
        if (local_slots[i].stopping)
            continue;
        BgwHandleStatus st = worker_status(i);
        if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
            continue;
        if (st == BGWH_POSTMASTER_DIED)
            proc_exit(1);
        // Its database is being dropped: not before the DROP had its time.
        LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
        TimestampTz leave_until = slot_at(i)->leave_until;
        if (leave_until != 0 && now >= leave_until)
            slot_at(i)->leave_until = leave_until = 0;  // the DROP failed: serve it again
        LWLockRelease(relay_shared->lock);
        if (leave_until != 0) {
            timeout = Min(timeout, kRestartDelayMs);
            continue;
        }
        LauncherSlot &ls = local_slots[i];
        if (ls.handle != nullptr) {
            // It exited: start it again after a delay that doubles (up to
            // outbox.max_error_backoff) while it keeps exiting soon after its start.
            pfree(ls.handle);
            ls.handle = nullptr;
            ls.stopped_at = now;
            if (ls.restart_delay_ms == 0 || TimestampDifferenceExceeds(ls.started_at, now, kStableRunMs))
                ls.restart_delay_ms = kRestartDelayMs;
            else
                ls.restart_delay_ms = Min(ls.restart_delay_ms * 2, Max(guc_max_error_backoff_ms, kRestartDelayMs));
            ereport(LOG, (errmsg("outbox launcher: the relay for database \"%s\" exited; restarting it in %d ms",
                                 slot_at(i)->dbname, ls.restart_delay_ms)));
        }
        if (ls.stopped_at != 0) {
            long left = ls.restart_delay_ms -
                        static_cast<long>((now - ls.stopped_at) / 1000);
            if (left > 0) {
                timeout = Min(timeout, left);
                continue;
            }
        }
        if (!start_worker(i, want[k], role))
            timeout = Min(timeout, kRestartDelayMs);
    }
    return timeout;
}

} // namespace

void
define_worker_gucs()
{
    DefineCustomStringVariable(
        "outbox.databases",
        "Databases the relay serves, separated by commas (one worker each).",
        "A database without the outbox extension is skipped quietly until CREATE EXTENSION outbox.",
        &guc_databases, "", PGC_SIGHUP, GUC_LIST_INPUT, check_databases, nullptr, nullptr);

    DefineCustomBoolVariable(
        "outbox.enabled",
        "Whether the relay delivers events.",
        "off stops the relay's workers; events wait in outbox_events.",
        &guc_enabled, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.poll_interval",
        "Longest sleep of a relay worker between two looks at the outbox.",
        "A fallback: the worker wakes as soon as a transaction that published commits.",
        &guc_poll_interval_ms, 1000, 10, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_error_backoff",
        "Longest pause of a relay worker after an error of its own (it doubles from 1 s).",
        nullptr,
        &guc_max_error_backoff_ms, 30000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.archive_retention",
        "How long delivered events are kept in outbox_events_archive.",
        "The relay runs outbox_archive_maintain() with it at start and every hour.",
        &guc_archive_retention_min, 7 * 24 * 60, 60, INT_MAX / 2, PGC_SIGHUP, GUC_UNIT_MIN, nullptr, nullptr, nullptr);

    DefineCustomStringVariable(
        "outbox.role",
        "Role the relay's workers connect as (empty: the bootstrap superuser).",
        "It needs LOGIN; the relay's own work runs as the extension's owner and each handler as its subscription's owner.",
        &guc_role, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.handler_timeout",
        "Statement timeout of one subscription handler call (0: none).",
        "A handler that runs longer is cancelled: its event is retried with backoff.",
        &guc_handler_timeout_ms, 10000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_batch_duration",
        "Longest time one relay batch runs handlers before it commits.",
        "Checked between events: the events not run yet are claimed again by the next batch, at once, no attempt "
        "counted. Bounds how long a batch holds its row locks and the xmin horizon that keeps vacuum from "
        "cleaning outbox_events.",
        &guc_max_batch_duration_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    // Sizes shared memory: only when preloaded (a PGC_POSTMASTER setting
    // cannot be created after startup).
    if (process_shared_preload_libraries_in_progress) {
        DefineCustomIntVariable(
            "outbox.max_databases",
            "Most databases the relay can serve (sizes shared memory).",
            nullptr,
            &guc_max_databases, 16, 1, 1024, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    }
}

void
register_launcher()
{
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    w.bgw_restart_time = 1;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox");
    snprintf(w.bgw_function_name, BGW_MAXLEN, "outbox_launcher_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "outbox launcher");
    snprintf(w.bgw_type, BGW_MAXLEN, "outbox launcher");
    RegisterBackgroundWorker(&w);
}

} // namespace outbox

using namespace outbox;

namespace {

void
launcher_main(Datum arg)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    // No database: pg_database and pg_authid are shared catalogs.
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("outbox launcher");

    if (relay_shared == nullptr)
        proc_exit(0);
    local_slots = static_cast<LauncherSlot *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(LauncherSlot) * relay_shared->nslots));
    adopt_leftovers();
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    relay_shared->launcher_pid = MyProcPid;
    LWLockRelease(relay_shared->lock);

    MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "outbox launcher", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        start_round(cxt);
        long timeout = launcher_pass();
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

void
worker_main(Datum arg)
{
    int idx = DatumGetInt32(arg);
    WorkerArgs args;
    memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof args);

    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    BackgroundWorkerInitializeConnectionByOid(args.dboid, args.role, 0);

    if (relay_shared == nullptr || idx < 0 || idx >= relay_shared->nslots)
        proc_exit(0);
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    RelaySlot *s = slot_at(idx);
    bool mine = s->in_use && s->dboid == args.dboid && s->pid == 0;
    if (mine) {
        s->pid = MyProcPid;
        s->latch = MyLatch;
        s->started_at = GetCurrentTimestamp();
        strlcpy(s->activity, "starting", kActivityLen);
        strlcpy(my_dbname, s->dbname, NAMEDATALEN);
    }
    LWLockRelease(relay_shared->lock);
    if (!mine)
        proc_exit(0);
    before_shmem_exit(worker_exit, Int32GetDatum(idx));
    InflightNote left;
    bool had_note = inflight_open(args.dboid, &left);

    pgstat_report_appname("outbox relay");
    // No JIT in the relay: its statements are short, and with stale statistics
    // the claim's estimate can pass jit_above_cost and pay a compilation per batch.
    SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
    in_relay_worker = true;
    ereport(LOG, (errmsg("outbox relay started for database \"%s\"", my_dbname)));
    worker_loop(idx, had_note ? &left : nullptr);
}

} // namespace

// The entry points the postmaster starts (bgw_function_name): one-line guarded trampolines.

extern "C" void
outbox_launcher_main(Datum arg)
{
    outbox::guarded_entry([arg] { launcher_main(arg); });
}

extern "C" void
outbox_worker_main(Datum arg)
{
    outbox::guarded_entry([arg] { worker_main(arg); });
}
