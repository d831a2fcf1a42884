// The relay's launcher (see launcher.hpp).
//
// A static worker, started by the postmaster after recovery, it keeps one
// worker per database of outbox.databases: it starts the missing ones, stops
// those no longer listed (or when outbox.enabled goes off, or outbox.role
// changes), and restarts one that exited, after a delay that grows while it
// keeps exiting soon after its start. It connects to no database:
// pg_database and pg_authid are shared catalogs. The model is core's
// logical replication launcher (replication/logical/launcher.c).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/launcher.hpp"
#include "outbox/log_limit.hpp"
#include "outbox/settings.hpp"
#include "outbox/shmem.hpp"
#include "outbox/worker.hpp"

extern "C" {
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
}

#include <csignal>
#include <cstring>

namespace outbox {

namespace {

constexpr int kRestartDelayMs = 1000;       // a worker that exited is started again after this,
constexpr int kStableRunMs = 60 * 1000;     // doubled each time it exits within this of its start
constexpr int kLauncherRecheckMs = 10000;   // databases not found yet are looked up again

struct LauncherSlot {
    BackgroundWorkerHandle *handle;
    BackgroundWorkerHandle *sink_handle;  // the slot's sink worker (external deliveries)
    TimestampTz sink_stopped_at;          // when it was last seen stopped after running
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

// Register slot i's relay worker (sink = false) or sink worker for database
// `dboid`; null when no background worker slot is free.
BackgroundWorkerHandle *
register_worker(int i, Oid dboid, const char *dbname, Oid role, bool sink)
{
    BackgroundWorker w;
    memset(&w, 0, sizeof w);
    w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
    w.bgw_start_time = BgWorkerStart_RecoveryFinished;
    // The launcher restarts it; after a crash of the cluster the launcher
    // starts afresh, so the postmaster must not restart it on its own.
    w.bgw_restart_time = BGW_NEVER_RESTART;
    snprintf(w.bgw_library_name, BGW_MAXLEN, "outbox");
    snprintf(w.bgw_function_name, BGW_MAXLEN, sink ? "outbox_sink_main" : "outbox_worker_main");
    snprintf(w.bgw_name, BGW_MAXLEN, "outbox %s for database %s", sink ? "sink" : "relay", dbname);
    snprintf(w.bgw_type, BGW_MAXLEN, sink ? "outbox sink" : "outbox relay");
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
            ereport(WARNING, (errmsg("outbox launcher: no background worker slot free for the %s of database \"%s\"",
                                     sink ? "sink worker" : "relay", dbname),
                              others > 0 ? errdetail("That happened %llu more times since the last such message.",
                                                     static_cast<unsigned long long>(others))
                                         : 0,
                              errhint("Raise max_worker_processes: the relay needs one worker per database plus its "
                                      "launcher, and one more per database with webhook or Kafka subscriptions. The launcher "
                                      "keeps trying; this message repeats at most every %d minutes.",
                                      kLogRepeatMs / 60000)));
        return nullptr;
    }
    return handle;
}

bool
start_worker(int i, Oid dboid, const char *dbname, Oid role)
{
    BackgroundWorkerHandle *handle = register_worker(i, dboid, dbname, role, false);
    if (handle == nullptr)
        return false;
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
    int nslots = relay_slot_count();
    for (int attempt = 0; attempt < 100; attempt++) {
        bool any = false;
        for (int i = 0; i < nslots; i++) {
            int pids[2] = {slot_worker_pid(i), slot_sink_pid(i)};
            for (int pid : pids)
                if (pid != 0) {
                    any = true;
                    if (attempt == 0)
                        kill(pid, SIGTERM);  // never under the slots' lock
                }
        }
        if (!any)
            break;
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
        CHECK_FOR_INTERRUPTS();
    }
    slots_clear_stopped();
}

// The sink workers: one per slot whose relay runs and has seen a subscription
// with an external sink; stopped when it no longer has one, or its relay
// stops. One that exited is started again after kRestartDelayMs.
void
manage_sinks(TimestampTz now, Oid role, long *timeout)
{
    for (int i = 0; i < relay_slot_count(); i++) {
        LauncherSlot &ls = local_slots[i];
        Oid db;
        char dbname[NAMEDATALEN];
        bool assigned = slot_assigned(i, &db, dbname);
        BgwHandleStatus relay = worker_status(i);
        bool wanted = assigned && !ls.stopping && (relay == BGWH_STARTED || relay == BGWH_NOT_YET_STARTED) &&
                      slot_wants_sink(i);
        BgwHandleStatus st = BGWH_STOPPED;
        if (ls.sink_handle != nullptr) {
            pid_t pid;
            st = GetBackgroundWorkerPid(ls.sink_handle, &pid);
        }
        if (st == BGWH_POSTMASTER_DIED)
            proc_exit(1);
        bool running = st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED;
        if (!wanted) {
            if (running)
                TerminateBackgroundWorker(ls.sink_handle);
            else if (ls.sink_handle != nullptr) {
                pfree(ls.sink_handle);
                ls.sink_handle = nullptr;
            }
            continue;
        }
        if (running)
            continue;
        if (ls.sink_handle != nullptr) {
            pfree(ls.sink_handle);
            ls.sink_handle = nullptr;
            ls.sink_stopped_at = now;
            ereport(LOG, (errmsg("outbox launcher: the sink worker for database \"%s\" exited; restarting it in %d ms",
                                 dbname, kRestartDelayMs)));
        }
        if (ls.sink_stopped_at != 0) {
            long left = kRestartDelayMs - static_cast<long>((now - ls.sink_stopped_at) / 1000);
            if (left > 0) {
                *timeout = Min(*timeout, left);
                continue;
            }
        }
        ls.sink_handle = register_worker(i, db, dbname, ls.role != InvalidOid ? ls.role : role, true);
        if (ls.sink_handle == nullptr)
            *timeout = Min(*timeout, kRestartDelayMs);
    }
}

// Whether the launcher said that outbox.base_backoff is above
// outbox.max_backoff (said again only after it was right in between).
bool backoff_warned = false;

// One pass: compare what runs with what is configured. Returns how long to
// wait before the next pass (unless woken earlier).
long
launcher_pass()
{
    long timeout = kLauncherRecheckMs;
    int nslots = relay_slot_count();
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
    bool backoff_bad = backoff_pair_is_inconsistent(false);
    if (backoff_bad && !backoff_warned)
        (void) backoff_pair_is_inconsistent(true);
    backoff_warned = backoff_bad;

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
        Oid db;
        char dbname[NAMEDATALEN];
        if (!slot_assigned(i, &db, dbname))
            continue;
        bool wanted = false;
        for (int k = 0; k < nwant; k++)
            wanted = wanted || want[k] == db;
        if (wanted && local_slots[i].handle != nullptr && local_slots[i].role != role)
            wanted = false;  // outbox.role changed: restart it as the new role
        BgwHandleStatus st = worker_status(i);
        if (!wanted || local_slots[i].stopping) {
            if (st != BGWH_STOPPED) {
                if (!local_slots[i].stopping) {
                    ereport(LOG, (errmsg("outbox launcher: stopping the relay for database \"%s\"", dbname)));
                    TerminateBackgroundWorker(local_slots[i].handle);
                }
                local_slots[i].stopping = true;
                timeout = Min(timeout, 100);
            } else {
                if (local_slots[i].handle != nullptr)
                    pfree(local_slots[i].handle);
                if (local_slots[i].sink_handle != nullptr) {
                    // Its relay is gone: so goes its sink worker.
                    TerminateBackgroundWorker(local_slots[i].sink_handle);
                    pfree(local_slots[i].sink_handle);
                }
                memset(&local_slots[i], 0, sizeof(LauncherSlot));
                if (!wanted)
                    slot_free(i);
            }
        }
    }
    // Start what is wanted and not running.
    for (int k = 0; k < nwant; k++) {
        int i = slot_assign(want[k], want_names[k]);
        if (i < 0) {
            timeout = Min(timeout, kRestartDelayMs);
            continue;
        }
        char dbname[NAMEDATALEN];  // as the slot has it (the name it was assigned under)
        (void) slot_assigned(i, nullptr, dbname);
        if (local_slots[i].stopping)
            continue;
        BgwHandleStatus st = worker_status(i);
        if (st == BGWH_STARTED || st == BGWH_NOT_YET_STARTED)
            continue;
        if (st == BGWH_POSTMASTER_DIED)
            proc_exit(1);
        // Its database is being dropped: not before the DROP had its time.
        if (slot_leave_until(i, now) != 0) {
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
                                 dbname, ls.restart_delay_ms)));
        }
        if (ls.stopped_at != 0) {
            long left = ls.restart_delay_ms -
                        static_cast<long>((now - ls.stopped_at) / 1000);
            if (left > 0) {
                timeout = Min(timeout, left);
                continue;
            }
        }
        if (!start_worker(i, want[k], dbname, role))
            timeout = Min(timeout, kRestartDelayMs);
    }
    manage_sinks(now, role, &timeout);
    return timeout;
}

void
launcher_main(Datum arg)
{
    pqsignal(SIGHUP, SignalHandlerForConfigReload);
    pqsignal(SIGTERM, die);
    BackgroundWorkerUnblockSignals();
    // No database: pg_database and pg_authid are shared catalogs.
    BackgroundWorkerInitializeConnection(nullptr, nullptr, 0);
    pgstat_report_appname("outbox launcher");

    if (!relay_shmem_ready())
        proc_exit(0);
    local_slots = static_cast<LauncherSlot *>(
        MemoryContextAllocZero(TopMemoryContext, sizeof(LauncherSlot) * relay_slot_count()));
    adopt_leftovers();
    launcher_set_latch(MyLatch);
    before_shmem_exit([](int, Datum) { launcher_set_latch(nullptr); }, 0);
    backoff_warned = backoff_pair_is_inconsistent(false);  // the postmaster said so at its start

    MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "outbox launcher", ALLOCSET_DEFAULT_SIZES);
    for (;;) {
        start_round(cxt);
        long timeout = launcher_pass();
        (void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, timeout, PG_WAIT_EXTENSION);
        ResetLatch(MyLatch);
    }
}

} // namespace

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

extern "C" void
outbox_launcher_main(Datum arg)
{
    outbox::guarded_entry([arg] { outbox::launcher_main(arg); });
}
