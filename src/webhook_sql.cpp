// outbox_webhook_signature(): the Standard Webhooks `webhook-signature`
// header value for a message, exactly as the HTTP sink signs its deliveries,
// so that a receiver's verification can be tested and a delivery checked by
// hand. The signing itself is pure C++ (src/webhook_signature.cpp).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/webhook_signature.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <cstdio>
#include <string_view>

namespace outbox {

namespace {

// A text argument that must not be NULL: 22004 naming it.
text *
required_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
    if (PG_ARGISNULL(argno))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("%s must not be NULL", name)));
    return PG_GETARG_TEXT_PP(argno);
}

std::string_view
text_view(const text *t)
{
    return std::string_view(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

} // namespace

} // namespace outbox

// Not STRICT: a NULL argument is a mistake worth naming (a NULL signature
// would go out as an empty header, or fail a verification far from here).
OUTBOX_SQL_FUNCTION(outbox_webhook_signature)
{
    using namespace outbox;
    text *secret = required_text(fcinfo, 0, "secret");
    text *id = required_text(fcinfo, 1, "id");
    if (PG_ARGISNULL(2))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("timestamp must not be NULL")));
    int64 timestamp = PG_GETARG_INT64(2);
    text *body = required_text(fcinfo, 3, "body");
    if (timestamp < 0)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("timestamp must not be negative"),
                        errhint("Pass the Unix time in seconds, as sent in the webhook-timestamp header.")));
    char timestamp_text[32];
    snprintf(timestamp_text, sizeof timestamp_text, INT64_FORMAT, timestamp);

    // The message of a malformed secret names the problem, never the secret
    // (error messages reach the server log and the client).
    char out[kMaxWebhookSignatureHeader + 1];
    bool ok = false;
    cpp_call([&] {
        ok = webhook_signature_into(text_view(secret), text_view(id), timestamp_text, text_view(body), out, sizeof out);
    });
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", out)));
    PG_RETURN_TEXT_P(cstring_to_text(out));
}
