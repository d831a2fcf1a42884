// What a backend knows of the installed extension: its schema, its owner, its
// status type, looked up once and again after DROP or CREATE EXTENSION.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// The schema the extension is installed in (quoted, ready for SQL text), and
// its oid. ERROR (42704, with a hint) when the extension is not installed.
const char *extension_schema_quoted();
Oid extension_schema_oid();
// The role that created the extension (owner of its tables).
Oid extension_owner_oid();
// outbox_status, the enum of an event's status.
Oid status_type_oid();
// outbox_events.
Oid events_relid();
// outbox_lease_token_seq, the fencing tokens' sequence (InvalidOid: missing).
Oid lease_token_seq_oid();

// Which installation of the extension the lookups above describe: it changes
// when the extension was dropped and created again (new objects, maybe in
// another schema), and whatever was built on the old one (the saved plans of
// spi.cpp) must be built again.
uint64 extension_generation();
// Whether the installed schema has delivery state (0.2.0 or later). An older
// one is served by the consumers' functions until ALTER EXTENSION outbox
// UPDATE; the relay and the sink worker wait for the update.
bool extension_has_deliveries();

// From _PG_init: the relcache callback that notices DROP EXTENSION and
// rewrites of outbox_events.
void register_extension_invalidation();

} // namespace outbox
