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
#include "outbox/shmem.hpp"

extern "C" {
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/timestamp.h"
}

#include <csignal>

namespace outbox {

namespace {

constexpr int kLeaveForMs = 30 * 1000;     // the launcher waits this long before serving it again
constexpr int kWaitForLeaveMs = 2000;      // then SIGTERM, within DROP DATABASE's own 5 s
constexpr int kPollMs = 20;

ProcessUtility_hook_type prev_process_utility = nullptr;

void
ask_relay_to_leave(const char *dbname)
{
    Oid db = get_database_oid(dbname, true);
    // Only for a DROP that may succeed: its owner (or a superuser) asks.
    if (!OidIsValid(db) || !pg_database_ownercheck(db, GetUserId()))
        return;
    int slot = slot_ask_to_leave(db, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kLeaveForMs));
    if (slot < 0)
        return;
    for (int waited = 0; waited < kWaitForLeaveMs; waited += kPollMs) {
        if (slot_worker_pid(slot) == 0 && slot_sink_pid(slot) == 0)
            return;
        CHECK_FOR_INTERRUPTS();
        pg_usleep(kPollMs * 1000L);
    }
    // Still in a handler or a long batch: end it (its batch rolls back); the
    // sink worker's leases are taken back when a sink worker starts again.
    int pids[2] = {slot_worker_pid(slot), slot_sink_pid(slot)};
    for (int pid : pids)
        if (pid != 0)
            (void) kill(pid, SIGTERM);
}

void
process_utility(PlannedStmt *pstmt, const char *query, bool read_only_tree, ProcessUtilityContext context,
                ParamListInfo params, QueryEnvironment *env, DestReceiver *dest, QueryCompletion *qc)
{
    if (relay_shmem_ready() && IsA(pstmt->utilityStmt, DropdbStmt))
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

