// Settings of the SQL API (outbox.*). The relay worker defines its own in worker code.
#include "outbox/pg.hpp"
#include "outbox/state.hpp"

#include <climits>

namespace outbox {

int guc_require_transaction = REQUIRE_TX_WARNING;
int guc_max_retries = 5;
int guc_base_backoff_ms = 1000;
int guc_max_backoff_ms = 600000;
int guc_processing_timeout_ms = 30000;
int guc_batch_size = 50;
int guc_max_payload_size = 1024 * 1024;

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

} // namespace

void
define_gucs()
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
        "outbox.base_backoff",
        "Backoff ceiling of the first retry; it doubles with each further retry.",
        "Each retry waits a random time between 0 and min(max_backoff, base_backoff * 2^(n-1)) (full jitter).",
        &guc_base_backoff_ms, 1000, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_backoff",
        "Largest backoff ceiling between two attempts of an event.",
        nullptr,
        &guc_max_backoff_ms, 600000, 1, INT_MAX, PGC_SUSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.processing_timeout",
        "Default lease of a claim: after it, an event not completed may be claimed again.",
        "outbox_claim(lease => ...) overrides it per claim.",
        &guc_processing_timeout_ms, 30000, kMinLeaseSeconds * 1000, kMaxLeaseSeconds * 1000,
        PGC_USERSET, GUC_UNIT_MS, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.batch_size",
        "Default number of events one claim takes.",
        nullptr,
        &guc_batch_size, 50, 1, kMaxBatch, PGC_USERSET, 0, nullptr, nullptr, nullptr);

    DefineCustomIntVariable(
        "outbox.max_payload_size",
        "Largest payload (and largest headers) an event may have.",
        nullptr,
        &guc_max_payload_size, 1024 * 1024, 1024, 1024 * 1024 * 1024, PGC_SUSET, GUC_UNIT_BYTE,
        nullptr, nullptr, nullptr);
}

} // namespace outbox
