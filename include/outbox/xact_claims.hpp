// Claims held by the caller's transaction (outbox_claim_xact()).
//
// Such a claim has no lease in the table: its events stay 'created', locked
// FOR UPDATE by the claiming transaction, and whoever completes, fails or
// releases them must be that transaction. This backend-local registry
// remembers, for the current transaction only, which events each of its
// claims holds and which it has already settled (completed, failed,
// released). It follows savepoints: a claim or settlement made in a
// subtransaction that rolls back is forgotten, as PostgreSQL forgets the row
// locks and changes it made. Memory lives in TopTransactionContext.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/uuid.h"
}

namespace outbox {

// What the transaction's claim `token` recorded when it was made.
struct XactClaimInfo {
    TimestampTz claimed_at;
    text *consumer;  // NULL: unnamed
};

// Start recording claim `token` of the current transaction; returns a handle
// for xact_claim_add().
int xact_claim_open(int64 token, text *consumer);
void xact_claim_add(int claim, const pg_uuid_t *id);

// Does `token` name a live claim of the current transaction?
bool xact_claim_known(int64 token, XactClaimInfo *info);

// Every event the current transaction holds or held through its claims
// (settled or not), or NULL if none: claims skip them.
ArrayType *xact_claimed_ids();

// Check that every id (distinct, sorted) is held by claim `token` of the
// current transaction and not settled yet, else raise OB001 (lease lost) or
// P0002; if `settle`, mark them settled by the current subtransaction.
void xact_claim_check(ArrayType *ids, int64 token, const char *action, bool settle);

// The transaction and subtransaction callbacks (registered once, from _PG_init).
void register_xact_claims_callback();

} // namespace outbox
