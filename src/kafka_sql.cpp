// The SQL helper of Kafka targets: _outbox_check_kafka_target, at
// outbox_create_kafka_target, so that bad brokers, a bad topic template or a
// property the sink would refuse never reach the table. The checks are the
// sink's own (pure C++, kafka.hpp and sink_kafka.cpp); building a librdkafka
// configuration object to try the values starts no thread.
#include "outbox/pg.hpp"
#include "outbox/guard.hpp"
#include "outbox/kafka.hpp"

extern "C" {
#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
}

#include <string>

namespace outbox {
namespace {

constexpr int kMessageLen = 512;

// The elements of a text[] (no NULLs) as C strings; count in *n.
char **
text_array(ArrayType *a, int *n)
{
    Datum *elems;
    bool *nulls;
    deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
    char **out = static_cast<char **>(palloc0(sizeof(char *) * (*n + 1)));
    for (int i = 0; i < *n; i++) {
        if (nulls[i])
            ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("a property must not be NULL")));
        out[i] = TextDatumGetCString(elems[i]);
    }
    return out;
}

} // namespace
} // namespace outbox

using namespace outbox;

// _outbox_check_kafka_target(bootstrap_servers, topic, names, values):
// nothing, or 22023 naming what is wrong (a property by name, never its value).
OUTBOX_SQL_FUNCTION(_outbox_check_kafka_target)
{
    if (PG_ARGISNULL(0))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("bootstrap_servers must not be NULL")));
    if (PG_ARGISNULL(1))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("topic must not be NULL")));
    if (PG_ARGISNULL(2) || PG_ARGISNULL(3))
        ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("properties must not be NULL")));
    char *servers = text_to_cstring(PG_GETARG_TEXT_PP(0));
    char *topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
    int nnames = 0, nvalues = 0;
    char **names = text_array(PG_GETARG_ARRAYTYPE_P(2), &nnames);
    char **values = text_array(PG_GETARG_ARRAYTYPE_P(3), &nvalues);
    if (nnames != nvalues)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("as many property names as values")));
    const char **pairs = static_cast<const char **>(palloc0(sizeof(char *) * (2 * nnames + 1)));
    for (int i = 0; i < nnames; i++) {
        pairs[2 * i] = names[i];
        pairs[2 * i + 1] = values[i];
    }
    char why[kMessageLen];
    int bad = 0;  // 1: servers, 2: topic, 3: a property
    cpp_call([&] {
        std::string reason;
        if (!kafka_bootstrap_check(servers, reason))
            bad = 1;
        else if (!kafka_topic_template_check(topic, reason))
            bad = 2;
        else if (!kafka_properties_check(pairs, nnames, reason))
            bad = 3;
        strlcpy(why, reason.c_str(), sizeof why);
    });
    if (bad == 1)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid bootstrap_servers: %s", why),
                        errhint("Name the brokers as host:port[,host:port...].")));
    if (bad == 2)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid topic template: %s", why),
                        errhint("A topic template is a topic name (letters, digits, '.', '_', '-'; at most 249 "
                                "characters) in which ${type} stands for the event's type and ${aggregate} for its "
                                "first segment, e.g. outbox.event.${aggregate}.")));
    if (bad == 3)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("invalid producer property: %s", why),
                        errhint("Allowed are tuning properties such as linger.ms, batch.size, compression.type, "
                                "queue.buffering.max.messages and client.id; the sink sets idempotence, acks, the "
                                "partitioner and the timeout itself; TLS and SASL settings go in the file "
                                "outbox.kafka_credentials_file names.")));
    PG_RETURN_VOID();
}
