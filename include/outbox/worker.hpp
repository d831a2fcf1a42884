// The relay's per-database worker: started by the launcher (launcher.hpp)
// for one database, it delivers that database's events batch after batch
// (relay.hpp) and does its upkeep (expired leases, archive retention).
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// What the launcher passes to a worker (bgw_extra; bgw_main_arg is its slot).
struct WorkerArgs {
    Oid dboid;
    Oid role;  // InvalidOid: the bootstrap superuser
};

// Set while this process is a relay worker: publishing from its handlers is
// inside its own transaction, so the transaction guard stays quiet, and its
// transaction claims are charged through its in-flight note (inflight.hpp).
extern bool in_relay_worker;

// The start of each round of the launcher's and the workers' loops: handle
// interrupts, the postmaster's death and a pending reload, then work in a
// freshly reset `cxt`.
void start_round(MemoryContext cxt);

// A relay or sink worker's start: its signals, and its connection to the
// database and as the role the launcher passed (returned).
WorkerArgs worker_connect();
// Its session, once it holds its slot: application name, no JIT, READ
// COMMITTED.
void worker_session(const char *appname);

} // namespace outbox

// The entry points the postmaster starts (bgw_function_name): the relay
// worker's, and the sink worker's (src/sink_worker.cpp). Exported: from
// PostgreSQL 16 on PGXS builds with -fvisibility=hidden.
extern "C" {
PGDLLEXPORT void outbox_worker_main(Datum arg);
PGDLLEXPORT void outbox_sink_main(Datum arg);
}
