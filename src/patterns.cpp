// Event type patterns (see patterns.hpp).
#include "outbox/pg.hpp"
#include "outbox/limits.hpp"
#include "outbox/patterns.hpp"

extern "C" {
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
}

namespace outbox {

text *
like_pattern(const char *pattern, int len)
{
    StringInfoData buf;
    initStringInfo(&buf);
    for (int j = 0; j < len; j++) {
        char c = pattern[j];
        if (c == '*') {
            appendStringInfoChar(&buf, '%');
            continue;
        }
        if (c == '%' || c == '_' || c == '\\')
            appendStringInfoChar(&buf, '\\');
        appendStringInfoChar(&buf, c);
    }
    text *like = cstring_to_text_with_len(buf.data, buf.len);
    pfree(buf.data);
    return like;
}

ArrayType *
type_patterns_arg(ArrayType *types)
{
    if (ARR_NDIM(types) > 1)
        ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR), errmsg("types must be a one-dimensional array")));
    Datum *elems;
    bool *nulls;
    int n;
    deconstruct_array(types, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    if (n == 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("types must not be empty"),
                        errhint("Pass NULL to claim events of every type.")));
    for (int i = 0; i < n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("types must not contain NULL")));
        text *t = DatumGetTextPP(elems[i]);
        int len = VARSIZE_ANY_EXHDR(t);
        if (len == 0 || len > kMaxNameBytes)
            ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                            errmsg("each type pattern must have 1 to %d bytes", kMaxNameBytes)));
        elems[i] = PointerGetDatum(like_pattern(VARDATA_ANY(t), len));
    }
    return construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT);
}

bool
type_matches(text *type, text *like)
{
    return DatumGetBool(DirectFunctionCall2Coll(textlike, DEFAULT_COLLATION_OID, PointerGetDatum(type),
                                                PointerGetDatum(like)));
}

} // namespace outbox
