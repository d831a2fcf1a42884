// The PostgreSQL headers every PostgreSQL-facing C++ file (src/*.cpp) needs.
//
// postgres.h first, inside extern "C", and fmgr.h (Datum, the function call
// interface). Everything else a file uses it includes itself, also inside
// extern "C". Pure C++ files include "outbox/pure.hpp" instead and must never
// see these headers (see that file).
#pragma once

extern "C" {
#include "postgres.h"

#include "fmgr.h"

// The code is written against PostgreSQL 15's API; CI builds 15 and 18.
// What later majors moved or renamed, mapped back here:
#if PG_VERSION_NUM >= 160000
// 16: the varlena macros (VARDATA_ANY, VARSIZE_ANY_EXHDR) left postgres.h,
// and pg_<kind>_aclcheck / pg_<kind>_ownercheck became object_aclcheck /
// object_ownercheck with the catalog's OID (utils/acl.h declares both).
#include "varatt.h"
#include "catalog/pg_database_d.h"
#include "catalog/pg_proc_d.h"
#define pg_proc_aclcheck(proc, role, mode) object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#define pg_database_ownercheck(db, role) object_ownercheck(DatabaseRelationId, (db), (role))
#endif
#if PG_VERSION_NUM >= 170000
// 17: access/transam.h's ShmemVariableCache is TransamVariables.
#define ShmemVariableCache TransamVariables
#endif
}
