// Consuming: outbox_claim() hands out due events with a lease;
// outbox_claim_xact() hands them out for the caller's transaction.
//
// One statement: pick due events, oldest first, FOR UPDATE SKIP LOCKED (so no
// event goes to two claimers), skipping any whose ordering key has an earlier
// event still in the outbox; outbox_claim() marks them active with a lease and
// a fencing token, outbox_claim_xact() only locks them: a plain locking SELECT
// that writes nothing, the events held by the caller's transaction
// (xact_claims.hpp). An expired lease that outbox_claim_xact() meets is
// reclaimed by a second statement, run only when it met any. See the "claim",
// "claim xact" and "reclaim xact" statements in statements.cpp.
#include "outbox/pg.hpp"
#include "outbox/metrics.hpp"
#include "outbox/args.hpp"
#include "outbox/claim.hpp"
#include "outbox/errcodes.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/limits.hpp"
#include "outbox/patterns.hpp"
#include "outbox/settings.hpp"
#include "outbox/spi.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"  // application_name (15 had it through utils/builtins.h)
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
}

#include <cstring>

namespace outbox {

ReclaimedRows
reclaim_met_expired(SPITupleTable *claim, int n, int expired_col)
{
    ReclaimedRows out = {nullptr, nullptr};
    Datum *ids = nullptr;
    int *pos = nullptr;
    int k = 0;
    for (int i = 0; i < n; i++) {
        bool isnull;
        Datum expired = SPI_getbinval(claim->vals[i], claim->tupdesc, expired_col, &isnull);
        if (isnull || !DatumGetBool(expired))
            continue;
        if (ids == nullptr) {
            ids = static_cast<Datum *>(palloc(sizeof(Datum) * n));
            pos = static_cast<int *>(palloc(sizeof(int) * n));
        }
        ids[k] = SPI_getbinval(claim->vals[i], claim->tupdesc, 1, &isnull);
        pos[k++] = i;
    }
    if (k == 0)
        return out;
    // SPI keeps the claim's tuple table until spi_end: running another
    // statement does not free it.
    Datum values[2] = {Int32GetDatum(guc_max_retries),
                       PointerGetDatum(construct_array(ids, k, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR))};
    run(Stmt::ReclaimXact, values, nullptr);
    out.rows = static_cast<HeapTuple *>(palloc0(sizeof(HeapTuple) * n));
    out.desc = SPI_tuptable->tupdesc;
    for (uint64 r = 0; r < SPI_processed; r++) {
        HeapTuple tup = SPI_tuptable->vals[r];
        bool isnull;
        int64 ord = DatumGetInt64(SPI_getbinval(tup, out.desc, 1, &isnull));
        bool handed_out = DatumGetBool(SPI_getbinval(tup, out.desc, 2, &isnull));
        // The consumer whose lease expired (the row keeps its name).
        Datum row = SPI_getbinval(tup, out.desc, 4, &isnull);
        Datum owner = isnull ? (Datum) 0 : GetAttributeByName(DatumGetHeapTupleHeader(row), "lease_owner", &isnull);
        const char *consumer = isnull ? nullptr : TextDatumGetCString(owner);
        metric_count(MetricKind::Consumer, consumer, MetricCount::Reclaimed);
        if (!handed_out)
            metric_count(MetricKind::Consumer, consumer, MetricCount::Failed);
        if (handed_out && ord >= 1 && ord <= k)
            out.rows[pos[ord - 1]] = tup;
    }
    return out;
}

namespace {

// The arguments both claims share: batch_size, consumer and types, at
// positions batch_arg, consumer_arg and types_arg.
struct ClaimArgs {
    int batch;
    text *owner;
    ArrayType *types;
};

ClaimArgs
claim_args(FunctionCallInfo fcinfo, int batch_arg, int consumer_arg, int types_arg)
{
    ClaimArgs a;
    a.batch = PG_ARGISNULL(batch_arg) ? guc_batch_size : PG_GETARG_INT32(batch_arg);
    if (a.batch < 1 || a.batch > kMaxBatch)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("batch_size must be between 1 and %d, not %d", kMaxBatch, a.batch)));
    a.owner = nullptr;
    if (!PG_ARGISNULL(consumer_arg)) {
        a.owner = PG_GETARG_TEXT_PP(consumer_arg);
        if (VARSIZE_ANY_EXHDR(a.owner) > kMaxNameBytes)
            ereport(ERROR, (errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
                            errmsg("consumer name is too long (limit %d bytes)", kMaxNameBytes)));
    } else if (application_name != nullptr && application_name[0] != '\0') {
        a.owner = cstring_to_text(application_name);
    }
    a.types = PG_ARGISNULL(types_arg) ? nullptr : type_patterns_arg(PG_GETARG_ARRAYTYPE_P(types_arg));
    return a;
}

// The fencing token of one claim call, taken before its statement runs and
// passed to it. Not from a nextval() inside the statement: there it runs
// again when the claim re-checks a row a concurrent transaction changed since
// the statement's snapshot (EvalPlanQual), and that row came out under the
// next token, a batch under two tokens (TAP 002 caught it once a release left
// the event's place in the claim index unchanged). An empty claim uses up a
// token too: tokens only need to grow.
int64
next_lease_token()
{
    Oid seq = lease_token_seq_oid();  // looked up with the extension, not per claim
    if (!OidIsValid(seq))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("outbox: sequence outbox_lease_token_seq is missing"),
                        errhint("Reinstall the extension: DROP EXTENSION outbox; CREATE EXTENSION outbox.")));
    // The claim functions are SECURITY DEFINER: the extension's owner may use it.
    return nextval_internal(seq, true);
}

// Claim up to a.batch events, with a lease of `lease` seconds or (xact) for
// the calling transaction, into the function's result set. An expired lease
// that ran out of attempts is marked failed by the claim instead of being
// handed out, yet it took a place in the batch: claim again for the places it
// took, under the same token (one token per call), until the batch is full or
// no such event was met.
void
claim_batch(ReturnSetInfo *rsinfo, const ClaimArgs &a, int lease, bool xact)
{
    spi_begin();
    int handed = 0;
    int64 token = next_lease_token();
    int claim = -1;
    for (;;) {
        // Events this transaction holds through outbox_claim_xact() are locked
        // by it, which SKIP LOCKED does not skip: leave them out.
        ArrayType *held = xact_claimed_ids();
        // The parameters both claims take, in the same order; the claim with
        // a lease takes three more.
        Datum values[8] = {Int32GetDatum(a.batch - handed), PointerGetDatum(a.types), (Datum) 0,
                           PointerGetDatum(held), Int64GetDatum(token), Int32GetDatum(lease),
                           PointerGetDatum(a.owner), Int32GetDatum(guc_max_retries)};
        char nulls[9] = {' ', a.types ? ' ' : 'n', 'n', held ? ' ' : 'n', ' ',
                         ' ', a.owner ? ' ' : 'n', ' ', '\0'};
        run(xact ? Stmt::ClaimXact : Stmt::Claim, values, nulls);

        // Columns 1-9 are the result. Column 10 of the claim says whether the
        // event was handed out (false: a reclaimed event that ran out of
        // attempts and is now failed); of the transaction claim, whether it is
        // an expired lease, which is reclaimed first (and may run out then).
        constexpr int kCols = 9;
        constexpr int kAttemptCol = 6;
        SPITupleTable *tt = SPI_tuptable;
        uint64 got = SPI_processed;
        // The arrays above are sized for these widths: check, never overrun.
        // For the metrics, the claim with a lease adds whether the event was
        // an expired lease, whose, and when it became due; the transaction
        // claim adds when it became due.
        int width = xact ? kCols + 2 : kCols + 4;
        int due_col = xact ? kCols + 1 : kCols + 3;
        TimestampTz now = GetCurrentTimestamp();
        const char *consumer = a.owner != nullptr ? text_to_cstring(a.owner) : nullptr;
        if (tt->tupdesc->natts != width || rsinfo->setDesc->natts != kCols)
            ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH),
                            errmsg("outbox: claim returned %d columns for a result of %d, expected %d and %d",
                                   tt->tupdesc->natts, rsinfo->setDesc->natts, width, kCols),
                            errhint("The extension's SQL objects and its library do not match: run ALTER EXTENSION outbox UPDATE.")));
        ReclaimedRows reclaimed = {nullptr, nullptr};
        if (xact)
            reclaimed = reclaim_met_expired(tt, static_cast<int>(got), kCols + 1);
        bool met_exhausted = false;
        for (uint64 r = 0; r < got; r++) {
            Datum row[kCols + 4];
            bool isnull[kCols + 4];
            heap_deform_tuple(tt->vals[r], tt->tupdesc, row, isnull);
            bool flag = !isnull[kCols] && DatumGetBool(row[kCols]);
            if (!xact && !isnull[kCols + 1] && DatumGetBool(row[kCols + 1])) {
                // An expired lease, taken back: counted for the consumer that held it.
                const char *prior = isnull[kCols + 2] ? nullptr : TextDatumGetCString(row[kCols + 2]);
                metric_count(MetricKind::Consumer, prior, MetricCount::Reclaimed);
                if (!flag)
                    metric_count(MetricKind::Consumer, prior, MetricCount::Failed);
            }
            HeapTuple re = (xact && flag && reclaimed.rows != nullptr) ? reclaimed.rows[r] : nullptr;
            if (xact ? (flag && re == nullptr) : !flag) {
                met_exhausted = true;  // an expired lease out of attempts: failed, not handed out
                continue;
            }
            if (re != nullptr) {
                bool n;
                row[kAttemptCol] = SPI_getbinval(re, reclaimed.desc, kReclaimAttemptCol, &n);
            }
            if (xact && claim < 0)
                claim = xact_claim_open(token, a.owner);
            if (xact)
                xact_claim_add(claim, DatumGetUUIDP(row[0]));
            // The lag of an event handed out for the first time: from when it
            // became due to now (a consumer's delivery is its claim).
            bool was_expired = xact ? flag : !isnull[kCols + 1] && DatumGetBool(row[kCols + 1]);
            if (!was_expired && !isnull[due_col] && DatumGetInt32(row[kAttemptCol]) == 1)
                metric_lag(MetricKind::Consumer, consumer, DatumGetTimestampTz(row[due_col]), now);
            // Values point into SPI memory: the tuplestore copies them.
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, isnull);
            handed++;
        }
        if (!met_exhausted || handed >= a.batch)
            break;
    }
    spi_end();
}

} // namespace

} // namespace outbox

using namespace outbox;

OUTBOX_SQL_FUNCTION(outbox_claim)
{
    ClaimArgs a = claim_args(fcinfo, 0, 2, 3);
    int lease = lease_arg(fcinfo, 1);
    InitMaterializedSRF(fcinfo, 0);
    claim_batch(reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo), a, lease, false);
    return (Datum) 0;
}

// outbox_claim_xact(batch_size, consumer, types): the events are held by the
// caller's transaction (row locks), not by a lease: complete, fail or release
// them before it commits. If it ends any other way (rollback, a lost
// connection, a crash), or commits without settling them, they are due again
// at once, no attempt counted.
OUTBOX_SQL_FUNCTION(outbox_claim_xact)
{
    if (!IsTransactionBlock())
        ereport(ERROR, (errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
                        errmsg("outbox_claim_xact() must be called inside a transaction block"),
                        errdetail("Its events are held by the calling transaction; outside a transaction block "
                                  "that ends with this statement, before they could be completed."),
                        errhint("BEGIN; claim; complete or fail each event; COMMIT. Or use outbox_claim() "
                                "for a lease that outlives the transaction.")));
    ClaimArgs a = claim_args(fcinfo, 0, 1, 2);
    InitMaterializedSRF(fcinfo, 0);
    claim_batch(reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo), a, 0, true);
    return (Datum) 0;
}
