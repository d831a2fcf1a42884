// Shared memory of the relay: one slot per served database (the worker's
// latch, what it is doing, its counters), and the wake-on-commit signal.
//
// Exists only when the library is in shared_preload_libraries; without it
// every function here is a no-op (note_published) or says so (stats).
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "storage/latch.h"
#include "storage/lwlock.h"
}

namespace outbox {

constexpr int kActivityLen = 64;
constexpr int kLastErrorLen = 512;

// One database served by a relay worker. Every field is protected by
// RelayShared::lock (an LWLock of the "outbox relay" tranche).
struct RelaySlot {
    bool in_use;                   // assigned to a database by the launcher
    Oid dboid;
    char dbname[NAMEDATALEN];
    int pid;                       // the worker's pid while it runs, else 0
    Latch *latch;                  // the worker's latch while it runs, else null
    TimestampTz started_at;
    char activity[kActivityLen];
    uint64 delivered;              // events whose handlers all succeeded (archived)
    uint64 failed;                 // events that became failed (attempts exhausted)
    uint64 retried;                // failed attempts scheduled for a retry
    uint64 reclaimed;              // expired leases of external consumers taken back
    uint64 batches;                // batches that claimed at least one event
    TimestampTz last_batch_at;
    TimestampTz last_error_at;
    char last_error[kLastErrorLen];
    TimestampTz leave_until;       // DROP DATABASE under way: the worker leaves and is
                                   // not started again before this (0: not asked)
};

struct RelayShared {
    LWLock *lock;
    int launcher_pid;
    int nslots;
    RelaySlot slots[FLEXIBLE_ARRAY_MEMBER];
};

// Null unless the library was preloaded (after shared memory startup).
extern RelayShared *relay_shared;

// Size of outbox.max_databases (PGC_POSTMASTER).
extern int guc_max_databases;

// From _PG_init under shared_preload_libraries: ask for the shared memory.
void install_shmem_hooks();

// From _PG_init (always): the transaction callback that wakes at commit.
void register_wakeup_callback();

// Called after a successful publish: wake this database's relay worker when
// (and only if) the current transaction commits.
void note_published();

// Copy `msg` into a fixed buffer, cut at a character boundary.
void copy_message(char *dst, int cap, const char *msg);

} // namespace outbox
