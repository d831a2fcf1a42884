// Running the extension's statements: the search path pin and the saved
// plans (see spi.hpp).
#include "outbox/pg.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/spi.hpp"
#include "outbox/sql_text.hpp"

extern "C" {
#include "access/table.h"
#include "catalog/namespace.h"
#include "storage/bufmgr.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"
}

#include <cstring>

namespace outbox {

namespace {

// The saved plans (SPI_keepplan: in their own contexts under CacheMemoryContext).
struct Plans {
    uint64 generation;       // of the extension they were prepared for
    SPIPlanPtr plans[kStatementCount];
    // Generic plans: the plan cache generation last seen for each statement,
    // and the size of outbox_events (blocks) when that plan was built.
    int plan_generation[kStatementCount];
    BlockNumber plan_blocks[kStatementCount];
};

Plans saved = {};
#if PG_VERSION_NUM < 170000
OverrideSearchPath *pinned_path = nullptr;
#endif

// Plans of another installation of the extension (dropped, created again):
// prepared anew.
void
forget_stale_plans()
{
    uint64 generation = extension_generation();
    if (generation == saved.generation)
        return;
    for (auto &p : saved.plans) {
        if (p != nullptr)
            SPI_freeplan(p);
        p = nullptr;
    }
    saved.generation = generation;
}

SPIPlanPtr
plan(Stmt which)
{
    forget_stale_plans();
    const Statement &s = statement(which);
    SPIPlanPtr &slot = saved.plans[static_cast<int>(which)];
    if (slot != nullptr)
        return slot;

    char text[4096];
    const char *schema = extension_schema_quoted();
    const char *undispatched = extension_has_deliveries() ? "AND e.dispatched_at IS NULL" : "";
    cpp_call([&] { render_sql(s.name, s.text, schema, undispatched, text, sizeof text); });

    SPIPlanPtr p = SPI_prepare_cursor(text, s.nargs, const_cast<Oid *>(s.argtypes),
                                      s.plan == PlanChoice::Generic || s.plan == PlanChoice::GenericDeliveries
                                                                     ? CURSOR_OPT_GENERIC_PLAN
                                      : s.plan == PlanChoice::Custom ? CURSOR_OPT_CUSTOM_PLAN
                                                                     : 0);
    if (p == nullptr)
        elog(ERROR, "outbox: could not prepare statement \"%s\": %s", s.name, SPI_result_code_string(SPI_result));
    if (SPI_keepplan(p) != 0)
        elog(ERROR, "outbox: could not keep plan of statement \"%s\"", s.name);
    slot = p;
    saved.plan_generation[static_cast<int>(which)] = 0;
    return p;
}

// Statements planned PlanChoice::Generic keep one generic plan. Re-planning
// them on every execution (the plan cache keeps choosing custom plans for
// them) cost a third of the relay's CPU. Their generic plans walk
// outbox_events_claim_idx in order under the LIMIT (claim) or the primary key
// (the others), whatever the arguments, as long as the plan was built for a
// table of about the current size.
//
// A generic plan is built for the size the table has then. A queue table
// goes from empty to large without any relcache invalidation (nothing is
// analyzed until autovacuum comes by): a plan built on an empty outbox (seq
// scans) would then scan the whole heap on every execution. So such a plan
// is dropped and prepared again once outbox_events has more than doubled
// since it was built (plus a little slack for small tables).
constexpr BlockNumber kGrowthSlack = 32;

//
// PlanChoice::GenericDeliveries: the same, by the size of outbox_deliveries
// (the sink worker's statements, which reach it through its indexes whatever
// the plan: a plan built on an empty table would scan it, and is rebuilt once
// it has grown past the slack).
BlockNumber
guard_blocks(const Statement &s)
{
    // The lock the statement takes itself: a locking SELECT takes less than
    // one that writes.
    LOCKMODE mode = strncmp(s.text, "SELECT", 6) == 0 ? RowShareLock : RowExclusiveLock;
    Oid relid = s.plan == PlanChoice::GenericDeliveries
                    ? get_relname_relid("outbox_deliveries", extension_schema_oid())
                    : events_relid();
    if (!OidIsValid(relid))
        elog(ERROR, "outbox: table outbox_deliveries not found");
    Relation rel = table_open(relid, mode);
    BlockNumber n = RelationGetNumberOfBlocks(rel);
    table_close(rel, NoLock);  // the statement takes the same lock anyway
    return n;
}

} // namespace

void
spi_begin()
{
    (void) extension_schema_oid();  // ERROR now if the extension is not installed
#if PG_VERSION_NUM < 170000
    if (pinned_path == nullptr) {
        MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
        pinned_path = static_cast<OverrideSearchPath *>(palloc0(sizeof(OverrideSearchPath)));
        pinned_path->schemas = NIL;
        pinned_path->addCatalog = true;
        pinned_path->addTemp = false;
        MemoryContextSwitchTo(old);
    }
#endif
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "outbox: SPI_connect failed");
#if PG_VERSION_NUM < 170000
    PushOverrideSearchPath(pinned_path);
#else
    // 17 removed override search paths: search_path is set in a GUC nest
    // level of its own instead, to core's safe path (pg_temp named last, so
    // that it is not searched first), as core's maintenance commands do.
    // An ERROR in between: transaction (or subtransaction) abort pops it.
    (void) NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
                             GUC_ACTION_SAVE, true, 0, false);
#endif
}

void
spi_end()
{
#if PG_VERSION_NUM < 170000
    PopOverrideSearchPath();
#else
    // Pop the nest level spi_begin made: the one below a new one (calls of
    // spi_begin and spi_end nest, as PopOverrideSearchPath required, and so
    // do the nest levels of function calls with SET clauses in between).
    AtEOXact_GUC(true, NewGUCNestLevel() - 1);
#endif
    if (SPI_finish() != SPI_OK_FINISH)
        elog(ERROR, "outbox: SPI_finish failed");
}

int
run(Stmt which, const Datum *values, const char *nulls, bool read_only, long count)
{
    int i = static_cast<int>(which);
    const Statement &s = statement(which);
    bool generic = s.plan == PlanChoice::Generic || s.plan == PlanChoice::GenericDeliveries;
    BlockNumber blocks = 0;
    if (generic) {
        forget_stale_plans();
        blocks = guard_blocks(s);
        if (saved.plans[i] != nullptr && saved.plan_generation[i] != 0 &&
            blocks > 2 * saved.plan_blocks[i] + kGrowthSlack) {
            SPI_freeplan(saved.plans[i]);
            saved.plans[i] = nullptr;
        }
    }
    SPIPlanPtr p = plan(which);
    int rc = SPI_execute_plan(p, const_cast<Datum *>(values), nulls, read_only, count);
    if (rc < 0)
        elog(ERROR, "outbox: statement \"%s\" failed: %s", s.name, SPI_result_code_string(rc));
    if (generic) {
        // A new generic plan (first use, or rebuilt after an invalidation)
        // was built during this execution, for the size measured above.
        List *sources = SPI_plan_get_plan_sources(p);
        if (sources != NIL) {
            CachedPlanSource *src = static_cast<CachedPlanSource *>(linitial(sources));
            if (src->generation != saved.plan_generation[i]) {
                saved.plan_generation[i] = src->generation;
                saved.plan_blocks[i] = blocks;
            }
        }
    }
    return rc;
}

} // namespace outbox
