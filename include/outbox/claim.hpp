// Claiming: outbox_claim() (a lease) and outbox_claim_xact() (the caller's
// transaction); the relay's own claim shares the reclaim of expired leases.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
}

namespace outbox {

// Columns of a "reclaim xact" row (from 1).
constexpr int kReclaimAttemptCol = 3;
constexpr int kReclaimRowCol = 4;  // the whole outbox_events row, as it is now

// What reclaim_met_expired() did: rows[i] is the "reclaim xact" row of row i
// of the claim if that event was an expired lease and is handed out again;
// NULL otherwise (not expired, or out of attempts and now failed). rows is
// NULL when the claim met no expired lease.
struct ReclaimedRows {
    HeapTuple *rows;
    TupleDesc desc;
};

// A transaction claim (`claim`, n rows, between spi_begin and spi_end) met
// expired leases where its boolean column `expired_col` is true: reclaim them
// (the attempt counts; out of attempts, failed). The claim's own rows stay
// valid.
ReclaimedRows reclaim_met_expired(SPITupleTable *claim, int n, int expired_col);

} // namespace outbox
