// The relay's note of the handler call in progress, kept in a file so that it
// outlives the process.
//
// A handler that ends its own backend (pg_terminate_backend(pg_backend_pid()),
// a FATAL error, a crash) takes the batch's transaction with it: the claim and
// every record of the attempt roll back. Before each handler call the relay
// writes which event it runs, for which subscription, in which transaction;
// after the batch's transaction ends it clears the note. A worker that starts
// and finds a note whose transaction did not commit charges that event one
// failed attempt (relay.cpp): a poison event then reaches `failed` after
// 1 + outbox.max_retries deaths, and its neighbours flow meanwhile.
//
// One small pwrite() per handler call into the operating system's page cache:
// it survives the process (and a crash restart of the cluster), not a crash
// of the machine, and costs no fsync.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "utils/uuid.h"
}

namespace outbox {

constexpr int kInflightSubscriptionLen = 128;

struct InflightNote {
    TransactionId xid;                      // the batch's transaction
    pg_uuid_t event;
    char subscription[kInflightSubscriptionLen];
};

// Open (create) this worker's note for database `dboid`; if the previous
// worker left a note, copy it to *left and return true. Problems with the
// file are logged once and make the note a no-op (delivery goes on).
bool inflight_open(Oid dboid, InflightNote *left);

// Before a handler call: event `id` runs for `subscription` in transaction `xid`.
void inflight_set(TransactionId xid, const pg_uuid_t *id, const char *subscription);

// The batch's transaction ended (committed or rolled back by the worker itself).
void inflight_clear();

} // namespace outbox
