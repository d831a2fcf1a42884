// The relay's shared memory: one slot per served database, with what its
// worker is doing and its counters.
//
// Exists only when the library is in shared_preload_libraries
// (relay_shmem_ready() says whether it does). Every access goes through the
// functions below, in shmem.cpp: the slots' fields under one LWLock of the
// named tranche "outbox relay" (never a system call or an allocation under
// it), the counters as atomics.
#pragma once

#include "outbox/pg.hpp"

extern "C" {
#include "datatype/timestamp.h"
#include "storage/latch.h"
#include "utils/uuid.h"
}

namespace outbox {

constexpr int kActivityLen = 64;
constexpr int kLastErrorLen = 512;

// From _PG_init under shared_preload_libraries: ask for the shared memory.
void install_shmem_hooks();

// Whether the shared memory exists (the library was preloaded), and its
// number of slots (outbox.max_databases).
bool relay_shmem_ready();
int relay_slot_count();

// ---- The launcher

// Forget every slot without a worker (a launcher that starts, once the
// workers an earlier one left running have exited).
void slots_clear_stopped();
// The slot of database `dboid`, assigned now (named `dbname`, activity
// "starting") if it has none; -1 when every slot is taken.
int slot_assign(Oid dboid, const char *dbname);
// Slot i: whether it is assigned, and to which database (dbname may be null;
// else NAMEDATALEN bytes).
bool slot_assigned(int i, Oid *dboid, char *dbname);
// Slot i no longer wanted (its worker has stopped): free it.
void slot_free(int i);
// If DROP DATABASE asked slot i's worker to leave: until when (0: not asked,
// or the time is over, and the request is forgotten).
TimestampTz slot_leave_until(int i, TimestampTz now);

// ---- A worker

// Worker of slot i for database `dboid`, started: take the slot (false if it
// is not ours: reassigned, or another worker holds it); dbname gets its name.
bool slot_attach(int i, Oid dboid, char *dbname);
// The worker exits: its slot no longer names it.
void slot_detach(int i);
void slot_set_activity(int i, const char *what);
// An error of the worker's own: last_error, and activity "error backoff".
void slot_record_error(int i, const char *msg);
// What one batch did (last_error: the last handler failure, "" for none).
void slot_count_batch(int i, int claimed, int delivered, int retried, int failed, const char *last_error);
void slot_count_reclaimed(int i, int reclaimed, int failed);
// DROP DATABASE of this worker's database is under way: leave.
bool slot_asked_to_leave(int i);

// ---- The sink worker of a slot (external deliveries of the same database)
// The relay says whether its database has a subscription with an external
// sink; the launcher starts or stops the slot's sink worker accordingly.
void slot_set_wants_sink(int i, bool wants);
bool slot_wants_sink(int i);
// Subscriptions or endpoints changed (at the commit of a change: raises
// nothing); the sink workers read theirs again.
void sink_config_changed() noexcept;
uint64 sink_config_generation() noexcept;
// The launcher's latch (null when it exits), set when a slot's wish changes.
void launcher_set_latch(Latch *latch);
// The pid of slot i's sink worker, 0 if none.
int slot_sink_pid(int i);
// The sink worker of slot i for `dboid` starts (false: not ours) and exits.
bool slot_sink_attach(int i, Oid dboid, char *dbname);
void slot_sink_detach(int i);
void slot_sink_set_activity(int i, const char *what);
// The length of the sink's library queues (Sink::queue_length(), summed over
// kinds; -1: no kind has one); no lock, raises nothing.
void slot_sink_set_queue(int i, long queued) noexcept;
// The latch of the sink worker serving `dboid`, or null (lock shared; raises
// nothing).
Latch *slot_sink_latch_of(Oid dboid) noexcept;

// ---- Events the sink worker settled, archived by the relay of its slot
//
// The sink worker's settlement writes the deliveries acknowledged; moving
// their events to the archive is the costlier half of it, and the relay of
// the same database (idle while events go to sinks) takes it over: after
// the commit, the sink appends the ids of the events of the deliveries it
// settled, and the relay archives those whose deliveries are all settled
// (_outbox_archive_settled's statements, which check). Ids lost with the
// shared memory (a crash), with a failed archive or with a relay that
// exited meanwhile are found by the relay's sweep of settled events (at its
// first round, then once a minute).
constexpr int kArchiveQueueLen = 2048;
// Room for ids in slot i's queue (0 when its relay does not run).
int slot_archive_room(int i) noexcept;
// Append up to n ids (at most the room) and set the relay's latch; returns
// how many were appended (0 when the relay does not run).
int slot_archive_push(int i, const pg_uuid_t *ids, int n) noexcept;
// The relay takes up to max ids, oldest first; returns how many.
int slot_archive_take(int i, pg_uuid_t *out, int max) noexcept;
// Whether ids wait in slot i's queue.
bool slot_archive_waiting(int i) noexcept;

// ---- Others

// Ask the worker serving database `dboid` (if any) for a round: its wake
// flag, then its latch. Takes the lock shared, raises nothing: safe at commit.
void slot_wake(Oid dboid) noexcept;
// Whether a commit asked worker i for a round since the last call (and
// forget it). No lock.
bool slot_take_wake(int i);
// DROP DATABASE of `dboid`: ask its workers (relay and sink) to leave, and
// the launcher not to start them again before `until`. Returns the slot (-1:
// not served) and sets their latches.
int slot_ask_to_leave(Oid dboid, TimestampTz until);
// The pid of slot i's worker, 0 if none.
int slot_worker_pid(int i);

// A copy of one assigned slot, for outbox_worker_stats().
struct SlotView {
    char dbname[NAMEDATALEN];
    int pid;
    TimestampTz started_at;
    char activity[kActivityLen];
    uint64 delivered;
    uint64 failed;
    uint64 retried;
    uint64 reclaimed;
    uint64 batches;
    TimestampTz last_batch_at;
    TimestampTz last_error_at;
    char last_error[kLastErrorLen];
    int64 sink_queue;  // -1: no sink queue (no sink worker, or no Kafka producer kind)
};
// Copies of the assigned slots into out (relay_slot_count() entries); returns how many.
int slots_view(SlotView *out);

// Copy `msg` into a fixed buffer of cap bytes, cut at a character boundary.
void copy_message(char *dst, int cap, const char *msg);

} // namespace outbox
