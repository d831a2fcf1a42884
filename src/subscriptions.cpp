// Subscriptions: outbox_subscribe() registers a SQL handler for an event type
// pattern. It is not SECURITY DEFINER: it must know who calls it, because the
// subscription is owned by that role (or one it is a member of) and its
// handler runs with that role's rights only. The row is written as the
// extension's owner, after every check.
#include "outbox/pg.hpp"
#include "outbox/extension.hpp"
#include "outbox/guard.hpp"
#include "outbox/limits.hpp"
#include "outbox/spi.hpp"
#include "outbox/wakeup.hpp"

extern "C" {
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/acl.h"
#include "utils/regproc.h"
#include "utils/syscache.h"
}

namespace outbox {
namespace {

text *
name_arg(FunctionCallInfo fcinfo, int argno, const char *what)
{
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", what)));
    text *t = PG_GETARG_TEXT_PP(argno);
    int len = VARSIZE_ANY_EXHDR(t);
    if (len == 0 || len > kMaxNameBytes)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s must have 1 to %d bytes", what, kMaxNameBytes)));
    return t;
}

// The handler must be a plain function taking one outbox_events row.
void
check_handler(Oid handler)
{
    Oid rowtype = get_rel_type_id(get_relname_relid("outbox_events", extension_schema_oid()));
    HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(handler));
    if (!HeapTupleIsValid(tup))
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION), errmsg("function %u does not exist", handler)));
    Form_pg_proc p = (Form_pg_proc) GETSTRUCT(tup);
    bool ok = p->prokind == PROKIND_FUNCTION && p->pronargs == 1 && p->proargtypes.values[0] == rowtype &&
              !p->proretset;
    ReleaseSysCache(tup);
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
                        errmsg("handler %s must be a function taking one argument of type outbox_events",
                               format_procedure(handler)),
                        errdetail("The relay calls it once per event with the event's row; it must not return a set."),
                        errhint("Example: CREATE FUNCTION on_user_created(e outbox_events) RETURNS void ...")));
}

} // namespace
} // namespace outbox

using namespace outbox;

// outbox_subscribe(name, event_type, handler regprocedure, owner regrole DEFAULT NULL)
OUTBOX_SQL_FUNCTION(outbox_subscribe)
{
    text *name = name_arg(fcinfo, 0, "subscription name");
    text *pattern = name_arg(fcinfo, 1, "event_type");
    if (PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("handler must not be NULL")));
    Oid handler = PG_GETARG_OID(2);
    Oid caller = GetUserId();
    Oid owner = PG_ARGISNULL(3) ? caller : PG_GETARG_OID(3);

    if (owner != caller && !is_member_of_role(caller, owner))
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("must be a member of role \"%s\" to subscribe on its behalf",
                               GetUserNameFromId(owner, false)),
                        errdetail("The handler of a subscription runs with the rights of its owner.")));
    check_handler(handler);
    if (pg_proc_aclcheck(handler, owner, ACL_EXECUTE) != ACLCHECK_OK)
        ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                        errmsg("role \"%s\" may not execute %s", GetUserNameFromId(owner, false),
                               format_procedure(handler)),
                        errhint("GRANT EXECUTE on the handler to the subscription's owner.")));

    Oid save_user;
    int save_sec;
    GetUserIdAndSecContext(&save_user, &save_sec);
    SetUserIdAndSecContext(extension_owner_oid(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
    spi_begin();
    Datum values[4] = {PointerGetDatum(name), PointerGetDatum(pattern), ObjectIdGetDatum(handler),
                       ObjectIdGetDatum(owner)};
    run(Stmt::Subscribe, values, nullptr);
    if (SPI_processed != 1)
        ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
                        errmsg("subscription \"%s\" already exists", text_to_cstring(name)),
                        errhint("Choose another name, or drop it first with outbox_unsubscribe().")));
    spi_end();
    SetUserIdAndSecContext(save_user, save_sec);
    note_published();  // the relay looks at once (at commit)
    PG_RETURN_VOID();
}
