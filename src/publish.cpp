// Publishing: outbox_publish() and outbox_publish_batch().
//
// An event is one INSERT into outbox_events, made through a saved plan in the
// caller's own transaction: it commits or rolls back with the caller's rows.
#include "outbox/pg.hpp"
#include "outbox/args.hpp"
#include "outbox/guard.hpp"
#include "outbox/limits.hpp"
#include "outbox/settings.hpp"
#include "outbox/spi.hpp"
#include "outbox/wakeup.hpp"
#include "outbox/worker.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

#include <cstring>

namespace outbox {

namespace {

// The arguments of one event; NULL pointers are absent values.
struct PublishArgs {
    text *type;
    Jsonb *payload;
    text *ordering_key;
    Jsonb *headers;
    bool has_deliver_at;
    TimestampTz deliver_at;
    Interval *delay;
    pg_uuid_t *id;
};

// Advisory locks taken for ordering keys carry this in their fourth field
// (pg_locks.objsubid), apart from the 1 and 2 of pg_advisory_lock().
constexpr uint16 kOrderingLockSpace = 0x4F42; // "OB", 20290
// And these, for caller-chosen event ids being published.
constexpr uint16 kEventIdLockSpace = 0x4F43;  // "OC", 20291

// A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then 12 bits of
// sub-millisecond time (so ids from one backend increase), then 62 random bits.
void
new_event_id(pg_uuid_t *out)
{
    static int64 last_us = 0;
    TimestampTz now = GetCurrentTimestamp();
    int64 us = now + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
    if (us <= last_us)
        us = last_us + 1;
    last_us = us;
    uint64 ms = static_cast<uint64>(us / 1000);
    uint64 sub = static_cast<uint64>(us % 1000) * 4096 / 1000; // 12 bits
    uint64 rnd = pg_prng_uint64(&pg_global_prng_state);

    unsigned char *b = out->data;
    for (int i = 0; i < 6; i++)
        b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
    b[6] = static_cast<unsigned char>(0x70 | ((sub >> 8) & 0x0F));
    b[7] = static_cast<unsigned char>(sub & 0xFF);
    b[8] = static_cast<unsigned char>(0x80 | ((rnd >> 56) & 0x3F));
    for (int i = 9; i < 16; i++)
        b[i] = static_cast<unsigned char>(rnd >> (8 * (15 - i)));
}

void
check_transaction_guard(const char *function)
{
    if (guc_require_transaction == REQUIRE_TX_OFF || in_relay_worker)
        return;
    // Inside BEGIN ... COMMIT, or a multi-statement query string: fine. A
    // statement that already wrote (a function that inserts the business row
    // and then publishes) is atomic with the event too.
    if (IsTransactionBlock() || GetTopTransactionIdIfAny() != InvalidTransactionId)
        return;
    ereport(guc_require_transaction == REQUIRE_TX_ERROR ? ERROR : WARNING,
            (errcode(ERRCODE_NO_ACTIVE_SQL_TRANSACTION),
             errmsg("%s called outside a transaction block", function),
             errdetail("The event commits on its own, now, not together with the change it announces."),
             errhint("Publish inside the same transaction (and connection) as the business change, "
                     "or set outbox.require_transaction = off if a standalone event is intended.")));
}

void
check_name(text *value, const char *what, bool allow_null)
{
    if (value == nullptr) {
        if (allow_null)
            return;
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("event %s must not be NULL", what)));
    }
    int len = VARSIZE_ANY_EXHDR(value);
    if (len == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("event %s must not be empty", what),
                        allow_null ? errhint("Pass NULL for an event without an ordering key.") : 0));
    if (len > kMaxNameBytes)
        ereport(ERROR, (errcode(ERRCODE_STRING_DATA_RIGHT_TRUNCATION),
                        errmsg("event %s is too long (%d bytes)", what, len),
                        errdetail("The limit is %d bytes.", kMaxNameBytes)));
}

void
check_jsonb_size(Jsonb *value, const char *what_is)
{
    int size = VARSIZE_ANY(value);
    if (size > guc_max_payload_size)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("event %s too large (%d bytes)", what_is, size),
                        errdetail("outbox.max_payload_size is %d bytes.", guc_max_payload_size),
                        errhint("Store large data elsewhere and publish a reference to it.")));
}

// available_at from deliver_at or delay; 0 when neither (the insert uses now()).
TimestampTz
delivery_time(const PublishArgs &a, bool *given)
{
    *given = false;
    if (a.has_deliver_at && a.delay != nullptr)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("give deliver_at or delay, not both")));
    if (a.has_deliver_at) {
        if (TIMESTAMP_NOT_FINITE(a.deliver_at))
            ereport(ERROR, (errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
                            errmsg("deliver_at must be a finite time")));
        *given = true;
        return a.deliver_at;
    }
    if (a.delay != nullptr) {
        Interval zero = {};
        if (DatumGetBool(DirectFunctionCall2(interval_lt, IntervalPGetDatum(a.delay), IntervalPGetDatum(&zero))))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("delay must not be negative")));
        *given = true;
        return timestamp_plus_arg(GetCurrentTransactionStartTimestamp(), a.delay, "delay");
    }
    return 0;
}

// A transaction-level exclusive advisory lock on (space, hash of the bytes).
void
lock_until_commit(const void *bytes, int len, uint16 space)
{
    uint64 h = hash_bytes_extended(static_cast<const unsigned char *>(bytes), len, 0);
    LOCKTAG tag;
    SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, static_cast<uint32>(h >> 32), static_cast<uint32>(h), space);
    (void) LockAcquire(&tag, ExclusiveLock, false, false);
}

// Same-key publishers are serialized until commit, so that publish (seq)
// order is commit order within a key and no claimer can see a later event of
// a key while an earlier one is still uncommitted.
void
lock_ordering_key(text *key)
{
    lock_until_commit(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key), kOrderingLockSpace);
}

// Raise a clear ERROR for bad arguments; changes nothing.
void
validate_publish(const PublishArgs &a)
{
    check_name(a.type, "type", false);
    check_name(a.ordering_key, "ordering_key", true);
    if (a.payload == nullptr)
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("event payload must not be NULL"),
                        errhint("Use '{}'::jsonb (or 'null'::jsonb) for an event without data.")));
    check_jsonb_size(a.payload, "payload is");
    if (a.headers != nullptr) {
        if (!JB_ROOT_IS_OBJECT(a.headers) || JB_ROOT_IS_SCALAR(a.headers))
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("event headers must be a JSON object")));
        check_jsonb_size(a.headers, "headers are");
    }
}

// Insert one validated event (between spi_begin and spi_end); writes its id.
void
publish_one(const PublishArgs &a, pg_uuid_t *id_out)
{
    bool timed;
    TimestampTz when = delivery_time(a, &timed);

    if (a.id != nullptr) {
        memcpy(id_out, a.id, sizeof(pg_uuid_t));
        // Two transactions publishing the same id: the second waits here until
        // the first ends, then its check below (a fresh snapshot) sees the
        // first one's event and says so clearly.
        lock_until_commit(id_out->data, UUID_LEN, kEventIdLockSpace);
        Datum arg = UUIDPGetDatum(id_out);
        run(Stmt::PublishIdCheck, &arg, nullptr, false, 1);
        bool isnull;
        int where = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        if (where != 0)
            ereport(ERROR, (errcode(ERRCODE_UNIQUE_VIOLATION),
                            errmsg("event %s was already published",
                                   DatumGetCString(DirectFunctionCall1(uuid_out, arg))),
                            errdetail(where == 1 ? "It is in outbox_events, not yet delivered."
                                                 : "It is in outbox_events_archive (delivered, or discarded after failing)."),
                            errhint("Each event id can be published once; catch SQLSTATE 23505 to treat a repeat as done.")));
    } else {
        new_event_id(id_out);
    }

    if (a.ordering_key != nullptr)
        lock_ordering_key(a.ordering_key);

    static Jsonb *empty_headers = nullptr;
    if (a.headers == nullptr && empty_headers == nullptr) {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        empty_headers = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
        MemoryContextSwitchTo(old);
    }

    Datum values[6] = {
        UUIDPGetDatum(id_out),
        PointerGetDatum(a.type),
        JsonbPGetDatum(a.payload),
        JsonbPGetDatum(a.headers != nullptr ? a.headers : empty_headers),
        PointerGetDatum(a.ordering_key),
        TimestampTzGetDatum(when),
    };
    char nulls[7] = "      ";
    if (a.ordering_key == nullptr)
        nulls[4] = 'n';
    if (!timed)
        nulls[5] = 'n';
    int rc = run(Stmt::Publish, values, nulls);
    if (rc != SPI_OK_INSERT || SPI_processed != 1)
        elog(ERROR, "outbox: publish inserted " UINT64_FORMAT " rows", SPI_processed);
}

} // namespace

} // namespace outbox

using namespace outbox;

OUTBOX_SQL_FUNCTION(outbox_publish)
{
    PublishArgs a = {};
    a.type = PG_ARGISNULL(0) ? nullptr : PG_GETARG_TEXT_PP(0);
    a.payload = PG_ARGISNULL(1) ? nullptr : PG_GETARG_JSONB_P(1);
    a.ordering_key = PG_ARGISNULL(2) ? nullptr : PG_GETARG_TEXT_PP(2);
    a.headers = PG_ARGISNULL(3) ? nullptr : PG_GETARG_JSONB_P(3);
    a.has_deliver_at = !PG_ARGISNULL(4);
    a.deliver_at = a.has_deliver_at ? PG_GETARG_TIMESTAMPTZ(4) : 0;
    a.delay = PG_ARGISNULL(5) ? nullptr : PG_GETARG_INTERVAL_P(5);
    a.id = PG_ARGISNULL(6) ? nullptr : PG_GETARG_UUID_P(6);

    validate_publish(a);
    check_transaction_guard("outbox_publish");

    pg_uuid_t *id = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
    spi_begin();
    publish_one(a, id);
    spi_end();
    note_published();
    PG_RETURN_UUID_P(id);
}

// ---------------------------------------------------------------------------
// outbox_publish_batch(events jsonb): a JSON array of event objects.

namespace {

struct BatchContext {
    int index; // 1-based element being published, 0 when not in an element
};

void
batch_error_context(void *arg)
{
    auto *ctx = static_cast<BatchContext *>(arg);
    if (ctx->index > 0)
        errcontext("event %d of the batch", ctx->index);
}

text *
json_text_field(JsonbValue *v, const char *key)
{
    if (v->type == jbvNull)
        return nullptr;
    if (v->type != jbvString)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("\"%s\" must be a JSON string", key)));
    return cstring_to_text_with_len(v->val.string.val, v->val.string.len);
}

char *
json_cstring_field(JsonbValue *v, const char *key)
{
    text *t = json_text_field(v, key);
    return t == nullptr ? nullptr : text_to_cstring(t);
}

void
parse_batch_element(JsonbValue *elem, PublishArgs *a)
{
    if (elem->type != jbvBinary || !JsonContainerIsObject(elem->val.binary.data))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("each event of the batch must be a JSON object"),
                        errhint("Example: [{\"type\": \"user.created\", \"payload\": {\"id\": 42}}]")));
    JsonbIterator *it = JsonbIteratorInit(elem->val.binary.data);
    JsonbValue k, v;
    JsonbIteratorToken tok;
    bool has_payload = false;
    while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE) {
        if (tok != WJB_KEY)
            continue;
        char *key = pnstrdup(k.val.string.val, k.val.string.len);
        tok = JsonbIteratorNext(&it, &v, true);
        if (strcmp(key, "type") == 0) {
            a->type = json_text_field(&v, key);
        } else if (strcmp(key, "payload") == 0) {
            has_payload = true;
            a->payload = (v.type == jbvNull) ? DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("null")))
                                             : JsonbValueToJsonb(&v);
        } else if (strcmp(key, "ordering_key") == 0) {
            a->ordering_key = json_text_field(&v, key);
        } else if (strcmp(key, "headers") == 0) {
            a->headers = (v.type == jbvNull) ? nullptr : JsonbValueToJsonb(&v);
        } else if (strcmp(key, "deliver_at") == 0) {
            char *s = json_cstring_field(&v, key);
            if (s != nullptr) {
                a->has_deliver_at = true;
                a->deliver_at = DatumGetTimestampTz(DirectFunctionCall3(
                    timestamptz_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
            }
        } else if (strcmp(key, "delay") == 0) {
            char *s = json_cstring_field(&v, key);
            if (s != nullptr)
                a->delay = DatumGetIntervalP(DirectFunctionCall3(
                    interval_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
        } else if (strcmp(key, "id") == 0) {
            char *s = json_cstring_field(&v, key);
            if (s != nullptr)
                a->id = DatumGetUUIDP(DirectFunctionCall1(uuid_in, CStringGetDatum(s)));
        } else {
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("unknown key \"%s\" in an event of the batch", key),
                            errhint("The keys are type, payload, ordering_key, headers, deliver_at, delay and id.")));
        }
    }
    if (!has_payload)
        a->payload = nullptr; // reported by validate_publish
}

} // namespace

OUTBOX_SQL_FUNCTION(outbox_publish_batch)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                        errmsg("events must not be NULL")));
    Jsonb *events = PG_GETARG_JSONB_P(0);
    if (!JB_ROOT_IS_ARRAY(events) || JB_ROOT_IS_SCALAR(events))
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("events must be a JSON array of event objects")));
    int n = static_cast<int>(JB_ROOT_COUNT(events));
    if (n > kMaxPublishBatch)
        ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                        errmsg("a batch can hold at most %d events, not %d", kMaxPublishBatch, n),
                        errhint("Split it into several calls in the same transaction.")));

    Datum *ids = static_cast<Datum *>(palloc(sizeof(Datum) * (n > 0 ? n : 1)));
    if (n > 0) {
        BatchContext ctx = {0};
        ErrorContextCallback cb;
        cb.callback = batch_error_context;
        cb.arg = &ctx;
        cb.previous = error_context_stack;
        error_context_stack = &cb;

        // Parse and check everything first: a bad element changes nothing.
        PublishArgs *args = static_cast<PublishArgs *>(palloc0(sizeof(PublishArgs) * n));
        for (int i = 0; i < n; i++) {
            ctx.index = i + 1;
            JsonbValue *elem = getIthJsonbValueFromContainer(&events->root, i);
            parse_batch_element(elem, &args[i]);
            validate_publish(args[i]);
        }
        ctx.index = 0;
        check_transaction_guard("outbox_publish_batch");

        // The ids are the result: allocated here, in the function's context,
        // not after spi_begin() (SPI_finish frees all that is palloc'd in between).
        pg_uuid_t *id_values = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t) * n));
        spi_begin();
        for (int i = 0; i < n; i++) {
            ctx.index = i + 1;
            publish_one(args[i], &id_values[i]);
            ids[i] = UUIDPGetDatum(&id_values[i]);
        }
        spi_end();
        error_context_stack = cb.previous;
        note_published();
    }
    PG_RETURN_ARRAYTYPE_P(construct_array(ids, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}
