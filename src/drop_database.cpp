// DROP DATABASE of a served database (see drop_database.hpp).
//
// DROP DATABASE waits up to 5 seconds for other sessions of the database to
// leave and fails with "being accessed by other users" if one stays. Core's
// own per-database workers (autovacuum) are told to leave; ours is told here,
// before the DROP runs: its slot gets a leave-by time, the worker sees it at
// its next round (or between batches) and exits quietly, and the launcher
// starts no worker for that slot until the time has passed. If the DROP
// succeeds, the database is gone and its slot is freed; if it fails, the
// relay comes back; a database created again under that name is served anew.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/drop_database.hpp"
#include "outbox/wakeup.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
}

#include <csignal>

namespace outbox {

namespace {

constexpr int kLeaveForMs = 30 * 1000;     // the launcher waits this long before serving it again
constexpr int kWaitForLeaveMs = 2000;      // then SIGTERM, within DROP DATABASE's own 5 s
constexpr int kPollMs = 20;

ProcessUtility_hook_type prev_process_utility = nullptr;

int
worker_pid_of(int slot)
{
    LWLockAcquire(relay_shared->lock, LW_SHARED);
    int pid = relay_shared->slots[slot].pid;
    LWLockRelease(relay_shared->lock);
    return pid;
}

void
ask_relay_to_leave(const char *dbname)
{
    Oid db = get_database_oid(dbname, true);
    // Only for a DROP that may succeed: its owner (or a superuser) asks.
    if (!OidIsValid(db) || !pg_database_ownercheck(db, GetUserId()))
        return;
    int slot = -1;
    Latch *latch = nullptr;
    LWLockAcquire(relay_shared->lock, LW_EXCLUSIVE);
    for (int i = 0; i < relay_shared->nslots; i++) {
        RelaySlot *s = &relay_shared->slots[i];
        if (s->in_use && s->dboid == db) {
            s->leave_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kLeaveForMs);
            latch = s->latch;
            slot = i;
            break;
        }
    }
    LWLockRelease(relay_shared->lock);
    if (slot < 0)
        return;
    if (latch != nullptr)
        SetLatch(latch);
    for (int waited = 0; waited < kWaitForLeaveMs; waited += kPollMs) {
        if (worker_pid_of(slot) == 0)
            return;
        CHECK_FOR_INTERRUPTS();
        pg_usleep(kPollMs * 1000L);
    }
    // Still in a handler or a long batch: end it (its batch rolls back).
    int pid = worker_pid_of(slot);
    if (pid != 0)
        (void) kill(pid, SIGTERM);
}

void
process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
                ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    if (relay_shared != nullptr && IsA(pstmt->utilityStmt, DropdbStmt))
        ask_relay_to_leave(castNode(DropdbStmt, pstmt->utilityStmt)->dbname);
    if (prev_process_utility != nullptr)
        prev_process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc);
    else
        standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc);
}

// The hook PostgreSQL calls: C linkage, a guarded trampoline.
extern "C" void
outbox_process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
                       ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    guarded_entry([&] { process_utility(pstmt, query, read_only_tree, context, params, env, dest, qc); });
}

} // namespace

void
install_drop_database_hook()
{
    prev_process_utility = ProcessUtility_hook;
    ProcessUtility_hook = outbox_process_utility;
}

} // namespace outbox

