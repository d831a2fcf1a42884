// Shared memory of the relay and the wake-on-commit signal.
//
// Each relay worker publishes its latch in its database's slot. A backend that
// published marks itself; the transaction callback sets the latch of its
// database's worker on commit (never before, never on abort). The callback
// only reads shared memory under a shared LWLock and sets a latch: nothing in it
// can raise an ERROR, which at commit time would be a PANIC.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/state.hpp"
#include "outbox/wakeup.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/tuplestore.h"
}

#include <cstring>

namespace outbox {

RelayShared *relay_shared = nullptr;
int guc_max_databases = 16;

namespace {

shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

constexpr const char *kTrancheName = "outbox relay";

// Set by note_published, cleared at the end of every transaction.
bool wake_at_commit = false;

Size
shared_size()
{
    return add_size(offsetof(RelayShared, slots), mul_size(sizeof(RelaySlot), guc_max_databases));
}

void
shmem_request()
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    RequestAddinShmemSpace(shared_size());
    RequestNamedLWLockTranche(kTrancheName, 1);
}

void
shmem_startup()
{
    if (prev_shmem_startup_hook)
        prev_shmem_startup_hook();
    LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
    bool found;
    relay_shared = static_cast<RelayShared *>(ShmemInitStruct("outbox relay", shared_size(), &found));
    if (!found) {
        memset(relay_shared, 0, shared_size());
        relay_shared->lock = &(GetNamedLWLockTranche(kTrancheName))->lock;
        relay_shared->nslots = guc_max_databases;
    }
    LWLockRelease(AddinShmemInitLock);
}

// Runs at commit, where an ERROR would be a PANIC: nothing here can fail or
// throw (noexcept makes the compiler hold us to no C++ exception). A shared
// LWLock for a scan of at most outbox.max_databases slots.
void
xact_callback(XactEvent event, void *arg) noexcept
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        if (wake_at_commit && relay_shared != nullptr) {
            Latch *latch = nullptr;
            LWLockAcquire(relay_shared->lock, LW_SHARED);
            for (int i = 0; i < relay_shared->nslots; i++) {
                RelaySlot *s = &relay_shared->slots[i];
                if (s->in_use && s->dboid == MyDatabaseId) {
                    latch = s->latch;
                    break;
                }
            }
            LWLockRelease(relay_shared->lock);
            // A latch stays valid shared memory even if its owner just
            // exited: a spurious wake-up is harmless.
            if (latch != nullptr)
                SetLatch(latch);
        }
        wake_at_commit = false;
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
        // A prepared transaction commits later, elsewhere: the poll finds it.
        wake_at_commit = false;
        break;
    default:
        break;
    }
}

} // namespace

void
install_shmem_hooks()
{
    prev_shmem_request_hook = shmem_request_hook;
    shmem_request_hook = shmem_request;
    prev_shmem_startup_hook = shmem_startup_hook;
    shmem_startup_hook = shmem_startup;
}

void
register_wakeup_callback()
{
    RegisterXactCallback(xact_callback, nullptr);
}

void
note_published()
{
    wake_at_commit = true;
}

void
copy_message(char *dst, int cap, const char *msg)
{
    if (msg == nullptr)
        msg = "";
    int len = static_cast<int>(strlen(msg));
    if (len >= cap)
        len = pg_mbcliplen(msg, len, cap - 1);
    memcpy(dst, msg, len);
    dst[len] = '\0';
}

} // namespace outbox

using namespace outbox;

// Wake this database's relay at commit (after a subscription changed).
OUTBOX_SQL_FUNCTION(_outbox_wake_relay)
{
    note_published();
    PG_RETURN_VOID();
}

// One row per database the relay serves: what its worker does, its counters.
OUTBOX_SQL_FUNCTION(outbox_worker_stats)
{
    if (relay_shared == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("the outbox relay is not running: the library is not preloaded"),
                        errhint("Add 'outbox' to shared_preload_libraries in postgresql.conf, list the databases "
                                "in outbox.databases, and restart the server.")));
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    constexpr int kCols = 12;
    if (rsinfo->setDesc->natts != kCols)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("outbox_worker_stats() is declared with %d columns; this library returns %d",
                               rsinfo->setDesc->natts, kCols),
                        errhint("The extension's SQL objects and its library do not match: run ALTER EXTENSION outbox UPDATE.")));

    int n = relay_shared->nslots;
    RelaySlot *copy = static_cast<RelaySlot *>(palloc(sizeof(RelaySlot) * n));
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    memcpy(copy, relay_shared->slots, sizeof(RelaySlot) * n);
    LWLockRelease(relay_shared->lock);

    for (int i = 0; i < n; i++) {
        RelaySlot *s = &copy[i];
        if (!s->in_use)
            continue;
        Datum v[kCols];
        bool isnull[kCols] = {};
        v[0] = CStringGetTextDatum(s->dbname);
        v[1] = Int32GetDatum(s->pid);
        isnull[1] = s->pid == 0;
        v[2] = CStringGetTextDatum(s->pid == 0 ? "stopped" : s->activity);
        v[3] = TimestampTzGetDatum(s->started_at);
        isnull[3] = s->started_at == 0;
        v[4] = Int64GetDatum(static_cast<int64>(s->delivered));
        v[5] = Int64GetDatum(static_cast<int64>(s->failed));
        v[6] = Int64GetDatum(static_cast<int64>(s->retried));
        v[7] = Int64GetDatum(static_cast<int64>(s->reclaimed));
        v[8] = Int64GetDatum(static_cast<int64>(s->batches));
        v[9] = TimestampTzGetDatum(s->last_batch_at);
        isnull[9] = s->last_batch_at == 0;
        v[10] = CStringGetTextDatum(s->last_error);
        isnull[10] = s->last_error[0] == '\0';
        v[11] = TimestampTzGetDatum(s->last_error_at);
        isnull[11] = s->last_error_at == 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);
    }
    return (Datum) 0;
}
