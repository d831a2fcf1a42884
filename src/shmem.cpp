// The relay's shared memory (see shmem.hpp).
//
// The layout and its lock are private to this file. The counters are
// atomics, so that they can be read without the lock; a worker adds a batch's
// counts under the lock all the same, so that outbox_worker_stats() (which
// copies the slots under it) sees all of them or none. Everything else in a slot is read and written under
// the lock, held only for copies of a few bytes (or of the slots) and scans
// of at most outbox.max_databases slots: never a system call (kill), an
// allocation or anything that can raise an ERROR. A slot's queue of events
// the sink worker settled for the relay to archive has a lock of its own
// (tranche "outbox archive queue", one per slot), held for copies of at most
// its 2,048 ids; taken after the relay lock when both are (reset_slot).
#include "outbox/pg.hpp"
#include "outbox/settings.hpp"
#include "outbox/shmem.hpp"
#include "outbox/metrics.hpp"

extern "C" {
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace outbox {

namespace {

// One database served by a relay worker.
struct RelaySlot {
    bool in_use;                   // assigned to a database by the launcher
    Oid dboid;
    char dbname[NAMEDATALEN];
    int pid;                       // the worker's pid while it runs, else 0
    Latch *latch;                  // the worker's latch while it runs, else null
    pg_atomic_uint32 wake;         // 1: a commit asked the worker for a round (its latch set too)
    TimestampTz started_at;
    char activity[kActivityLen];
    pg_atomic_uint64 delivered;    // events whose handlers all succeeded (archived)
    pg_atomic_uint64 failed;       // events that became failed (attempts exhausted)
    pg_atomic_uint64 retried;      // failed attempts scheduled for a retry
    pg_atomic_uint64 reclaimed;    // expired leases of external consumers taken back
    pg_atomic_uint64 batches;      // batches that claimed at least one event
    TimestampTz last_batch_at;
    TimestampTz last_error_at;
    char last_error[kLastErrorLen];
    TimestampTz leave_until;       // DROP DATABASE under way: the worker leaves and is
                                   // not started again before this (0: not asked)
    // The sink worker of the same database (external deliveries).
    bool wants_sink;               // the relay saw a subscription with an external sink
    int sink_pid;                  // the sink worker's pid while it runs, else 0
    Latch *sink_latch;             // its latch while it runs, else null
    char sink_activity[kActivityLen];
    pg_atomic_uint64 sink_queue;   // its Kafka producers' queue length + 1 (0: none)
    // Events the sink worker settled, for the relay to archive: a ring of
    // `count` ids from `head`, under the slot's lock of the tranche "outbox
    // archive queue" (taken after the relay lock when both are held).
    int archive_head;
    int archive_count;
    pg_uuid_t archive_ids[kArchiveQueueLen];
};

struct RelayShared {
    LWLock *lock;
    LWLockPadded *archive_locks;   // one per slot
    Latch *launcher_latch;         // the launcher's, while it runs
    pg_atomic_uint64 sink_config;  // bumped when subscriptions or endpoints change
    int nslots;
    RelaySlot slots[FLEXIBLE_ARRAY_MEMBER];
};

constexpr const char *kTrancheName = "outbox relay";
constexpr const char *kArchiveTrancheName = "outbox archive queue";

RelayShared *relay_shared = nullptr;
shmem_request_hook_type prev_shmem_request_hook = nullptr;
shmem_startup_hook_type prev_shmem_startup_hook = nullptr;

Size
shared_size()
{
    return add_size(offsetof(RelayShared, slots), mul_size(sizeof(RelaySlot), guc_max_databases));
}

LWLock *
archive_lock(const RelaySlot *s)
{
    return &relay_shared->archive_locks[s - relay_shared->slots].lock;
}

// An empty slot: its fields (at startup, or under both locks).
void
clear_slot(RelaySlot *s)
{
    memset(s, 0, sizeof *s);
    pg_atomic_init_u64(&s->delivered, 0);
    pg_atomic_init_u64(&s->failed, 0);
    pg_atomic_init_u64(&s->retried, 0);
    pg_atomic_init_u64(&s->reclaimed, 0);
    pg_atomic_init_u64(&s->batches, 0);
    pg_atomic_init_u64(&s->sink_queue, 0);
    pg_atomic_init_u32(&s->wake, 0);
}

// An empty slot (under the lock, exclusive; its queue's lock is taken here).
void
reset_slot(RelaySlot *s)
{
    LWLockAcquire(archive_lock(s), LW_EXCLUSIVE);
    clear_slot(s);
    LWLockRelease(archive_lock(s));
}

void
shmem_request()
{
    if (prev_shmem_request_hook)
        prev_shmem_request_hook();
    RequestAddinShmemSpace(shared_size());
    RequestNamedLWLockTranche(kTrancheName, 1);
    RequestNamedLWLockTranche(kArchiveTrancheName, guc_max_databases);
    metrics_shmem_request();
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
        relay_shared->lock = &(GetNamedLWLockTranche(kTrancheName))->lock;
        relay_shared->archive_locks = GetNamedLWLockTranche(kArchiveTrancheName);
        relay_shared->launcher_latch = nullptr;
        pg_atomic_init_u64(&relay_shared->sink_config, 0);
        relay_shared->nslots = guc_max_databases;
        for (int i = 0; i < relay_shared->nslots; i++)
            clear_slot(&relay_shared->slots[i]);
    }
    metrics_shmem_startup();
    LWLockRelease(AddinShmemInitLock);
}

RelaySlot *
slot_at(int i)
{
    Assert(relay_shared != nullptr && i >= 0 && i < relay_shared->nslots);
    return &relay_shared->slots[i];
}

void
lock(LWLockMode mode)
{
    LWLockAcquire(relay_shared->lock, mode);
}

void
unlock()
{
    LWLockRelease(relay_shared->lock);
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

bool
relay_shmem_ready()
{
    return relay_shared != nullptr;
}

int
relay_slot_count()
{
    return relay_shared != nullptr ? relay_shared->nslots : 0;
}

// ---- The launcher

void
slots_clear_stopped()
{
    lock(LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++)
        if (slot_at(i)->pid == 0)
            reset_slot(slot_at(i));
    unlock();
}

int
slot_assign(Oid dboid, const char *dbname)
{
    int free_slot = -1;
    lock(LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = slot_at(i);
        if (s->in_use && s->dboid == dboid) {
            unlock();
            return i;
        }
        if (!s->in_use && s->pid == 0 && free_slot < 0)
            free_slot = i;
    }
    if (free_slot >= 0) {
        RelaySlot *s = slot_at(free_slot);
        reset_slot(s);
        s->in_use = true;
        s->dboid = dboid;
        strlcpy(s->dbname, dbname, NAMEDATALEN);
        strlcpy(s->activity, "starting", kActivityLen);
    }
    unlock();
    return free_slot;
}

bool
slot_assigned(int i, Oid *dboid, char *dbname)
{
    lock(LW_SHARED);
    RelaySlot *s = slot_at(i);
    bool in_use = s->in_use;
    if (dboid != nullptr)
        *dboid = s->dboid;
    if (dbname != nullptr)
        memcpy(dbname, s->dbname, NAMEDATALEN);
    unlock();
    return in_use;
}

void
slot_free(int i)
{
    lock(LW_EXCLUSIVE);
    slot_at(i)->in_use = false;
    slot_at(i)->leave_until = 0;
    unlock();
}

TimestampTz
slot_leave_until(int i, TimestampTz now)
{
    lock(LW_EXCLUSIVE);
    TimestampTz until = slot_at(i)->leave_until;
    if (until != 0 && now >= until)
        slot_at(i)->leave_until = until = 0;  // the DROP failed: serve it again
    unlock();
    return until;
}

// ---- A worker

bool
slot_attach(int i, Oid dboid, char *dbname)
{
    TimestampTz now = GetCurrentTimestamp();
    lock(LW_EXCLUSIVE);
    RelaySlot *s = slot_at(i);
    bool mine = s->in_use && s->dboid == dboid && s->pid == 0;
    if (mine) {
        s->pid = MyProcPid;
        s->latch = MyLatch;
        s->started_at = now;
        strlcpy(s->activity, "starting", kActivityLen);
        memcpy(dbname, s->dbname, NAMEDATALEN);
    }
    unlock();
    return mine;
}

void
slot_detach(int i)
{
    lock(LW_EXCLUSIVE);
    if (slot_at(i)->pid == MyProcPid) {
        slot_at(i)->pid = 0;
        slot_at(i)->latch = nullptr;
    }
    unlock();
}

void
slot_set_activity(int i, const char *what)
{
    lock(LW_EXCLUSIVE);
    strlcpy(slot_at(i)->activity, what, kActivityLen);
    unlock();
}

void
slot_record_error(int i, const char *msg)
{
    char buf[kLastErrorLen];
    copy_message(buf, kLastErrorLen, msg);
    TimestampTz now = GetCurrentTimestamp();
    lock(LW_EXCLUSIVE);
    RelaySlot *s = slot_at(i);
    memcpy(s->last_error, buf, kLastErrorLen);
    s->last_error_at = now;
    strlcpy(s->activity, "error backoff", kActivityLen);
    unlock();
}

void
slot_count_batch(int i, int claimed, int delivered, int retried, int failed, const char *last_error)
{
    if (claimed == 0 && last_error[0] == '\0')
        return;  // nothing claimed: nothing to count
    char buf[kLastErrorLen];
    copy_message(buf, kLastErrorLen, last_error);
    TimestampTz now = GetCurrentTimestamp();
    // Under the lock, although atomic: a reader under the lock sees all of a
    // batch's counts or none.
    lock(LW_EXCLUSIVE);
    RelaySlot *s = slot_at(i);
    pg_atomic_fetch_add_u64(&s->delivered, delivered);
    pg_atomic_fetch_add_u64(&s->failed, failed);
    pg_atomic_fetch_add_u64(&s->retried, retried);
    if (claimed > 0) {
        pg_atomic_fetch_add_u64(&s->batches, 1);
        s->last_batch_at = now;
    }
    if (buf[0] != '\0') {
        memcpy(s->last_error, buf, kLastErrorLen);
        s->last_error_at = now;
    }
    unlock();
}

void
slot_count_reclaimed(int i, int reclaimed, int failed)
{
    lock(LW_EXCLUSIVE);
    pg_atomic_fetch_add_u64(&slot_at(i)->reclaimed, reclaimed);
    pg_atomic_fetch_add_u64(&slot_at(i)->failed, failed);
    unlock();
}

bool
slot_asked_to_leave(int i)
{
    lock(LW_SHARED);
    bool leave = slot_at(i)->leave_until != 0;
    unlock();
    return leave;
}

// ---- The sink worker of a slot

void
slot_set_wants_sink(int i, bool wants)
{
    lock(LW_EXCLUSIVE);
    bool changed = slot_at(i)->wants_sink != wants;
    slot_at(i)->wants_sink = wants;
    Latch *launcher = relay_shared->launcher_latch;
    unlock();
    if (changed && launcher != nullptr)
        SetLatch(launcher);  // it starts or stops the sink worker now
}

void
sink_config_changed() noexcept
{
    if (relay_shared != nullptr)
        pg_atomic_fetch_add_u64(&relay_shared->sink_config, 1);
}

uint64
sink_config_generation() noexcept
{
    return relay_shared != nullptr ? pg_atomic_read_u64(&relay_shared->sink_config) : 0;
}

void
launcher_set_latch(Latch *latch)
{
    lock(LW_EXCLUSIVE);
    relay_shared->launcher_latch = latch;
    unlock();
}

int
slot_sink_pid(int i)
{
    lock(LW_SHARED);
    int pid = slot_at(i)->sink_pid;
    unlock();
    return pid;
}

bool
slot_wants_sink(int i)
{
    lock(LW_SHARED);
    bool wants = slot_at(i)->in_use && slot_at(i)->wants_sink;
    unlock();
    return wants;
}

bool
slot_sink_attach(int i, Oid dboid, char *dbname)
{
    lock(LW_EXCLUSIVE);
    RelaySlot *s = slot_at(i);
    bool mine = s->in_use && s->dboid == dboid && s->sink_pid == 0;
    if (mine) {
        s->sink_pid = MyProcPid;
        s->sink_latch = MyLatch;
        strlcpy(s->sink_activity, "starting", kActivityLen);
        memcpy(dbname, s->dbname, NAMEDATALEN);
    }
    unlock();
    return mine;
}

void
slot_sink_detach(int i)
{
    lock(LW_EXCLUSIVE);
    if (slot_at(i)->sink_pid == MyProcPid) {
        slot_at(i)->sink_pid = 0;
        slot_at(i)->sink_latch = nullptr;
        pg_atomic_write_u64(&slot_at(i)->sink_queue, 0);
    }
    unlock();
}

void
slot_sink_set_queue(int i, long queued) noexcept
{
    if (relay_shared != nullptr && i >= 0)
        pg_atomic_write_u64(&slot_at(i)->sink_queue, queued < 0 ? 0 : static_cast<uint64>(queued) + 1);
}

void
slot_sink_set_activity(int i, const char *what)
{
    lock(LW_EXCLUSIVE);
    strlcpy(slot_at(i)->sink_activity, what, kActivityLen);
    unlock();
}

Latch *
slot_sink_latch_of(Oid dboid) noexcept
{
    if (relay_shared == nullptr)
        return nullptr;
    Latch *latch = nullptr;
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = &relay_shared->slots[i];
        if (s->in_use && s->dboid == dboid) {
            latch = s->sink_latch;
            break;
        }
    }
    LWLockRelease(relay_shared->lock);
    return latch;
}

// ---- Events the sink worker settled, archived by the relay

int
slot_archive_room(int i) noexcept
{
    if (relay_shared == nullptr)
        return 0;
    RelaySlot *s = slot_at(i);
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    bool relay_runs = s->in_use && s->dboid == MyDatabaseId && s->pid != 0;
    LWLockRelease(relay_shared->lock);
    if (!relay_runs)
        return 0;
    LWLockAcquire(archive_lock(s), LW_SHARED);
    int room = kArchiveQueueLen - s->archive_count;
    LWLockRelease(archive_lock(s));
    return room;
}

int
slot_archive_push(int i, const pg_uuid_t *ids, int n) noexcept
{
    if (relay_shared == nullptr || n <= 0)
        return 0;
    RelaySlot *s = slot_at(i);
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    Latch *latch = s->in_use && s->dboid == MyDatabaseId && s->pid != 0 ? s->latch : nullptr;
    LWLockRelease(relay_shared->lock);
    if (latch == nullptr)
        return 0;
    LWLockAcquire(archive_lock(s), LW_EXCLUSIVE);
    int room = kArchiveQueueLen - s->archive_count;
    int taken = n < room ? n : room;
    for (int k = 0; k < taken; k++)
        s->archive_ids[(s->archive_head + s->archive_count + k) % kArchiveQueueLen] = ids[k];
    s->archive_count += taken;
    LWLockRelease(archive_lock(s));
    if (taken > 0)
        SetLatch(latch);  // valid shared memory even if the relay just exited
    return taken;
}

int
slot_archive_take(int i, pg_uuid_t *out, int max) noexcept
{
    if (relay_shared == nullptr || max <= 0)
        return 0;
    RelaySlot *s = slot_at(i);
    LWLockAcquire(archive_lock(s), LW_EXCLUSIVE);
    int n = s->archive_count < max ? s->archive_count : max;
    for (int k = 0; k < n; k++)
        out[k] = s->archive_ids[(s->archive_head + k) % kArchiveQueueLen];
    s->archive_head = (s->archive_head + n) % kArchiveQueueLen;
    s->archive_count -= n;
    LWLockRelease(archive_lock(s));
    return n;
}

bool
slot_archive_waiting(int i) noexcept
{
    if (relay_shared == nullptr)
        return false;
    RelaySlot *s = slot_at(i);
    LWLockAcquire(archive_lock(s), LW_SHARED);
    bool waiting = s->archive_count > 0;
    LWLockRelease(archive_lock(s));
    return waiting;
}

// ---- Others

void
slot_wake(Oid dboid) noexcept
{
    if (relay_shared == nullptr)
        return;
    Latch *latch = nullptr;
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = &relay_shared->slots[i];
        if (s->in_use && s->dboid == dboid) {
            pg_atomic_write_u32(&s->wake, 1);  // before the latch: the worker reads it once woken
            latch = s->latch;
            break;
        }
    }
    LWLockRelease(relay_shared->lock);
    // A latch stays valid shared memory even if its owner just exited: a
    // spurious wake-up is harmless.
    if (latch != nullptr)
        SetLatch(latch);
}

bool
slot_take_wake(int i)
{
    return pg_atomic_exchange_u32(&slot_at(i)->wake, 0) != 0;
}

int
slot_ask_to_leave(Oid dboid, TimestampTz until)
{
    int slot = -1;
    Latch *latch = nullptr;
    Latch *sink_latch = nullptr;
    lock(LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = slot_at(i);
        if (s->in_use && s->dboid == dboid) {
            s->leave_until = until;
            latch = s->latch;
            sink_latch = s->sink_latch;
            slot = i;
            break;
        }
    }
    unlock();
    // A latch stays valid shared memory even if its owner just exited: a
    // spurious wake-up is harmless.
    if (latch != nullptr)
        SetLatch(latch);
    if (sink_latch != nullptr)
        SetLatch(sink_latch);
    return slot;
}

int
slot_worker_pid(int i)
{
    lock(LW_SHARED);
    int pid = slot_at(i)->pid;
    unlock();
    return pid;
}

int
slots_view(SlotView *out)
{
    int n = 0;
    lock(LW_SHARED);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = slot_at(i);
        if (!s->in_use)
            continue;
        SlotView &v = out[n++];
        memcpy(v.dbname, s->dbname, NAMEDATALEN);
        v.pid = s->pid;
        v.started_at = s->started_at;
        memcpy(v.activity, s->activity, kActivityLen);
        // The counters need no lock; read here, they belong to this slot.
        v.delivered = pg_atomic_read_u64(&s->delivered);
        v.failed = pg_atomic_read_u64(&s->failed);
        v.retried = pg_atomic_read_u64(&s->retried);
        v.reclaimed = pg_atomic_read_u64(&s->reclaimed);
        v.batches = pg_atomic_read_u64(&s->batches);
        v.sink_queue = static_cast<int64>(pg_atomic_read_u64(&s->sink_queue)) - 1;
        v.last_batch_at = s->last_batch_at;
        v.last_error_at = s->last_error_at;
        memcpy(v.last_error, s->last_error, kLastErrorLen);
    }
    unlock();
    return n;
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
