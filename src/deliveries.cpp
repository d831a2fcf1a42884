// Deliveries: failing and completing (event, subscription) deliveries (see
// deliveries.hpp).
#include "outbox/pg.hpp"
#include "outbox/backoff.hpp"
#include "outbox/deliveries.hpp"
#include "outbox/settings.hpp"
#include "outbox/settle.hpp"
#include "outbox/spi.hpp"

extern "C" {
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace outbox {

const char *
fail_delivery(const pg_uuid_t *id, const char *subscription, int attempts_before, const char *error,
              TimestampTz *next_out)
{
    TimestampTz now = GetCurrentStatementStartTimestamp();
    bool give_up = attempts_exhausted(attempts_before, guc_max_retries);
    TimestampTz next = give_up ? now : retry_time(now, attempts_before);
    const char *status = give_up ? "failed" : "created";
    Datum values[6] = {UUIDPGetDatum(const_cast<pg_uuid_t *>(id)), CStringGetTextDatum(subscription),
                       CStringGetTextDatum(status), PointerGetDatum(clip_error(cstring_to_text(error))),
                       TimestampTzGetDatum(next), TimestampTzGetDatum(next)};
    char nulls[7] = "      ";
    if (give_up)
        nulls[5] = 'n';
    run(Stmt::FailDelivery, values, nulls, false, 1);
    if (SPI_processed != 1)
        elog(ERROR, "outbox: the delivery to subscription \"%s\" being failed is gone", subscription);
    if (next_out != nullptr)
        *next_out = give_up ? 0 : next;
    return status;
}

int
complete_deliveries(const pg_uuid_t *ids, const char *const *subscriptions, int n, TimestampTz started)
{
    if (n == 0)
        return 0;
    Datum *id_elems = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    Datum *sub_elems = static_cast<Datum *>(palloc(sizeof(Datum) * n));
    for (int i = 0; i < n; i++) {
        id_elems[i] = UUIDPGetDatum(const_cast<pg_uuid_t *>(&ids[i]));
        sub_elems[i] = CStringGetTextDatum(subscriptions[i]);
    }
    ArrayType *id_array = construct_array(id_elems, n, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR);
    Datum values[3] = {PointerGetDatum(id_array),
                       PointerGetDatum(construct_array(sub_elems, n, TEXTOID, -1, false, TYPALIGN_INT)),
                       TimestampTzGetDatum(started)};
    run(Stmt::CompleteDeliveries, values, nullptr);
    if (SPI_processed != static_cast<uint64>(n))
        elog(ERROR, "outbox: %d of %d deliveries being completed are gone", n - static_cast<int>(SPI_processed), n);
    Datum arg = PointerGetDatum(id_array);
    run(Stmt::ArchiveSettled, &arg, nullptr, false, 1);
    bool isnull = true;
    Datum moved = SPI_processed == 1 ? SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull) : 0;
    return isnull ? 0 : DatumGetInt32(moved);
}

} // namespace outbox
