// The relay's background workers: a launcher that starts one worker per
// database of outbox.databases, and the per-database worker loop.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// Worker settings (defined in worker.cpp).
extern char *guc_databases;
extern bool guc_enabled;
extern int guc_poll_interval_ms;
extern int guc_max_error_backoff_ms;
extern int guc_archive_retention_min;
extern char *guc_role;
extern int guc_handler_timeout_ms;
extern int guc_max_batch_duration_ms;

void define_worker_gucs();

// Register the launcher (from _PG_init under shared_preload_libraries).
void register_launcher();

} // namespace outbox

extern "C" {
PGDLLEXPORT void outbox_launcher_main(Datum arg);
PGDLLEXPORT void outbox_worker_main(Datum arg);
}
