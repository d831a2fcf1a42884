// Checks of the arguments the SQL functions share (see args.hpp).
#include "outbox/pg.hpp"
#include "outbox/args.hpp"
#include "outbox/limits.hpp"
#include "outbox/settings.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstdlib>
#include <cstring>

namespace outbox {

int
lease_seconds_arg(Interval *lease, const char *what)
{
    // Months count as 30 days, days as 24 hours, as interval comparison does.
    double secs = static_cast<double>(lease->time) / USECS_PER_SEC +
                  static_cast<double>(lease->day) * SECS_PER_DAY +
                  static_cast<double>(lease->month) * DAYS_PER_MONTH * SECS_PER_DAY;
    if (!(secs >= kMinLeaseSeconds && secs <= kMaxLeaseSeconds))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s must be between 1 second and 24 hours", what),
                        errdetail("The value given is %s.",
                                  DatumGetCString(DirectFunctionCall1(interval_out, PointerGetDatum(lease))))));
    int whole = static_cast<int>(secs);
    return (whole < secs) ? whole + 1 : whole;  // round up: never shorter than asked
}

// Lease from an interval argument, or the outbox.processing_timeout default.
int
lease_arg(FunctionCallInfo fcinfo, int argno)
{
    if (PG_ARGISNULL(argno))
        return (guc_processing_timeout_ms + 999) / 1000;
    return lease_seconds_arg(PG_GETARG_INTERVAL_P(argno), "lease");
}

int64
token_arg(FunctionCallInfo fcinfo, int argno)
{
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("lease_token must not be NULL"),
                        errhint("Pass the lease_token that outbox_claim() returned with the events.")));
    return PG_GETARG_INT64(argno);
}

ArrayType *
ids_arg(FunctionCallInfo fcinfo, int argno, int *n)
{
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("ids must not be NULL")));
    return distinct_uuid_array(PG_GETARG_ARRAYTYPE_P(argno), n);
}

ArrayType *
distinct_uuid_array(ArrayType *ids, int *n_out)
{
    if (ARR_NDIM(ids) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                        errmsg("ids must be a one-dimensional array")));
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("ids must not be empty")));
    if (n > kMaxPublishBatch)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("at most %d ids can be given at once, not %d", kMaxPublishBatch, n)));
    for (int i = 0; i < n; i++)
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                            errmsg("ids must not contain NULL")));
    qsort(elems, n, sizeof(Datum), [](const void *a, const void *b) {
        return memcmp(DatumGetUUIDP(*static_cast<const Datum *>(a)),
                      DatumGetUUIDP(*static_cast<const Datum *>(b)), UUID_LEN);
    });
    int k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || memcmp(DatumGetUUIDP(elems[k - 1]), DatumGetUUIDP(elems[i]), UUID_LEN) != 0)
            elems[k++] = elems[i];
    *n_out = k;
    return construct_array(elems, k, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
}

TimestampTz
timestamp_plus_arg(TimestampTz base, Interval *interval, const char *what)
{
    MemoryContext cxt = CurrentMemoryContext;
    volatile TimestampTz result = 0;
    volatile bool out_of_range = false;
    PG_TRY();
    {
        result = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(base),
                                                         IntervalPGetDatum(interval)));
    }
    PG_CATCH();
    {
        // Only the range error of the addition is ours to restate; it leaves
        // nothing behind (a pure computation), and an ERROR follows at once.
        MemoryContextSwitchTo(cxt);
        ErrorData *edata = CopyErrorData();
        if (edata->sqlerrcode != ERRCODE_DATETIME_VALUE_OUT_OF_RANGE)
            PG_RE_THROW();
        FlushErrorState();
        FreeErrorData(edata);
        out_of_range = true;
    }
    PG_END_TRY();
    if (out_of_range)
        ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                        errmsg("%s is out of range: %s from now is past the largest timestamp", what,
                               DatumGetCString(DirectFunctionCall1(interval_out, IntervalPGetDatum(interval)))),
                        errhint("Give a %s of at most a few thousand years.", what)));
    return result;
}

} // namespace outbox
