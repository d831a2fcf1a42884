// The relay's launcher: a static background worker that keeps one worker
// (worker.hpp) per database of outbox.databases.
#pragma once

#include "outbox/pg.hpp"

namespace outbox {

// Register the launcher (from _PG_init under shared_preload_libraries).
void register_launcher();

} // namespace outbox

// The entry point the postmaster starts (bgw_function_name).
extern "C" {
PGDLLEXPORT void outbox_launcher_main(Datum arg);
}
