// The module: _PG_init.
#include "outbox/pg.hpp"
#include "outbox/drop_database.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/launcher.hpp"
#include "outbox/metrics.hpp"
#include "outbox/settings.hpp"
#include "outbox/shmem.hpp"
#include "outbox/wakeup.hpp"
#include "outbox/xact_claims.hpp"

extern "C" {
#include "miscadmin.h"
}

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
    define_settings();
    register_extension_invalidation();
    register_wakeup_callback();
    register_xact_claims_callback();
    register_metrics_callbacks();
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
