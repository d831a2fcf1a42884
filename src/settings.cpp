// Every setting (outbox.*), with its check (see settings.hpp).
#include "outbox/pg.hpp"
#include "outbox/limits.hpp"
#include "outbox/settings.hpp"

extern "C" {
#include "access/parallel.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/varlena.h"
}

#include <climits>
#include <cstring>
#include <initializer_list>

namespace outbox {

int guc_require_transaction = REQUIRE_TX_WARNING;
int guc_max_retries = 5;
int guc_base_backoff_ms = 1000;
int guc_max_backoff_ms = 600000;
int guc_processing_timeout_ms = 30000;
int guc_batch_size = 50;
int guc_max_payload_size = 1024 * 1024;

char *guc_databases = nullptr;
bool guc_enabled = true;
int guc_relay_batch_size = 50;
int guc_poll_interval_ms = 1000;
int guc_max_error_backoff_ms = 30000;
int guc_archive_retention_min = 7 * 24 * 60;
char *guc_role = nullptr;
int guc_handler_timeout_ms = 10000;
int guc_max_batch_duration_ms = 1000;
int guc_webhook_timeout_ms = 15000;
int guc_webhook_max_in_flight = 256;
bool guc_webhook_allow_private = false;
char *guc_kafka_credentials_file = nullptr;
int guc_webhook_breaker_failures = 5;
int guc_webhook_disable_after_s = 5 * 86400;
int guc_webhook_max_retry_after_s = 3600;
int guc_max_databases = 16;
int guc_metrics_max_names = 1000;
int guc_backlog_warning_age_s = 300;

namespace {

const struct config_enum_entry require_transaction_options[] = {
    {"off", REQUIRE_TX_OFF, false},
    {"warning", REQUIRE_TX_WARNING, false},
    {"error", REQUIRE_TX_ERROR, false},
    {"on", REQUIRE_TX_ERROR, true},
    {"true", REQUIRE_TX_ERROR, true},
    {"false", REQUIRE_TX_OFF, true},
    {nullptr, 0, false},
};

// outbox.databases: database names separated by commas.
bool
check_databases(char **newval, void **extra, GucSource source)
{
    char *raw = pstrdup(*newval);
    List *names;
    bool ok = SplitIdentifierString(raw, ',', &names);
    if (!ok)
        GUC_check_errdetail("List syntax is invalid: give database names separated by commas.");
    list_free(names);
    pfree(raw);
    return ok;
}

// outbox.role: one role name, or empty. Whether the role exists is known only
// in a transaction: the launcher looks it up, and starts no worker (saying
// so) while it does not. A value no role can have (CREATE ROLE refuses
// "public" and "none"; a name has at most NAMEDATALEN - 1 bytes) is refused
// in a backend: by ALTER SYSTEM, and by a reload, which keeps the value in
// effect. Not in the postmaster: there a refused value would fall back to the
// default, the bootstrap superuser; let through, it reaches the launcher as a
// role that does not exist. Nor in a parallel worker, which takes its
// leader's settings as they are (refusing one fails the query).
bool
check_role(char **newval, void **extra, GucSource source)
{
    const char *name = *newval;
    if (!IsUnderPostmaster || InitializingParallelWorker || name == nullptr || name[0] == '\0')
        return true;
    if (strlen(name) >= NAMEDATALEN) {
        GUC_check_errdetail("A role name has at most %d bytes.", NAMEDATALEN - 1);
        return false;
    }
    if (strcmp(name, "public") == 0 || strcmp(name, "none") == 0) {
        GUC_check_errdetail("\"%s\" is not the name of a role.", name);
        GUC_check_errhint("Give the name of a role with LOGIN, or leave outbox.role empty for the bootstrap superuser.");
        return false;
    }
    return true;
}

} // namespace

// outbox.base_backoff above outbox.max_backoff is not refused by a check
// hook: PostgreSQL applies settings one at a time, in orders the user does not
// choose (a parallel worker takes its leader's in name order, role settings
// come before database settings), so a hook comparing the two would refuse
// good configurations. Every wait is capped by outbox.max_backoff anyway
// (backoff.hpp); a base above it is reported instead, when the server starts
// and by the launcher when a reload makes it so.
bool
backoff_pair_is_inconsistent(bool log)
{
    bool bad = guc_base_backoff_ms > guc_max_backoff_ms;
    if (bad && log)
        ereport(WARNING, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                          errmsg("outbox.base_backoff (%d ms) is above outbox.max_backoff (%d ms)", guc_base_backoff_ms,
                                 guc_max_backoff_ms),
                          errdetail("Every retry waits at most outbox.max_backoff."),
                          errhint("Set outbox.base_backoff to at most outbox.max_backoff.")));
    return bad;
}

namespace {

void
define_api_settings()
{
    DefineCustomEnumVariable(
        "outbox.require_transaction",
        "What outbox_publish does when called outside a transaction block.",
        "off: nothing; warning: a WARNING (default); error: refuse. Catches an event published "
        "on its own, in autocommit, instead of inside the transaction of the business change.",
        &guc_require_transaction, REQUIRE_TX_WARNING, require_transaction_options,
        PGC_USERSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_retries",
        "Retries after the first attempt before an event is marked failed.",
        "An event is attempted at most 1 + max_retries times.",
        &guc_max_retries, 5, 0, 1000, PGC_SUSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_backoff",
        "Largest backoff ceiling between two attempts of an event.",
        "A base_backoff above it is capped by it.",
        &guc_max_backoff_ms, 600000, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.base_backoff",
        "Backoff ceiling of the first retry; it doubles with each further retry.",
        "Each retry waits a random time between 0 and min(max_backoff, base_backoff * 2^(n-1)) (full jitter).",
        &guc_base_backoff_ms, 1000, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.processing_timeout",
        "Default lease of a claim: after it, an event not completed may be claimed again.",
        "outbox_claim(lease => ...) overrides it per claim.",
        &guc_processing_timeout_ms, 30000, kMinLeaseSeconds * 1000, kMaxLeaseSeconds * 1000,
        PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.batch_size",
        "Default number of events one claim takes.",
        "The relay's batches have their own size: outbox.relay_batch_size.",
        &guc_batch_size, 50, 1, kMaxBatch, PGC_USERSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_payload_size",
        "Largest payload (and largest headers) an event may have.",
        nullptr,
        &guc_max_payload_size, 1024 * 1024, 1024, 1024 * 1024 * 1024, PGC_SUSET, GUC_UNIT_BYTE,
        nullptr, nullptr, nullptr);
}

void
define_relay_settings()
{
    DefineCustomStringVariable(
        "outbox.databases",
        "Databases the relay serves, separated by commas (one worker each).",
        "A database without the outbox extension is skipped quietly until CREATE EXTENSION outbox.",
        &guc_databases, "", PGC_SIGHUP, GUC_LIST_INPUT, check_databases, nullptr, nullptr);

    DefineCustomBoolVariable(
        "outbox.enabled",
        "Whether the relay delivers events.",
        "off stops the relay's workers; events wait in outbox_events.",
        &guc_enabled, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.relay_batch_size",
        "Most events one relay batch claims and delivers, in one transaction.",
        "A full batch is followed at once by the next; a shorter one lets the worker sleep until woken. "
        "A batch that runs no handler (events only handed to sinks) takes up to 1000. "
        "Per database: ALTER DATABASE ... SET (the worker reads it when it starts).",
        &guc_relay_batch_size, 50, 1, kMaxBatch, PGC_SUSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.poll_interval",
        "How often a relay worker looks at its outbox while events in it wait for consumers (due, or leased).",
        "A fallback: the worker wakes as soon as a transaction that published commits, and when a delivery time "
        "or a retry comes. With no event waiting for consumers it looks once a minute, or at this interval if "
        "that is longer.",
        &guc_poll_interval_ms, 1000, 10, 24 * 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_error_backoff",
        "Longest pause of a relay worker after an error of its own (it doubles from 1 s).",
        nullptr,
        &guc_max_error_backoff_ms, 30000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.archive_retention",
        "How long delivered events are kept in outbox_events_archive.",
        "The relay runs outbox_archive_maintain() with it at start and every hour.",
        &guc_archive_retention_min, 7 * 24 * 60, 60, INT_MAX / 2, PGC_SIGHUP, GUC_UNIT_MIN, nullptr, nullptr, nullptr);

    DefineCustomStringVariable(
        "outbox.role",
        "Role the relay's workers connect as (empty: the bootstrap superuser).",
        "It needs LOGIN; the relay's own work runs as the extension's owner and each handler as its subscription's owner.",
        &guc_role, "", PGC_SIGHUP, 0, check_role, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.handler_timeout",
        "Statement timeout of one subscription handler call (0: none).",
        "A handler that runs longer is cancelled: its event is retried with backoff.",
        &guc_handler_timeout_ms, 10000, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_batch_duration",
        "Longest time one relay batch runs handlers before it commits.",
        "Checked between events: the events not run yet are claimed again by the next batch, at once, no attempt "
        "counted. Bounds how long a batch holds its row locks and the xmin horizon that keeps vacuum from "
        "cleaning outbox_events.",
        &guc_max_batch_duration_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.backlog_warning_age",
        "Age of the oldest due event or delivery past which the relay logs a warning (0: never).",
        "Logged once when the backlog gets older than this, and once when it is back under it; checked every "
        "10 s (twice per warning age if that is shorter). Deliveries of paused subscriptions and endpoints do not count.",
        &guc_backlog_warning_age_s, 300, 0, 30 * 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.webhook_timeout",
        "Default timeout of one webhook request (outbox_create_endpoint(timeout => ...) sets an endpoint's own).",
        "From the moment the request is handed to the network to its whole answer; a request that takes longer "
        "is a failed attempt, retried.",
        &guc_webhook_timeout_ms, 15000, 100, 300000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.webhook_max_in_flight",
        "Most webhook requests the sink worker of one database has in flight at once, over all endpoints.",
        "Each endpoint has its own maximum too (max_in_flight of outbox_create_endpoint, default 16).",
        &guc_webhook_max_in_flight, 256, 1, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomBoolVariable(
        "outbox.webhook_allow_private_addresses",
        "Let webhooks go to loopback, private, link-local and other non-public addresses.",
        "Off: a delivery whose endpoint resolves to such an address is refused (the check is made on the address "
        "connected to, so DNS cannot get around it). Turn on for endpoints inside your network, and for tests.",
        &guc_webhook_allow_private, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomStringVariable(
        "outbox.kafka_credentials_file",
        "File of the TLS and SASL settings of Kafka targets (empty: none).",
        "Lines name=value of security.protocol, sasl.* and ssl.* librdkafka properties, read by the sink worker "
        "when it makes a producer; keep it readable by the server's OS user only. Credentials are never taken "
        "from SQL, and never logged.",
        &guc_kafka_credentials_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.webhook_breaker_failures",
        "Failed attempts in a row after which an endpoint's circuit breaker opens.",
        "While it is open no delivery to the endpoint is attempted (none is charged an attempt); after a cool-down "
        "that doubles from 5 s up to 10 min, one probe is sent: a success closes the breaker.",
        &guc_webhook_breaker_failures, 5, 1, 1000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.webhook_disable_after",
        "How long an endpoint may fail without a success before it is disabled.",
        "Its deliveries then wait (none is dropped) until outbox_resume_endpoint().",
        &guc_webhook_disable_after_s, 5 * 86400, 60, 365 * 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.webhook_max_retry_after",
        "Longest Retry-After an endpoint's 429 or 503 answer is honoured for.",
        nullptr,
        &guc_webhook_max_retry_after_s, 3600, 1, 86400, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);

    // Sizes shared memory: only when preloaded (a PGC_POSTMASTER setting
    // cannot be created after startup).
    if (process_shared_preload_libraries_in_progress) {
        DefineCustomIntVariable(
            "outbox.max_databases",
            "Most databases the relay can serve (sizes shared memory).",
            nullptr,
            &guc_max_databases, 16, 1, 1024, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);

        DefineCustomIntVariable(
            "outbox.metrics_max_names",
            "Most subscriptions and consumer names, over all databases, whose delivery metrics are kept "
            "(sizes shared memory).",
            "Counts for names beyond it reach only their database's total in outbox_metrics().",
            &guc_metrics_max_names, 1000, 16, 100000, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
    }
}

} // namespace

void
define_settings()
{
    define_api_settings();
    define_relay_settings();
    MarkGUCPrefixReserved("outbox");
    // Once, from the postmaster (not from every backend that loads the library).
    (void) backoff_pair_is_inconsistent(!IsUnderPostmaster);
}

} // namespace outbox
