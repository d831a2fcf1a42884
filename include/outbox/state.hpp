// What a backend knows about the installed extension: its schema, the saved
// plans of the fast-path statements, and the settings (GUCs).
#pragma once

#include "outbox/pg.hpp"
#include "outbox/statements.hpp"

namespace outbox {

// SQLSTATE OB001: the caller's lease on an event is gone (it expired and the
// event was reclaimed, completed, released or failed by someone else).
#define ERRCODE_OUTBOX_LEASE_LOST MAKE_SQLSTATE('O', 'B', '0', '0', '1')

// Settings (defined in gucs.cpp).
enum RequireTransaction { REQUIRE_TX_OFF, REQUIRE_TX_WARNING, REQUIRE_TX_ERROR };
extern int guc_require_transaction;
extern int guc_max_retries;
extern int guc_base_backoff_ms;
extern int guc_max_backoff_ms;
extern int guc_processing_timeout_ms;
extern int guc_batch_size;
extern int guc_max_payload_size;
void define_gucs();

// Limits shared by the SQL API.
constexpr int kMaxNameBytes = 255;      // event type, ordering key
constexpr int kMaxBatch = 10000;        // claim batch size
constexpr int kMaxPublishBatch = 100000;
constexpr int kMinLeaseSeconds = 1;
constexpr int kMaxLeaseSeconds = 86400;
constexpr int kMaxErrorBytes = 8192;    // last_error is truncated beyond this

// Set while the relay worker runs handlers: publishing from there is inside
// the worker's own transaction, so the transaction guard stays quiet.
extern bool in_relay_worker;

// The schema the extension is installed in (quoted), looked up once per
// backend and again after the extension was dropped or re-created.
const char *extension_schema_quoted();
Oid extension_schema_oid();
// The role that created the extension (owner of its tables).
Oid extension_owner_oid();
Oid status_type_oid();

// Connect to SPI with the search path pinned to pg_catalog; undo with
// spi_end(). An ERROR in between is cleaned up by transaction abort.
void spi_begin();
void spi_end();

// The saved plan of a statement (prepared on first use in this backend).
SPIPlanPtr plan(Stmt which);

// Run a saved plan; raises ERROR on an unexpected SPI result.
int run(Stmt which, const Datum *values, const char *nulls, bool read_only = false, long count = 0);

// Install the relcache callback that notices DROP EXTENSION (from _PG_init).
void register_invalidation();

// Argument helpers for SQL functions.
int lease_seconds_arg(Interval *lease, const char *what);
// `base` + `interval` for argument `what` (delay, retry_in): 22008 naming the
// argument when the result would be out of timestamp range.
TimestampTz timestamp_plus_arg(TimestampTz base, Interval *interval, const char *what);
ArrayType *distinct_uuid_array(ArrayType *ids, int *n_out);

// Raise the right error for an event that an operation holding lease `token`
// could not find leased to it: unknown (P0002) or lease lost (OB001).
[[noreturn]] void raise_not_leased(pg_uuid_t *id, int64 token, const char *action);

} // namespace outbox
