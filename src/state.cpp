// Extension state per backend: schema lookup, saved plans, search path pin,
// and the argument checks shared by the consumer functions.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/state.hpp"

extern "C" {
#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "storage/bufmgr.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/plancache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
}

#include <cstring>

namespace outbox {

bool in_relay_worker = false;

namespace {

// All of this lives in TopMemoryContext.
struct ExtensionState {
    bool valid;              // schema resolved and plans belong to it
    bool recheck;            // a relcache event says: look again before use
    Oid extension_oid;       // pg_extension row the state was built from
    Oid schema_oid;
    Oid owner;               // the role that created the extension
    Oid events_relid;
    Oid status_type;         // outbox_status
    char *schema_quoted;
    SPIPlanPtr plans[kStatementCount];
    // Generic plans: the plan cache generation last seen for each statement,
    // and the size of outbox_events (blocks) when that plan was built.
    int plan_generation[kStatementCount];
    BlockNumber plan_blocks[kStatementCount];
};

ExtensionState state = {};
OverrideSearchPath *pinned_path = nullptr;

void
forget_plans()
{
    for (auto &p : state.plans) {
        if (p != nullptr)
            SPI_freeplan(p);
        p = nullptr;
    }
}

// The schema and owner of extension `ext` (PostgreSQL 15 does not export this).
Oid
extension_namespace(Oid ext, Oid *owner)
{
    Relation rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyData key;
    ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
    SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
    HeapTuple tup = systable_getnext(scan);
    Oid nsp = HeapTupleIsValid(tup) ? ((Form_pg_extension) GETSTRUCT(tup))->extnamespace : InvalidOid;
    *owner = HeapTupleIsValid(tup) ? ((Form_pg_extension) GETSTRUCT(tup))->extowner : InvalidOid;
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    return nsp;
}

void
resolve_extension()
{
    Oid ext = get_extension_oid("outbox", true);
    if (!OidIsValid(ext))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
                        errmsg("extension \"outbox\" is not installed in database \"%s\"",
                               get_database_name(MyDatabaseId)),
                        errhint("Run CREATE EXTENSION outbox;")));
    Oid owner;
    Oid nsp = extension_namespace(ext, &owner);
    state.owner = owner;
    // Same extension as before: only the table may have been rewritten. A
    // DROP and CREATE EXTENSION (even in the same schema) makes new objects
    // (outbox_status gets a new oid): start over.
    if (state.valid && ext == state.extension_oid && nsp == state.schema_oid) {
        state.events_relid = get_relname_relid("outbox_events", nsp);
        state.recheck = false;
        return;
    }
    forget_plans();
    if (state.schema_quoted != nullptr)
        pfree(state.schema_quoted);
    state.schema_quoted = nullptr;
    state.valid = false;

    char *name = get_namespace_name(nsp);
    state.schema_quoted = MemoryContextStrdup(TopMemoryContext, quote_identifier(name));
    state.extension_oid = ext;
    state.schema_oid = nsp;
    state.events_relid = get_relname_relid("outbox_events", nsp);
    state.status_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("outbox_status"),
                                        ObjectIdGetDatum(nsp));
    state.valid = true;
    state.recheck = false;
}

void
ensure_state()
{
    if (!state.valid || state.recheck)
        resolve_extension();
}

void
relcache_callback(Datum arg, Oid relid)
{
    // Only note it: plans may be in use right now.
    if (!OidIsValid(relid) || relid == state.events_relid)
        state.recheck = true;
}

// Argument types of each statement, in the order of its $n.
struct ArgTypes {
    int n;
    Oid types[8];
};

ArgTypes
arg_types(Stmt which)
{
    switch (which) {
    case Stmt::PublishInsert:
        return {6, {UUIDOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID, TIMESTAMPTZOID}};
    case Stmt::PublishExists:
        return {1, {UUIDOID}};
    case Stmt::Claim:
        return {8, {INT4OID, INT4OID, TEXTOID, TEXTARRAYOID, INT4OID, INT8OID, TEXTARRAYOID, UUIDARRAYOID}};
    case Stmt::ClaimXact:
    case Stmt::RelayClaim:
        return {5, {INT4OID, TEXTARRAYOID, TEXTARRAYOID, INT8OID, UUIDARRAYOID}};
    case Stmt::ReclaimXact:
        return {2, {INT4OID, UUIDARRAYOID}};
    case Stmt::CompleteXact:
        return {3, {UUIDARRAYOID, TIMESTAMPTZOID, TEXTOID}};
    case Stmt::FailLockXact:
        return {1, {UUIDOID}};
    case Stmt::Heartbeat:
        return {3, {UUIDARRAYOID, INT8OID, INT4OID}};
    case Stmt::Complete:
    case Stmt::Release:
        return {2, {UUIDARRAYOID, INT8OID}};
    case Stmt::FailLock:
        return {2, {UUIDOID, INT8OID}};
    case Stmt::FailUpdate:
        // $2 is the status as text, cast in the statement's SET by assignment.
        return {5, {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}};
    case Stmt::DiagnoseOutbox:
    case Stmt::DiagnoseArchive:
        return {1, {UUIDOID}};
    case Stmt::Subscriptions:
    case Stmt::NextDue:
        return {0, {}};
    case Stmt::ReclaimExpired:
        return {2, {INT4OID, INT4OID}};
    case Stmt::ArchiveMaintain:
        return {1, {INT4OID}};
    case Stmt::SubscriptionInsert:
        return {4, {TEXTOID, TEXTOID, OIDOID, OIDOID}};
    case Stmt::ChargeAbandoned:
        return {3, {INT4OID, UUIDARRAYOID, TEXTOID}};
    case Stmt::Count_:
        break;
    }
    elog(ERROR, "outbox: unknown statement %d", static_cast<int>(which));
    pg_unreachable();
}

// Statements that keep one generic plan. Re-planning them on every execution
// (the plan cache keeps choosing custom plans for them) cost a third of the
// relay's CPU. Their generic plans walk outbox_events_claim_idx in order under
// the LIMIT (claim) or the primary key (the others), whatever the arguments,
// as long as the plan was built for a table of about the current size: see
// run().
bool
keeps_generic_plan(Stmt which)
{
    return which == Stmt::Claim || which == Stmt::ClaimXact || which == Stmt::Complete ||
           which == Stmt::CompleteXact || which == Stmt::RelayClaim;
}

// A generic plan is built for the size the table has then. A queue table
// goes from empty to large without any relcache invalidation (nothing is
// analyzed until autovacuum comes by): a plan built on an empty outbox (seq
// scans) would then scan the whole heap on every execution. So such a plan
// is dropped when the table has more than doubled since it was built.
constexpr BlockNumber kGrowthSlack = 32;

BlockNumber
events_blocks(Stmt which)
{
    // The lock the statement takes itself: a locking SELECT takes less.
    LOCKMODE mode = (which == Stmt::ClaimXact || which == Stmt::RelayClaim) ? RowShareLock : RowExclusiveLock;
    Relation rel = table_open(state.events_relid, mode);
    BlockNumber n = RelationGetNumberOfBlocks(rel);
    table_close(rel, NoLock);  // the statement takes the same lock anyway
    return n;
}

} // namespace

const char *
extension_schema_quoted()
{
    ensure_state();
    return state.schema_quoted;
}

Oid
extension_schema_oid()
{
    ensure_state();
    return state.schema_oid;
}

Oid
extension_owner_oid()
{
    ensure_state();
    return state.owner;
}

Oid
status_type_oid()
{
    ensure_state();
    return state.status_type;
}

void
spi_begin()
{
    ensure_state();
    if (pinned_path == nullptr) {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        pinned_path = static_cast<OverrideSearchPath *>(palloc0(sizeof(OverrideSearchPath)));
        pinned_path->schemas = NIL;
        pinned_path->addCatalog = true;
        pinned_path->addTemp = false;
        MemoryContextSwitchTo(old);
    }
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "outbox: SPI_connect failed");
    PushOverrideSearchPath(pinned_path);
}

void
spi_end()
{
    PopOverrideSearchPath();
    if (SPI_finish() != SPI_OK_FINISH)
        elog(ERROR, "outbox: SPI_finish failed");
}

SPIPlanPtr
plan(Stmt which)
{
    ensure_state();
    SPIPlanPtr &slot = state.plans[static_cast<int>(which)];
    if (slot != nullptr)
        return slot;

    char text[4096];
    const char *schema = state.schema_quoted;
    cpp_call([&] { render_statement(which, schema, text, sizeof text); });

    ArgTypes at = arg_types(which);
    SPIPlanPtr p = SPI_prepare_cursor(text, at.n, at.types, keeps_generic_plan(which) ? CURSOR_OPT_GENERIC_PLAN : 0);
    if (p == nullptr)
        elog(ERROR, "outbox: could not prepare statement \"%s\": %s", statement_name(which),
             SPI_result_code_string(SPI_result));
    if (SPI_keepplan(p) != 0)
        elog(ERROR, "outbox: could not keep plan of statement \"%s\"", statement_name(which));
    slot = p;
    state.plan_generation[static_cast<int>(which)] = 0;
    return p;
}

int
run(Stmt which, const Datum *values, const char *nulls, bool read_only, long count)
{
    int i = static_cast<int>(which);
    bool generic = keeps_generic_plan(which);
    BlockNumber blocks = 0;
    if (generic) {
        ensure_state();
        blocks = events_blocks(which);
        if (state.plans[i] != nullptr && state.plan_generation[i] != 0 &&
            blocks > 2 * state.plan_blocks[i] + kGrowthSlack) {
            SPI_freeplan(state.plans[i]);
            state.plans[i] = nullptr;
        }
    }
    SPIPlanPtr p = plan(which);
    int rc = SPI_execute_plan(p, const_cast<Datum *>(values), nulls, read_only, count);
    if (rc < 0)
        elog(ERROR, "outbox: statement \"%s\" failed: %s", statement_name(which),
             SPI_result_code_string(rc));
    if (generic) {
        // A new generic plan (first use, or rebuilt after an invalidation)
        // was built during this execution, for the size measured above.
        List *sources = SPI_plan_get_plan_sources(p);
        if (sources != NIL) {
            CachedPlanSource *src = static_cast<CachedPlanSource *>(linitial(sources));
            if (src->generation != state.plan_generation[i]) {
                state.plan_generation[i] = src->generation;
                state.plan_blocks[i] = blocks;
            }
        }
    }
    return rc;
}

void
register_invalidation()
{
    CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

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

void
raise_not_leased(pg_uuid_t *id, int64 token, const char *action)
{
    // Diagnose with a fresh snapshot: the caller's statement snapshot may
    // predate a concurrent reclaim that its UPDATE/DELETE waited for, and the
    // read-only queries below would otherwise see the event as it was then.
    // (No pop: this function always ends in ERROR, which unwinds the stack.)
    PushActiveSnapshot(GetTransactionSnapshot());
    char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
    Datum arg = UUIDPGetDatum(id);
    run(Stmt::DiagnoseOutbox, &arg, nullptr, true, 1);
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
    run(Stmt::DiagnoseArchive, &arg, nullptr, true, 1);
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

} // namespace outbox
