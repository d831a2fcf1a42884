// Settling: what a consumer does with the events it claimed (see settle.hpp).
//
// outbox_heartbeat(), outbox_release(), outbox_complete() and outbox_fail()
// all name events and the lease token that claimed them. Each statement only
// touches rows still active under that token; if it matched fewer events than
// named, the call raises ERROR (OB001 for a lost lease, P0002 for an unknown
// id), which undoes whatever the statement did: all or nothing.
//
// A token of a claim made by the calling transaction (outbox_claim_xact)
// names no lease: its events are checked against the transaction's registry
// (xact_claims.hpp) and settled with statements of their own.
#include "outbox/pg.hpp"
#include "outbox/args.hpp"
#include "outbox/backoff.hpp"
#include "outbox/errcodes.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/limits.hpp"
#include "outbox/metrics.hpp"
#include "outbox/settings.hpp"
#include "outbox/settle.hpp"
#include "outbox/spi.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/pg_prng.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
}

#include <cstring>

namespace outbox {

namespace {

// Raise the right error for an event that an operation holding lease `token`
// could not find leased to it: unknown (P0002) or lease lost (OB001).
[[noreturn]] void
raise_not_leased(pg_uuid_t *id, int64 token, const char *action)
{
    // Diagnose with a fresh snapshot: the caller's statement snapshot may
    // predate a concurrent reclaim that its UPDATE/DELETE waited for, and the
    // read-only queries below would otherwise see the event as it was then.
    // (No pop: this function always ends in ERROR, which unwinds the stack.)
    PushActiveSnapshot(GetTransactionSnapshot());
    char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
    Datum arg = UUIDPGetDatum(id);
    run(Stmt::LeaseCheck, &arg, nullptr, true, 1);
    if (SPI_processed > 0) {
        bool isnull;
        char *status = TextDatumGetCString(
            SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        Datum held = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        // The token may have held the event and lost it (the lease expired and
        // the event was claimed again), or never have held it (a token of
        // another claim): say what is true now.
        if (strcmp(status, "active") == 0 && !isnull)
            ereport(ERROR, (errcode(ERRCODE_OUTBOX_LEASE_LOST),
                            errmsg("cannot %s event %s: lease token " INT64_FORMAT " does not hold it",
                                   action, id_text, token),
                            errdetail("It is held under lease token " INT64_FORMAT ".", DatumGetInt64(held)),
                            errhint("A lease whose time ran out can be taken by another claim: heartbeat with "
                                    "outbox_heartbeat() more often than the lease length, or claim with a longer lease.")));
        ereport(ERROR, (errcode(ERRCODE_OUTBOX_LEASE_LOST),
                        errmsg("cannot %s event %s: lease token " INT64_FORMAT " does not hold it",
                               action, id_text, token),
                        errdetail("No consumer holds it: it is %s (its lease expired, or it was released or failed).",
                                  status)));
    }
    run(Stmt::ArchiveCheck, &arg, nullptr, true, 1);
    if (SPI_processed > 0) {
        bool isnull;
        char *status = TextDatumGetCString(
            SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        ereport(ERROR, (errcode(ERRCODE_OUTBOX_LEASE_LOST),
                        errmsg("cannot %s event %s: lease token " INT64_FORMAT " does not hold it",
                               action, id_text, token),
                        errdetail("It is already in the archive (%s).", status)));
    }
    ereport(ERROR, (errcode(ERRCODE_NO_DATA_FOUND),
                    errmsg("cannot %s event %s: no such event", action, id_text)));
}

// After an UPDATE/DELETE on `ids` that matched fewer rows than asked: find an
// id that was not matched (first column of SPI_tuptable) and explain it.
[[noreturn]] void
report_unmatched(ArrayType *ids, int64 token, const char *action)
{
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
    SPITupleTable *tt = SPI_tuptable;
    uint64 got = SPI_processed;
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (uint64 r = 0; r < got && !found; r++) {
            bool isnull;
            Datum d = SPI_getbinval(tt->vals[r], tt->tupdesc, 1, &isnull);
            found = !isnull && memcmp(DatumGetUUIDP(d), DatumGetUUIDP(elems[i]), UUID_LEN) == 0;
        }
        if (!found)
            raise_not_leased(DatumGetUUIDP(elems[i]), token, action);
    }
    elog(ERROR, "outbox: %s matched fewer events than asked, yet each was found", action);
    pg_unreachable();
}

// Run a statement taking (ids, token[, extra]) that must match every id, or
// raise ERROR (the caller's transaction then undoes the partial change).
int
run_on_leased(Stmt which, ArrayType *ids, int n, int64 token, const Datum *extra, const char *extra_nulls,
              const char *action)
{
    Datum values[3] = {PointerGetDatum(ids), Int64GetDatum(token), extra ? extra[0] : (Datum) 0};
    char nulls[4] = {' ', ' ', extra_nulls ? extra_nulls[0] : ' ', '\0'};
    run(which, values, nulls);
    if (SPI_processed != static_cast<uint64>(n))
        report_unmatched(ids, token, action);
    return n;
}

// The events a completion just archived (SPI_tuptable: id, lease_owner),
// counted as delivered to their consumer (their lag was counted at claim).
void
count_completed()
{
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool owner_null;
        Datum owner = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &owner_null);
        metric_count(MetricKind::Consumer, owner_null ? nullptr : TextDatumGetCString(owner), MetricCount::Delivered);
    }
}

} // namespace

text *
clip_error(text *error)
{
    // Long errors (stack traces) are kept, cut at a character boundary.
    int len = VARSIZE_ANY_EXHDR(error);
    if (len <= kMaxErrorBytes)
        return error;
    int cut = pg_mbcliplen(VARDATA_ANY(error), len, kMaxErrorBytes - 20);
    char *buf = static_cast<char *>(palloc(cut + 32));
    memcpy(buf, VARDATA_ANY(error), cut);
    strcpy(buf + cut, " ... [truncated]");
    return cstring_to_text(buf);
}

TimestampTz
retry_time(TimestampTz now, int failures_before)
{
    double wait_ms = backoff_ms(failures_before + 1, guc_base_backoff_ms, guc_max_backoff_ms,
                                pg_prng_double(&pg_global_prng_state));
    return now + static_cast<int64>(wait_ms * 1000.0);
}

const char *
fail_leased(pg_uuid_t *id, int64 token, text *error, Interval *retry_in, bool retryable, TimestampTz *next_out)
{
    error = clip_error(error);

    Datum key[2] = {UUIDPGetDatum(id), Int64GetDatum(token)};
    XactClaimInfo claim;
    char *consumer = nullptr;  // for the metrics
    bool isnull;
    if (xact_claim_known(token, &claim)) {
        ArrayType *one = construct_array(key, 1, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
        xact_claim_check(one, token, "fail", true);
        run(Stmt::FailLockXact, key, nullptr, false, 1);
        if (SPI_processed != 1)
            elog(ERROR, "outbox: event held by this transaction's claim " INT64_FORMAT " is gone", token);
        consumer = claim.consumer != nullptr ? text_to_cstring(claim.consumer) : nullptr;
    } else {
        run(Stmt::FailLock, key, nullptr, false, 1);
        if (SPI_processed != 1)
            raise_not_leased(id, token, "fail");
        Datum owner = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
        consumer = isnull ? nullptr : TextDatumGetCString(owner);
    }
    int failures_before = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

    TimestampTz now = GetCurrentStatementStartTimestamp();
    bool give_up = !retryable || attempts_exhausted(failures_before, guc_max_retries);
    TimestampTz next = now;
    if (!give_up) {
        next = retry_in != nullptr ? timestamp_plus_arg(now, retry_in, "retry_in") : retry_time(now, failures_before);
    }
    const char *status = give_up ? "failed" : "created";
    // A failed event is never due ('infinity'): out of the claim order, into
    // outbox_events_failed_idx.
    TimestampTz due = give_up ? DT_NOEND : next;
    Datum values[5] = {UUIDPGetDatum(id), CStringGetTextDatum(status), PointerGetDatum(error),
                       TimestampTzGetDatum(due), TimestampTzGetDatum(next)};
    char nulls[6] = "     ";
    if (give_up)
        nulls[4] = 'n';
    run(Stmt::Fail, values, nulls);
    metric_count(MetricKind::Consumer, consumer, give_up ? MetricCount::Failed : MetricCount::Retried);
    if (next_out != nullptr)
        *next_out = give_up ? 0 : next;
    return status;
}

bool
complete_xact(ArrayType *ids, int n, int64 token)
{
    XactClaimInfo claim;
    if (!xact_claim_known(token, &claim))
        return false;
    xact_claim_check(ids, token, "complete", true);
    Datum values[3] = {PointerGetDatum(ids), TimestampTzGetDatum(claim.claimed_at), PointerGetDatum(claim.consumer)};
    char nulls[4] = {' ', ' ', claim.consumer ? ' ' : 'n', '\0'};
    run(Stmt::CompleteXact, values, nulls);
    // The transaction holds their row locks: nobody else can have moved them.
    if (SPI_processed != static_cast<uint64>(n))
        elog(ERROR, "outbox: %d events held by this transaction's claim " INT64_FORMAT " are gone",
             n - static_cast<int>(SPI_processed), token);
    return true;
}

} // namespace outbox

using namespace outbox;

OUTBOX_SQL_FUNCTION(outbox_heartbeat)
{
    int n;
    ArrayType *ids = ids_arg(fcinfo, 0, &n);
    int64 token = token_arg(fcinfo, 1);
    Datum lease = Int32GetDatum(PG_ARGISNULL(2) ? 0 : lease_seconds_arg(PG_GETARG_INTERVAL_P(2), "lease"));
    char lease_null = PG_ARGISNULL(2) ? 'n' : ' ';

    // A claim of this transaction has no lease to extend: it lasts as long as
    // the transaction. NULL says so, once the events are checked to be held.
    if (xact_claim_known(token, nullptr)) {
        xact_claim_check(ids, token, "heartbeat", false);
        PG_RETURN_NULL();
    }

    spi_begin();
    run_on_leased(Stmt::Heartbeat, ids, n, token, &lease, &lease_null, "heartbeat");
    // Every row got the same expiry unless leases differed: report the earliest.
    TimestampTz earliest = DT_NOEND;
    for (uint64 r = 0; r < SPI_processed; r++) {
        bool isnull;
        TimestampTz t = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull));
        if (t < earliest)
            earliest = t;
    }
    spi_end();
    PG_RETURN_TIMESTAMPTZ(earliest);
}

OUTBOX_SQL_FUNCTION(outbox_release)
{
    int n;
    ArrayType *ids = ids_arg(fcinfo, 0, &n);
    int64 token = token_arg(fcinfo, 1);
    // Released events of this transaction's claim stay locked by it until it
    // ends; then they are due again, no attempt counted.
    if (xact_claim_known(token, nullptr)) {
        xact_claim_check(ids, token, "release", true);
        PG_RETURN_INT32(n);
    }
    spi_begin();
    run_on_leased(Stmt::Release, ids, n, token, nullptr, nullptr, "release");
    spi_end();
    PG_RETURN_INT32(n);
}

OUTBOX_SQL_FUNCTION(outbox_complete)
{
    int n;
    ArrayType *ids = ids_arg(fcinfo, 0, &n);
    int64 token = token_arg(fcinfo, 1);
    spi_begin();
    if (!complete_xact(ids, n, token))
        run_on_leased(Stmt::Complete, ids, n, token, nullptr, nullptr, "complete");
    count_completed();
    spi_end();
    PG_RETURN_INT32(n);
}

OUTBOX_SQL_FUNCTION(outbox_fail)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("id must not be NULL")));
    pg_uuid_t *id = PG_GETARG_UUID_P(0);
    int64 token = token_arg(fcinfo, 1);
    if (PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("error must not be NULL"),
                        errhint("Say why the attempt failed: it is kept in last_error.")));
    text *error = PG_GETARG_TEXT_PP(2);
    Interval *retry_in = PG_ARGISNULL(3) ? nullptr : PG_GETARG_INTERVAL_P(3);
    if (PG_ARGISNULL(4))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("retryable must not be NULL")));
    bool retryable = PG_GETARG_BOOL(4);
    if (retry_in != nullptr) {
        Interval zero = {};
        if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(retry_in), IntervalPGetDatum(&zero))))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("retry_in must not be negative")));
    }

    spi_begin();
    const char *status = fail_leased(id, token, error, retry_in, retryable, nullptr);
    spi_end();

    PG_RETURN_DATUM(DirectFunctionCall2(enum_in, CStringGetDatum(status), ObjectIdGetDatum(status_type_oid())));
}
