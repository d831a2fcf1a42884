// Waking the relay at commit (see wakeup.hpp).
//
// The callback only reads shared memory under a shared LWLock, sets the
// worker's wake flag (an atomic) and its latch: nothing in it can raise an
// ERROR, which at commit time would be a PANIC.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/shmem.hpp"
#include "outbox/wakeup.hpp"

extern "C" {
#include "access/xact.h"
#include "miscadmin.h"
}

namespace outbox {

namespace {

// Set by note_published, cleared at the end of every transaction.
bool wake_at_commit = false;
// Set by _outbox_wake_relay (a subscription or an endpoint changed): the sink
// worker looks again too.
bool wake_sink_at_commit = false;

// Runs at commit, where an ERROR would be a PANIC: nothing here can fail or
// throw (noexcept makes the compiler hold us to no C++ exception).
void
xact_callback(XactEvent event, void *arg) noexcept
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_PARALLEL_COMMIT:
        if (wake_at_commit)
            slot_wake(MyDatabaseId);
        if (wake_sink_at_commit) {
            sink_config_changed();
            Latch *latch = slot_sink_latch_of(MyDatabaseId);
            if (latch != nullptr)
                SetLatch(latch);
        }
        wake_at_commit = false;
        wake_sink_at_commit = false;
        break;
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PARALLEL_ABORT:
    case XACT_EVENT_PREPARE:
        // A prepared transaction commits later, elsewhere: the poll finds it.
        wake_at_commit = false;
        wake_sink_at_commit = false;
        break;
    default:
        break;
    }
}

} // namespace

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

} // namespace outbox

using namespace outbox;

// Wake this database's relay at commit (after a subscription changed).
OUTBOX_SQL_FUNCTION(_outbox_wake_relay)
{
    note_published();
    wake_sink_at_commit = true;
    PG_RETURN_VOID();
}
