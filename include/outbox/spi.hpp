// Running the extension's statements (statements.hpp) through SPI.
#pragma once

#include "outbox/pg.hpp"
#include "outbox/statements.hpp"

extern "C" {
#include "executor/spi.h"
}

namespace outbox {

// Connect to SPI with the search path pinned to pg_catalog; undo with
// spi_end(). An ERROR in between is cleaned up by transaction abort. Nothing
// palloc'd in between outlives spi_end() unless it was allocated in a context
// of the caller's (SPI_palloc, or MemoryContextAlloc in one).
void spi_begin();
void spi_end();

// Run statement `which` (between spi_begin and spi_end) through its saved
// plan, prepared on first use in this backend; raises ERROR on an
// unexpected SPI result. Results are in SPI_tuptable / SPI_processed.
int run(Stmt which, const Datum *values, const char *nulls, bool read_only = false, long count = 0);

} // namespace outbox
