// outbox_worker_stats(): one row per database the relay serves, from its
// shared-memory slot (shmem.hpp).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/shmem.hpp"

extern "C" {
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

using namespace outbox;

OUTBOX_SQL_FUNCTION(outbox_worker_stats)
{
    if (!relay_shmem_ready())
        ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                        errmsg("the outbox relay is not running: the library is not preloaded"),
                        errhint("Add 'outbox' to shared_preload_libraries in postgresql.conf, list the databases "
                                "in outbox.databases, and restart the server.")));
    InitMaterializedSRF(fcinfo, 0);
    ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
    // 13 columns; 12 as 0.1.1 declared it (no sink_queue), until ALTER EXTENSION UPDATE.
    constexpr int kCols = 13;
    const int ncols = rsinfo->setDesc->natts;
    if (ncols != kCols && ncols != kCols - 1)
        ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                        errmsg("outbox_worker_stats() is declared with %d columns; this library returns %d",
                               ncols, kCols),
                        errhint("The extension's SQL objects and its library do not match: run ALTER EXTENSION outbox UPDATE.")));

    SlotView *slots = static_cast<SlotView *>(palloc(sizeof(SlotView) * relay_slot_count()));
    int n = slots_view(slots);
    for (int i = 0; i < n; i++) {
        const SlotView *s = &slots[i];
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
        v[12] = Int64GetDatum(s->sink_queue);
        isnull[12] = s->sink_queue < 0;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, isnull);  // the first ncols
    }
    return (Datum) 0;
}
