// Waking the relay when a transaction that published commits.
//
// A backend that published marks itself; at commit (never before, never on
// abort) a transaction callback sets the latch of its database's relay
// worker, which the worker published in its shared-memory slot. Without the
// relay (the library not preloaded) the mark does nothing.
#pragma once

namespace outbox {

// From _PG_init (always): the transaction callback.
void register_wakeup_callback();

// Called after a successful publish (or a new subscription): wake this
// database's relay worker when (and only if) the current transaction commits.
void note_published();

} // namespace outbox
