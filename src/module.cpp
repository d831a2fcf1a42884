// The module: _PG_init.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/state.hpp"
#include "outbox/wakeup.hpp"
#include "outbox/xact_claims.hpp"
#include "outbox/worker.hpp"
#include "outbox/drop_database.hpp"

extern "C" {
PG_MODULE_MAGIC;
PGDLLEXPORT void _PG_init(void);
}

namespace outbox {

static void
init_module()
{
    // pg_upgrade loads libraries into servers that must run nothing of ours.
    if (IsBinaryUpgrade)
        return;
    define_gucs();
    define_worker_gucs();
    MarkGUCPrefixReserved("outbox");
    register_invalidation();
    register_wakeup_callback();
    register_xact_claims_callback();
    // The relay (shared memory, launcher) exists only when preloaded; the SQL
    // API works without it, and what needs it says so.
    if (process_shared_preload_libraries_in_progress) {
        install_shmem_hooks();
        install_drop_database_hook();
        register_launcher();
    }
}

} // namespace outbox

extern "C" void
_PG_init(void)
{
    outbox::guarded_entry([] { outbox::init_module(); });
}
