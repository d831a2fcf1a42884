// The installed extension as this backend knows it (see extension.hpp).
#include "outbox/pg.hpp"
#include "outbox/extension.hpp"

extern "C" {
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

namespace outbox {

namespace {

// All of this lives in TopMemoryContext.
struct ExtensionState {
    bool valid;              // resolved
    bool recheck;            // a relcache event says: look again before use
    uint64 generation;       // bumped each time another installation is found
    Oid extension_oid;       // pg_extension row the state was built from
    Oid schema_oid;
    Oid owner;               // the role that created the extension
    Oid events_relid;
    Oid lease_token_seq;     // outbox_lease_token_seq (InvalidOid: missing)
    Oid status_type;         // outbox_status
    bool has_deliveries;     // the schema is 0.2.0 or later (outbox_deliveries exists)
    char *schema_quoted;
};

ExtensionState state = {};

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

// The relations a rewrite or a DROP may give a new oid (relcache_callback).
void
lookup_relations(Oid nsp)
{
    state.events_relid = get_relname_relid("outbox_events", nsp);
    state.lease_token_seq = get_relname_relid("outbox_lease_token_seq", nsp);
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
    bool has_deliveries = OidIsValid(get_relname_relid("outbox_deliveries", nsp));
    if (state.valid && ext == state.extension_oid && nsp == state.schema_oid &&
        has_deliveries == state.has_deliveries) {
        lookup_relations(nsp);
        state.recheck = false;
        return;
    }
    state.generation++;
    if (state.schema_quoted != nullptr)
        pfree(state.schema_quoted);
    state.schema_quoted = nullptr;
    state.valid = false;

    char *name = get_namespace_name(nsp);
    state.schema_quoted = MemoryContextStrdup(TopMemoryContext, quote_identifier(name));
    state.extension_oid = ext;
    state.schema_oid = nsp;
    lookup_relations(nsp);
    state.status_type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid, CStringGetDatum("outbox_status"),
                                        ObjectIdGetDatum(nsp));
    // An ALTER EXTENSION outbox UPDATE to 0.2.0 changes what the statements
    // say: a new generation, so that plans are prepared again.
    state.has_deliveries = has_deliveries;
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
    if (!OidIsValid(relid) || relid == state.events_relid || relid == state.lease_token_seq)
        state.recheck = true;
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

Oid
events_relid()
{
    ensure_state();
    return state.events_relid;
}

Oid
lease_token_seq_oid()
{
    ensure_state();
    return state.lease_token_seq;
}

bool
extension_has_deliveries()
{
    ensure_state();
    return state.has_deliveries;
}

uint64
extension_generation()
{
    ensure_state();
    return state.generation;
}

void
register_extension_invalidation()
{
    CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
}

} // namespace outbox
