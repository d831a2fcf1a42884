// The SQL helpers of HTTP endpoints: the URL check (at outbox_create_endpoint
// and outbox_alter_endpoint, so that a bad URL never reaches the table), the
// generated signing secret, and the URL as logs and statistics show it. The
// URL parsing and the secret's format are pure C++ (http_client.cpp,
// webhook_signature.cpp).
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/http_client.hpp"
#include "outbox/webhook_signature.hpp"

extern "C" {
#include "utils/builtins.h"
}

#include <cstring>
#include <string>

namespace outbox {
namespace {

constexpr int kSecretBytes = 32;
constexpr int kMessageLen = 256;

} // namespace
} // namespace outbox

using namespace outbox;

// _outbox_check_webhook_url(url): nothing, or 22023 saying what is wrong
// (the URL itself is not repeated: it may carry credentials).
OUTBOX_SQL_FUNCTION(_outbox_check_webhook_url)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("url must not be NULL")));
    text *url = PG_GETARG_TEXT_PP(0);
    char why[kMessageLen];
    bool ok = false;
    cpp_call([&] {
        std::string reason;
        ok = check_webhook_url(std::string_view(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url)), reason);
        strlcpy(why, reason.c_str(), sizeof why);
    });
    if (!ok)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid webhook URL: %s", why),
                        errhint("An endpoint's URL is an absolute http:// or https:// URL with a host, without "
                                "user name, password or fragment, of at most 2048 bytes.")));
    PG_RETURN_VOID();
}

// _outbox_new_webhook_secret(): "whsec_" and the base64 of 32 random bytes.
OUTBOX_SQL_FUNCTION(_outbox_new_webhook_secret)
{
    unsigned char bytes[kSecretBytes];
    if (!pg_strong_random(bytes, sizeof bytes))
        ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR), errmsg("could not generate a random signing secret")));
    char out[128];
    cpp_call([&] { strlcpy(out, make_webhook_secret(bytes, sizeof bytes).c_str(), sizeof out); });
    explicit_bzero(bytes, sizeof bytes);
    text *result = cstring_to_text(out);
    explicit_bzero(out, sizeof out);
    PG_RETURN_TEXT_P(result);
}

// _outbox_redact_url(url): scheme://host[:port]/path, without credentials,
// the query replaced by "?…".
OUTBOX_SQL_FUNCTION(_outbox_redact_url)
{
    text *url = PG_GETARG_TEXT_PP(0);
    text *result = nullptr;
    char *buf = nullptr;
    size_t len = 0;
    cpp_call([&] {
        std::string r = redact_url(std::string_view(VARDATA_ANY(url), VARSIZE_ANY_EXHDR(url)));
        len = r.size();
        buf = static_cast<char *>(malloc(len + 1));
        if (buf != nullptr)
            memcpy(buf, r.c_str(), len + 1);
    });
    if (buf == nullptr)
        ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    result = cstring_to_text_with_len(buf, static_cast<int>(len));
    free(buf);
    PG_RETURN_TEXT_P(result);
}
