// Every setting (outbox.*), defined in settings.cpp.
//
// The SQL API's settings work in any backend that loads the library; the
// relay's are read by its launcher and workers (PGC_SIGHUP: a reload applies
// them); outbox.max_databases sizes shared memory and exists only when the
// library is preloaded.
#pragma once

namespace outbox {

// The SQL API.
enum RequireTransaction { REQUIRE_TX_OFF, REQUIRE_TX_WARNING, REQUIRE_TX_ERROR };
extern int guc_require_transaction;
extern int guc_max_retries;
extern int guc_base_backoff_ms;
extern int guc_max_backoff_ms;
extern int guc_processing_timeout_ms;
extern int guc_batch_size;             // a claim's default batch_size
extern int guc_max_payload_size;

// The relay.
extern char *guc_databases;
extern bool guc_enabled;
extern int guc_relay_batch_size;       // events per relay batch (one transaction); per database too
extern int guc_poll_interval_ms;
extern int guc_max_error_backoff_ms;
extern int guc_archive_retention_min;
extern char *guc_role;
extern int guc_handler_timeout_ms;
extern int guc_max_batch_duration_ms;
extern int guc_webhook_timeout_ms;
extern int guc_webhook_max_in_flight;   // per database (its sink worker)
extern bool guc_webhook_allow_private;
extern char *guc_kafka_credentials_file;  // TLS/SASL properties of Kafka targets ("": none)
extern int guc_webhook_breaker_failures;
extern int guc_webhook_disable_after_s;
extern int guc_webhook_max_retry_after_s;
extern int guc_max_databases;          // PGC_POSTMASTER, only when preloaded
extern int guc_metrics_max_names;      // PGC_POSTMASTER, only when preloaded
extern int guc_backlog_warning_age_s;

// From _PG_init: define them all and reserve the outbox. prefix.
void define_settings();

// Whether outbox.base_backoff is above outbox.max_backoff (every wait is then
// capped by max_backoff); if so and `log`, say so with a WARNING.
bool backoff_pair_is_inconsistent(bool log);

} // namespace outbox
