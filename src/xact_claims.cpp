// The registry of claims held by the caller's transaction (see xact_claims.hpp).
#include "outbox/pg.hpp"
#include "outbox/metrics.hpp"
#include "outbox/errcodes.hpp"
#include "outbox/extension.hpp"
#include "outbox/settings.hpp"
#include "outbox/spi.hpp"
#include "outbox/worker.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/uuid.h"
#include "storage/ipc.h"
#include "storage/proc.h"
#include "utils/hsearch.h"
#include "utils/snapmgr.h"
}

#include <cstring>

// The local transaction id of this backend's current transaction (17 moved
// it into PGPROC.vxid).
#if PG_VERSION_NUM >= 170000
#define OUTBOX_MY_LXID (MyProc->vxid.lxid)
#else
#define OUTBOX_MY_LXID (MyProc->lxid)
#endif

namespace outbox {

namespace {

struct ClaimRec {
    int64 token;
    SubTransactionId subid;  // InvalidSubTransactionId: rolled back
    TimestampTz claimed_at;
    text *consumer;
};

struct EventRec {
    pg_uuid_t id;  // hash key
    int claim;
    SubTransactionId settled;  // InvalidSubTransactionId: not settled
};

struct Registry {
    LocalTransactionId lxid;
    HTAB *events;
    ClaimRec *claims;
    int nclaims;
    int cap;
    // The newest subtransaction that claimed or settled anything. Later ones
    // (subtransaction ids only grow) have nothing here to forget or pass on:
    // the relay's per-event subtransactions then cost nothing.
    SubTransactionId newest_marked;
};

Registry reg = {InvalidLocalTransactionId, nullptr, nullptr, 0, 0, InvalidSubTransactionId};

// The registry belongs to one transaction; its memory went with it.
bool
current() noexcept
{
    return reg.events != nullptr && MyProc != nullptr && reg.lxid == OUTBOX_MY_LXID;
}

void
ensure_registry()
{
    if (current())
        return;
    HASHCTL ctl;
    memset(&ctl, 0, sizeof ctl);
    ctl.keysize = sizeof(pg_uuid_t);
    ctl.entrysize = sizeof(EventRec);
    ctl.hcxt = TopTransactionContext;
    reg.events = nullptr;
    reg.claims = static_cast<ClaimRec *>(MemoryContextAlloc(TopTransactionContext, 8 * sizeof(ClaimRec)));
    reg.cap = 8;
    reg.nclaims = 0;
    reg.events = hash_create("outbox claims of this transaction", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
    reg.lxid = OUTBOX_MY_LXID;
    reg.newest_marked = InvalidSubTransactionId;
}

void
mark(SubTransactionId sub)
{
    if (sub > reg.newest_marked)
        reg.newest_marked = sub;
}

// A savepoint rolled back: forget the claims it made (PostgreSQL released
// their row locks) and what it settled (its changes are undone). Released
// into the parent: what it did now belongs to the parent.
void
subxact_callback(SubXactEvent event, SubTransactionId sub, SubTransactionId parent, void *) noexcept
{
    if (!current() || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB) ||
        sub > reg.newest_marked)
        return;
    bool abort = event == SUBXACT_EVENT_ABORT_SUB;
    for (int i = 0; i < reg.nclaims; i++)
        if (reg.claims[i].subid == sub)
            reg.claims[i].subid = abort ? InvalidSubTransactionId : parent;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, reg.events);
    EventRec *e;
    while ((e = static_cast<EventRec *>(hash_seq_search(&scan))) != nullptr) {
        if (reg.claims[e->claim].subid == InvalidSubTransactionId) {
            hash_search(reg.events, &e->id, HASH_REMOVE, nullptr);  // allowed during a scan
            continue;
        }
        if (e->settled == sub)
            e->settled = abort ? InvalidSubTransactionId : parent;
    }
}

// The transaction ended: its memory is gone, and so is the registry (the
// local transaction id check in current() alone would trust a stale pointer
// once the id wraps around).
void
xact_callback(XactEvent event, void *) noexcept
{
    switch (event) {
    case XACT_EVENT_COMMIT:
    case XACT_EVENT_ABORT:
    case XACT_EVENT_PREPARE:
    case XACT_EVENT_PARALLEL_COMMIT:
    case XACT_EVENT_PARALLEL_ABORT:
        reg.events = nullptr;
        reg.claims = nullptr;
        reg.nclaims = 0;
        reg.cap = 0;
        reg.lxid = InvalidLocalTransactionId;
        break;
    default:
        break;
    }
}

// The session ended (proc_exit: terminated, a FATAL error, the connection
// lost) while its transaction held events of outbox_claim_xact() it had not
// settled. A plain rollback hands them back uncharged, as the consumer
// chose; an ending session is a consumer that died with them, as one whose
// lease expires: each counts a failed attempt, so that an event that ends the
// sessions handling it reaches failed instead of coming back forever. Runs
// as a before_shmem_exit callback, before core aborts the transaction, as
// core's own temporary-schema cleanup does (namespace.c): abort, then one
// short transaction of its own.
void
charge_abandoned_claims(int code, Datum arg)
{
    if (!current() || in_relay_worker)
        return;  // the relay charges through its in-flight note (inflight.hpp)
    long total = hash_get_num_entries(reg.events);
    if (total == 0)
        return;
    Datum *ids = static_cast<Datum *>(MemoryContextAlloc(TopMemoryContext, sizeof(Datum) * total));
    pg_uuid_t *copies = static_cast<pg_uuid_t *>(MemoryContextAlloc(TopMemoryContext, sizeof(pg_uuid_t) * total));
    char consumer[NAMEDATALEN * 4] = "an unnamed consumer";
    bool named = false;
    int k = 0;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, reg.events);
    EventRec *e;
    while ((e = static_cast<EventRec *>(hash_seq_search(&scan))) != nullptr) {
        const ClaimRec &c = reg.claims[e->claim];
        if (c.subid == InvalidSubTransactionId || e->settled != InvalidSubTransactionId)
            continue;
        if (k == 0 && c.consumer != nullptr) {
            text_to_cstring_buffer(c.consumer, consumer, sizeof consumer);
            named = true;
        }
        copies[k] = e->id;
        ids[k] = UUIDPGetDatum(&copies[k]);
        k++;
    }
    if (k == 0)
        return;

    AbortOutOfAnyTransaction();  // releases the row locks; forgets the registry
    SetCurrentStatementStartTimestamp();
    StartTransactionCommand();
    if (!OidIsValid(get_extension_oid("outbox", true))) {
        CommitTransactionCommand();
        return;
    }
    PushActiveSnapshot(GetTransactionSnapshot());
    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    SetUserIdAndSecContext(extension_owner_oid(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
    char *error = psprintf("the session of %s ended while its transaction held this event (outbox_claim_xact)",
                           consumer);
    Datum values[3] = {Int32GetDatum(guc_max_retries),
                       PointerGetDatum(construct_array(ids, k, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR)),
                       CStringGetTextDatum(error)};
    spi_begin();
    run(Stmt::ChargeAbandoned, values, nullptr);
    uint64 charged = SPI_processed;
    for (uint64 r = 0; r < charged; r++) {
        bool isnull;
        bool failed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull));
        metric_count(MetricKind::Consumer, named ? consumer : nullptr,
                     failed ? MetricCount::Failed : MetricCount::Retried);
    }
    spi_end();
    SetUserIdAndSecContext(save_user, save_sec);
    PopActiveSnapshot();
    CommitTransactionCommand();
    ereport(LOG, (errmsg("outbox: the session of %s ended holding %d events it had claimed with outbox_claim_xact() "
                         "and not settled: " UINT64_FORMAT " of them counted a failed attempt",
                         consumer, k, charged)));
}

bool exit_callback_registered = false;

int
find_claim(int64 token)
{
    if (!current())
        return -1;
    for (int i = reg.nclaims - 1; i >= 0; i--)
        if (reg.claims[i].token == token && reg.claims[i].subid != InvalidSubTransactionId)
            return i;
    return -1;
}

} // namespace

void
register_xact_claims_callback()
{
    RegisterSubXactCallback(subxact_callback, nullptr);
    RegisterXactCallback(xact_callback, nullptr);
}

int
xact_claim_open(int64 token, text *consumer)
{
    if (!exit_callback_registered && !in_relay_worker) {
        before_shmem_exit(charge_abandoned_claims, (Datum) 0);
        exit_callback_registered = true;
    }
    ensure_registry();
    if (reg.nclaims == reg.cap) {
        reg.cap *= 2;
        reg.claims = static_cast<ClaimRec *>(repalloc(reg.claims, reg.cap * sizeof(ClaimRec)));
    }
    ClaimRec &c = reg.claims[reg.nclaims];
    c.token = token;
    c.subid = GetCurrentSubTransactionId();
    mark(c.subid);
    c.claimed_at = GetCurrentStatementStartTimestamp();
    c.consumer = nullptr;
    if (consumer != nullptr) {
        MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
        c.consumer = static_cast<text *>(PG_DETOAST_DATUM_COPY(PointerGetDatum(consumer)));
        MemoryContextSwitchTo(old);
    }
    return reg.nclaims++;
}

void
xact_claim_add(int claim, const pg_uuid_t *id)
{
    bool found;
    EventRec *e = static_cast<EventRec *>(hash_search(reg.events, id, HASH_ENTER, &found));
    // The claim skips events this transaction already holds, so an entry
    // found here belongs to a claim rolled back to a savepoint: replace it.
    e->claim = claim;
    e->settled = InvalidSubTransactionId;
}

bool
xact_claim_known(int64 token, XactClaimInfo *info)
{
    int i = find_claim(token);
    if (i < 0)
        return false;
    if (info != nullptr) {
        info->claimed_at = reg.claims[i].claimed_at;
        info->consumer = reg.claims[i].consumer;
    }
    return true;
}

ArrayType *
xact_claimed_ids()
{
    if (!current())
        return nullptr;
    long n = hash_get_num_entries(reg.events);
    if (n == 0)
        return nullptr;
    Datum *elems = static_cast<Datum *>(palloc(n * sizeof(Datum)));
    int k = 0;
    HASH_SEQ_STATUS scan;
    hash_seq_init(&scan, reg.events);
    EventRec *e;
    while ((e = static_cast<EventRec *>(hash_seq_search(&scan))) != nullptr) {
        pg_uuid_t *copy = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
        *copy = e->id;
        elems[k++] = UUIDPGetDatum(copy);
    }
    return construct_array(elems, k, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
}

void
xact_claim_check(ArrayType *ids, int64 token, const char *action, bool settle)
{
    int claim = find_claim(token);
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(ids, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
    // Check all before marking any: a refused call changes nothing.
    for (int i = 0; i < n; i++) {
        pg_uuid_t *id = DatumGetUUIDP(elems[i]);
        EventRec *e = claim < 0 ? nullptr : static_cast<EventRec *>(hash_search(reg.events, id, HASH_FIND, nullptr));
        if (e != nullptr && e->claim == claim && e->settled == InvalidSubTransactionId)
            continue;
        char *id_text = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)));
        if (e != nullptr && e->claim == claim)
            ereport(ERROR, (errcode(ERRCODE_OUTBOX_LEASE_LOST),
                            errmsg("cannot %s event %s: this transaction already completed, failed or released it",
                                   action, id_text)));
        ereport(ERROR, (errcode(ERRCODE_OUTBOX_LEASE_LOST),
                        errmsg("cannot %s event %s: lease token " INT64_FORMAT " does not hold it",
                               action, id_text, token),
                        errdetail("Lease token " INT64_FORMAT " is a claim of this transaction "
                                  "(outbox_claim_xact), and that claim did not hand out this event.",
                                  token)));
    }
    if (!settle)
        return;
    SubTransactionId sub = GetCurrentSubTransactionId();
    mark(sub);
    for (int i = 0; i < n; i++) {
        EventRec *e = static_cast<EventRec *>(hash_search(reg.events, DatumGetUUIDP(elems[i]), HASH_FIND, nullptr));
        e->settled = sub;
    }
}

} // namespace outbox
