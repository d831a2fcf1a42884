// The statements behind the C++ fast paths: one row each (see statements.hpp).
//
// A row gives the statement's name, its text, the types of its parameters in
// the order of their numbers, and how it is planned. The compiler checks the
// table: one row per Stmt, in order, and a text whose highest $n is the row's
// number of arguments.
#include "outbox/pg.hpp"
#include "outbox/statements.hpp"
#include "outbox/sql_text.hpp"

extern "C" {
#include "catalog/pg_type.h"
}

#include <initializer_list>

namespace outbox {

namespace {

// Pieces of text that several statements share, as plain SQL.

// Which events a claim takes (the three claims, whose parameters $1 to $5
// are the same): due events, oldest first, never one whose ordering key has
// an earlier event still in the outbox (pending, in flight or failed),
// locked FOR UPDATE SKIP LOCKED. $1 is the batch size, $2 the LIKE patterns
// of the types to take (NULL: all), $3 those to leave alone (NULL: none), $4
// the ids to skip (NULL: none).
// Events the relay handed to subscriptions (dispatched_at set) are never
// claimed again: their deliveries are. `earlier` picks the events that hold
// a later one of their ordering key back.
// A leased event keeps its place in outbox_events_claim_idx (the lease does
// not move available_at, so that taking and extending it are HOT updates):
// the scan meets the leases in force and leaves them out here, from the heap.
#define CLAIMABLE_HELD_BY(earlier)                                                      \
    " WHERE e.status = ANY ('{created,active}'::@extschema@.outbox_status[])"           \
    "   @undispatched@"                                                                 \
    "   AND e.available_at <= statement_timestamp()"                                    \
    "   AND (e.status = 'created' OR " LEASE_ENDED ")"                                  \
    "   AND ($2::text[] IS NULL OR e.type LIKE ANY ($2::text[]))"                       \
    "   AND ($3::text[] IS NULL OR NOT e.type LIKE ANY ($3::text[]))"                   \
    "   AND ($4::uuid[] IS NULL OR e.id <> ALL ($4::uuid[]))"                           \
    "   AND (e.ordering_key IS NULL OR NOT EXISTS ("                                    \
    "        SELECT FROM @extschema@.outbox_events p"                                   \
    "         WHERE p.ordering_key = e.ordering_key AND p.seq < e.seq" earlier "))"     \
    " ORDER BY e.available_at, e.seq"                                                   \
    " LIMIT $1"                                                                         \
    " FOR UPDATE OF e SKIP LOCKED"

// When a lease ends: its last heartbeat (or its claim) plus its length. Not
// a column of any index, nor is keep_alive or expire_in_seconds.
#define LEASE_END "(e.keep_alive + make_interval(secs => e.expire_in_seconds))"
// The lease of an active event has ended (NULL keep_alive: no lease to wait for).
#define LEASE_ENDED "coalesce(" LEASE_END " <= statement_timestamp(), true)"

// For consumers: any earlier event of the key still in the outbox (pending,
// in flight, being delivered to subscriptions, or failed) holds it back.
#define CLAIMABLE CLAIMABLE_HELD_BY("")
// For the relay handing events to subscriptions: an earlier event of the key
// not handed over yet. Once handed over, each subscription keeps the key's
// order among its own deliveries (the delivery claims).
#define DISPATCHABLE CLAIMABLE_HELD_BY(" AND p.dispatched_at IS NULL")

// The claim's fencing token: taken by the caller (claim.cpp, next_lease_token:
// a nextval() here would run again for a row re-checked by EvalPlanQual).
#define CLAIM_TOKEN "$5::int8"

// In the claim: this event is an expired lease with no attempt left ($8 is
// outbox.max_retries).
#define EXHAUSTED "(e.status = 'active' AND e.retry_count >= $8)"

// Why a lease ended, for last_error.
#define LEASE_EXPIRED                                                                   \
    "format('lease expired: not completed within %s s by %s (lease token %s)',"         \
    " e.expire_in_seconds, coalesce(e.lease_owner, 'an unnamed consumer'), e.lease_token)"

// A failed event is never due: available_at 'infinity' takes it out of the
// claim order and into outbox_events_failed_idx (whose predicate this is).
#define NEVER_DUE "'infinity'::timestamptz"

// An expired lease taken back ("reclaim xact" and "reclaim expired"; $1 is
// outbox.max_retries): the attempt counts; past the maximum the event becomes
// failed, else it is due again at once.
#define RECLAIM                                                                         \
    "UPDATE @extschema@.outbox_events e SET"                                            \
    " status = CASE WHEN e.retry_count >= $1 THEN 'failed' ELSE 'created' END::@extschema@.outbox_status," \
    " retry_count = e.retry_count + 1, last_error = " LEASE_EXPIRED ","                 \
    " available_at = CASE WHEN e.retry_count >= $1 THEN " NEVER_DUE                     \
    "                ELSE least(e.available_at, statement_timestamp()) END,"             \
    " next_retry_at = NULL, keep_alive = NULL, lease_token = NULL"

// Completed events, moved to the archive: those of outbox_events that
// `where` picks, recorded with `started_on` and `lease_owner`.
#define COMPLETE(where, started_on, lease_owner)                                        \
    "WITH done AS ("                                                                    \
    " DELETE FROM @extschema@.outbox_events e"                                          \
    " WHERE " where                                                                     \
    " RETURNING e.*) "                                                                  \
    "INSERT INTO @extschema@.outbox_events_archive"                                     \
    " (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on," \
    "  retry_count, last_error, started_on, completed_on, lease_owner) "                \
    "SELECT d.id, d.seq, d.type, d.payload, d.headers, d.ordering_key, 'completed', d.occurred_at," \
    " d.created_on, d.retry_count, d.last_error, " started_on ", statement_timestamp(), " lease_owner \
    " FROM done d "                                                                     \
    "RETURNING id, lease_owner"

// The events $1 still held by the lease $2 (heartbeat, release, complete).
#define HELD_BY_LEASE "e.id = ANY ($1) AND e.lease_token = $2 AND e.status = 'active'"

constexpr Oid kClaimArgs[] = {INT4OID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, INT8OID};

constexpr Statement kStatements[] = {
    {Stmt::Publish, "publish",
     "INSERT INTO @extschema@.outbox_events (id, type, payload, headers, ordering_key, available_at) "
     "VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))",
     6, {UUIDOID, TEXTOID, JSONBOID, JSONBOID, TEXTOID, TIMESTAMPTZOID}, PlanChoice::Default},

    {Stmt::PublishIdCheck, "publish id check",
     "SELECT CASE WHEN EXISTS (SELECT FROM @extschema@.outbox_events WHERE id = $1) THEN 1 "
     "WHEN EXISTS (SELECT FROM @extschema@.outbox_events_archive WHERE id = $1) THEN 2 ELSE 0 END",
     1, {UUIDOID}, PlanChoice::Default},

    // The claimable events get a lease. An active event whose lease expired
    // is reclaimed: that counts as a failed attempt, and one past the maximum
    // becomes failed instead of being handed out. The UPDATE returns rows in
    // table order: the outer SELECT hands them out in claim order (earliest
    // due first, then publish order).
    {Stmt::Claim, "claim",
     "WITH cand AS ("
     " SELECT e.id, e.available_at AS due, e.seq, e.status = 'active' AS expired, e.lease_owner AS prior_owner"
     " FROM @extschema@.outbox_events e"
     CLAIMABLE "), "
     "claimed AS ("
     "UPDATE @extschema@.outbox_events e SET"
     " status = CASE WHEN " EXHAUSTED " THEN 'failed' ELSE 'active' END::@extschema@.outbox_status,"
     " retry_count = e.retry_count + CASE WHEN e.status = 'active' THEN 1 ELSE 0 END,"
     " last_error = CASE WHEN e.status = 'active'"
     "   THEN " LEASE_EXPIRED
     "   ELSE e.last_error END,"
     " next_retry_at = NULL,"
     // An exhausted event keeps the record of its last lease; the others get a new one.
     " started_on = CASE WHEN " EXHAUSTED " THEN e.started_on ELSE statement_timestamp() END,"
     " keep_alive = CASE WHEN " EXHAUSTED " THEN e.keep_alive ELSE statement_timestamp() END,"
     " expire_in_seconds = CASE WHEN " EXHAUSTED " THEN e.expire_in_seconds ELSE $6 END,"
          // The lease does not move available_at (an indexed column): HOT.
     " available_at = CASE WHEN " EXHAUSTED " THEN " NEVER_DUE " ELSE e.available_at END,"
     " lease_owner = CASE WHEN " EXHAUSTED " THEN e.lease_owner ELSE $7 END,"
     " lease_token = CASE WHEN " EXHAUSTED " THEN NULL"
     "               ELSE " CLAIM_TOKEN " END"
     " WHERE e.id = ANY (ARRAY(SELECT id FROM cand)) "
     "RETURNING e.id, e.type, e.payload, e.headers, e.ordering_key, e.occurred_at,"
     " e.retry_count + 1 AS attempt, e.lease_token, " LEASE_END ", e.status = 'active' AS handed_out) "
     "SELECT claimed.*, cand.expired, cand.prior_owner, cand.due FROM claimed JOIN cand ON cand.id = claimed.id"
     " ORDER BY cand.due, cand.seq",
     8, {INT4OID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, INT8OID, INT4OID, TEXTOID, INT4OID},
     PlanChoice::Generic},

    // outbox_claim_xact(): the claimable events, held by the row locks of
    // the caller's transaction instead of a lease. A plain locking SELECT:
    // nothing is written. Events this transaction already claimed are
    // skipped ($4): its own row locks do not make SKIP LOCKED skip them. An
    // active event met here is one whose lease expired (expired = true): the
    // caller reclaims those with "reclaim xact" before handing them out.
    {Stmt::ClaimXact, "claim xact",
     "SELECT e.id, e.type, e.payload, e.headers, e.ordering_key, e.occurred_at,"
     " e.retry_count + 1 AS attempt,"
     " " CLAIM_TOKEN " AS lease_token,"
     " NULL::timestamptz AS lease_expires_at, e.status = 'active' AS expired, e.available_at AS due"
     " FROM @extschema@.outbox_events e"
     CLAIMABLE,
     5, {INT4OID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, INT8OID}, PlanChoice::Generic},

    // The relay's claim of events to hand to the subscriptions ($2: the
    // patterns of them all): locked as "claim xact" does; an active event met
    // is an expired lease of a consumer, reclaimed first. `blocked`: its
    // ordering key has a delivery to one of the subscriptions $5 not settled
    // yet (an earlier event of the key, handed over, still being delivered).
    // With the whole row if $6: the relay may run the handlers on it in the
    // batch (NULL when it only hands events over: no payload copied).
    {Stmt::DispatchClaim, "dispatch claim",
     "SELECT e.id, e.type, e.status = 'active' AS expired, e.ordering_key IS NOT NULL AS keyed,"
     " CASE WHEN e.ordering_key IS NULL THEN false ELSE EXISTS ("
     "   SELECT FROM @extschema@.outbox_deliveries p"
     "    WHERE p.subscription = ANY ($5::text[]) AND p.ordering_key = e.ordering_key"
     "      AND p.completed_on IS NULL) END AS blocked,"
     " CASE WHEN $6 THEN e END"
     " FROM @extschema@.outbox_events e"
     DISPATCHABLE,
     6, {INT4OID, TEXTARRAYOID, TEXTARRAYOID, UUIDARRAYOID, TEXTARRAYOID, BOOLOID}, PlanChoice::Generic},

    // The claimed events $1 handed to their subscriptions: a delivery for
    // each pair ($2[i], $3[i]), due at once; the event is active (being
    // delivered) until its deliveries are settled.
    {Stmt::Dispatch, "dispatch",
     "WITH ev AS ("
     " UPDATE @extschema@.outbox_events e SET"
     " status = 'active', dispatched_at = statement_timestamp(), next_retry_at = NULL,"
     " keep_alive = NULL, lease_token = NULL"
     " WHERE e.id = ANY ($1) RETURNING e.id, e.seq, e.ordering_key) "
     "INSERT INTO @extschema@.outbox_deliveries (event_id, subscription, seq, ordering_key, available_at) "
     "SELECT ev.id, m.sub, ev.seq, ev.ordering_key, statement_timestamp()"
     " FROM unnest($2::uuid[], $3::text[]) AS m(id, sub) JOIN ev ON ev.id = m.id",
     3, {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID}, PlanChoice::Custom},

    // The due deliveries of the SQL subscriptions $2 (active ones), at most
    // $1 of each and $1 in all, oldest first (an event's deliveries in
    // subscription order), never one whose ordering key has an earlier
    // delivery to the same subscription not settled yet; locked for the
    // batch's transaction. With the event's whole row, the handler's argument.
    {Stmt::SqlDeliveryClaim, "sql delivery claim",
     "SELECT d.event_id, d.subscription, d.attempts, d.last_error, d.next_retry_at, e"
     " FROM unnest($2::text[]) AS s(name)"
     " CROSS JOIN LATERAL ("
     "  SELECT d.event_id, d.subscription, d.attempts, d.last_error, d.next_retry_at, d.available_at, d.seq"
     "  FROM @extschema@.outbox_deliveries d"
     "  WHERE d.subscription = s.name AND d.status = 'created'"
     "    AND d.available_at <= statement_timestamp()"
     "    AND (d.ordering_key IS NULL OR NOT EXISTS ("
     "         SELECT FROM @extschema@.outbox_deliveries p"
     "          WHERE p.subscription = d.subscription AND p.ordering_key = d.ordering_key"
     "            AND p.seq < d.seq AND p.completed_on IS NULL))"
     "  ORDER BY d.available_at, d.seq"
     "  LIMIT $1"
     "  FOR UPDATE OF d SKIP LOCKED) d"
     " JOIN @extschema@.outbox_events e ON e.id = d.event_id"
     " ORDER BY d.available_at, d.seq, d.subscription"
     " LIMIT $1",
     2, {INT4OID, TEXTARRAYOID}, PlanChoice::Custom},

    // Events $1 the relay delivered to all their subscriptions in the batch
    // that claimed them, never handed over (no delivery rows): moved to the
    // archive, each with a completed first attempt for each of its pairs
    // ($2[i], $3[i]), started at $4.
    {Stmt::ArchiveDelivered, "archive delivered",
     "WITH gone AS ("
     " DELETE FROM @extschema@.outbox_events e WHERE e.id = ANY ($1) RETURNING e.*), "
     "per_event AS ("
     " SELECT m.id, jsonb_object_agg(m.sub, jsonb_build_object("
     "   'status', 'completed', 'attempts', 1, 'completed_on', statement_timestamp())) AS deliveries"
     " FROM unnest($2::uuid[], $3::text[]) AS m(id, sub) GROUP BY m.id) "
     "INSERT INTO @extschema@.outbox_events_archive"
     " (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,"
     "  retry_count, last_error, started_on, completed_on, lease_owner, deliveries) "
     "SELECT g.id, g.seq, g.type, g.payload, g.headers, g.ordering_key, 'completed', g.occurred_at,"
     " g.created_on, g.retry_count, g.last_error, $4, statement_timestamp(), 'outbox relay', p.deliveries"
     " FROM gone g JOIN per_event p ON p.id = g.id",
     4, {UUIDARRAYOID, UUIDARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}, PlanChoice::Generic},

    // Deliveries made: the pairs ($1[i], $2[i]), started at $3.
    {Stmt::CompleteDeliveries, "complete deliveries",
     "UPDATE @extschema@.outbox_deliveries d SET"
     " status = 'completed', attempts = d.attempts + 1, completed_on = statement_timestamp(),"
     " started_on = $3, next_retry_at = NULL, lease_token = NULL"
     " FROM unnest($1::uuid[], $2::text[]) AS m(id, sub)"
     " WHERE d.event_id = m.id AND d.subscription = m.sub",
     3, {UUIDARRAYOID, TEXTARRAYOID, TIMESTAMPTZOID}, PlanChoice::Custom},

    // A failed attempt of delivery ($1, $2): $3 the new status as text, $4
    // the error, $5 when it is due again, $6 next_retry_at.
    {Stmt::FailDelivery, "fail delivery",
     "UPDATE @extschema@.outbox_deliveries d SET"
     " status = $3::@extschema@.outbox_status, attempts = d.attempts + 1, last_error = $4,"
     " available_at = $5, next_retry_at = $6, started_on = statement_timestamp(), lease_token = NULL "
     "WHERE d.event_id = $1 AND d.subscription = $2",
     6, {UUIDOID, TEXTOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, PlanChoice::Custom},

    // A SQL delivery left as a batch left it (due), locked -> its attempts.
    {Stmt::LockDelivery, "lock delivery",
     "SELECT d.attempts FROM @extschema@.outbox_deliveries d"
     " WHERE d.event_id = $1 AND d.subscription = $2 AND d.status = 'created' FOR UPDATE",
     2, {UUIDOID, TEXTOID}, PlanChoice::Custom},

    // The sink worker's subscriptions with their endpoints: kind, endpoint,
    // URL, static headers ("Name: value"), timeout, maximum in flight, state,
    // breaker (0 closed, 1 open, 2 half-open: one probe), subscription
    // paused, the signing secrets in force (newest first; NULL: none), and
    // for Kafka targets the bootstrap servers, the topic template and the
    // producer properties (name, value, name, value ..., by name).
    {Stmt::SinkSubscriptions, "sink subscriptions",
     "SELECT s.name, s.sink, e.name, e.url,"
     " ARRAY(SELECT h.k || ': ' || (h.v #>> '{}') FROM jsonb_each(e.headers) AS h(k, v) ORDER BY h.k),"
     " e.timeout_ms, e.max_in_flight, e.state,"
     " CASE WHEN e.breaker_open_until IS NULL THEN 0"
     "      WHEN e.breaker_open_until > statement_timestamp() THEN 1 ELSE 2 END,"
     " s.paused,"
     " (SELECT string_agg(x.secret, ' ' ORDER BY x.created_at DESC) FROM @extschema@.outbox_endpoint_secrets x"
     "   WHERE x.endpoint = e.name AND (x.expires_at IS NULL OR x.expires_at > statement_timestamp())),"
     " e.bootstrap_servers, e.topic,"
     " ARRAY(SELECT x.v FROM jsonb_each_text(e.properties) AS p(k, v),"
     "       unnest(ARRAY[p.k, p.v]) WITH ORDINALITY AS x(v, o) ORDER BY p.k, x.o)"
     " FROM @extschema@.outbox_subscriptions s JOIN @extschema@.outbox_endpoints e ON e.name = s.endpoint"
     " WHERE s.sink <> 'sql' ORDER BY e.name, s.name",
     0, {}, PlanChoice::Default},

    // Due deliveries of subscription $1, at most $2, leased for $3 seconds:
    // the attempt counts now (a delivery whose worker dies still uses up its
    // attempts). Per-key order: only the earliest delivery of a key not
    // settled is claimable, so one is in flight per key. Returns the event's
    // JSON body as a webhook sends it (NULL for Kafka: $4), and when it
    // became due (for the lag metric); then what a Kafka record is made of
    // (the payload's JSON text and the headers, name, value, ...: NULL for a
    // webhook), the type, the ordering key, occurred_at in ms; last, whether
    // the event has an ordering key (settling it may make the next delivery
    // of that key claimable). Building only what the kind sends: a quarter
    // of the statement's time for 1,000 deliveries.
    // One generic plan (its planning was ~40 % of its cost): the claimed rows
    // are reached by primary key (= ANY, and a lateral lookup per row of the
    // event), so that no estimate of the table can make it a hash join over
    // a scan of either table.
    {Stmt::SinkClaim, "sink claim",
     "WITH cand AS ("
     " SELECT d.event_id FROM @extschema@.outbox_deliveries d"
     " WHERE d.subscription = $1 AND d.status = 'created' AND d.available_at <= statement_timestamp()"
     "   AND (d.ordering_key IS NULL OR NOT EXISTS ("
     "        SELECT FROM @extschema@.outbox_deliveries p"
     "         WHERE p.subscription = d.subscription AND p.ordering_key = d.ordering_key"
     "           AND p.seq < d.seq AND p.completed_on IS NULL))"
     " ORDER BY d.available_at, d.seq LIMIT $2"
     " FOR UPDATE OF d SKIP LOCKED), "
     "claimed AS ("
     " UPDATE @extschema@.outbox_deliveries d SET"
     " status = 'active', attempts = d.attempts + 1, started_on = statement_timestamp(),"
     " available_at = statement_timestamp() + make_interval(secs => $3),"
     " lease_token = (SELECT nextval('@extschema@.outbox_lease_token_seq'))"
     " WHERE d.subscription = $1 AND d.event_id = ANY (ARRAY(SELECT event_id FROM cand))"
     " RETURNING d.event_id, d.attempts, d.lease_token) "
     "SELECT c.event_id, c.attempts, c.lease_token,"
     " CASE WHEN NOT $4 THEN"
     "  jsonb_build_object('id', e.id, 'type', e.type, 'occurred_at', e.occurred_at, 'payload', e.payload,"
     "   'headers', e.headers, 'ordering_key', e.ordering_key, 'seq', e.seq)::text END,"
     " greatest(e.created_on, e.available_at),"
     " CASE WHEN $4 THEN e.payload::text END, e.type, e.ordering_key,"
     // No headers (NULL) when there are none: the array's subquery was a
     // sixth of the claim's time for 1,000 events without headers.
     " CASE WHEN $4 AND e.headers <> '{}' THEN"
     "  ARRAY(SELECT x.v FROM jsonb_each_text(CASE jsonb_typeof(e.headers) WHEN 'object' THEN e.headers"
     "         ELSE '{}'::jsonb END) AS h(k, v),"
     "        unnest(ARRAY[h.k, h.v]) WITH ORDINALITY AS x(v, o) ORDER BY h.k, x.o) END,"
     " (extract(epoch FROM e.occurred_at) * 1000)::bigint,"
     " e.ordering_key IS NOT NULL"
     " FROM claimed c CROSS JOIN LATERAL ("
     "  SELECT * FROM @extschema@.outbox_events e WHERE e.id = c.event_id OFFSET 0) e",
     4, {TEXTOID, INT4OID, FLOAT8OID, BOOLOID}, PlanChoice::GenericDeliveries},

    // Deliveries acknowledged: ($1[i], $2[i]) with status code $4[i], each if
    // its lease $3[i] still holds it. Returns those settled. Generic: a
    // lookup by primary key per element.
    {Stmt::SinkDelivered, "sink delivered",
     "UPDATE @extschema@.outbox_deliveries d SET"
     " status = 'completed', completed_on = statement_timestamp(), last_status = m.code, lease_token = NULL"
     " FROM unnest($1::uuid[], $2::text[], $3::int8[], $4::int4[]) AS m(id, sub, token, code)"
     " WHERE d.event_id = m.id AND d.subscription = m.sub AND d.lease_token = m.token AND d.status = 'active'"
     " RETURNING d.event_id, d.subscription",
     4, {UUIDARRAYOID, TEXTARRAYOID, INT8ARRAYOID, INT4ARRAYOID}, PlanChoice::GenericDeliveries},

    // A failed attempt (already counted), if lease $3 still holds it: $4
    // status code (NULL: no answer), $5 error, $6 new status, $7 due again
    // (a retry's time); $8 uncharge it (not the delivery's failure: the
    // endpoint was disabled).
    {Stmt::SinkFailed, "sink failed",
     "UPDATE @extschema@.outbox_deliveries d SET"
     " status = $6::@extschema@.outbox_status, last_status = $4, last_error = $5,"
     " available_at = $7, next_retry_at = CASE WHEN $6 = 'created' THEN $7 END, lease_token = NULL,"
     " attempts = d.attempts - CASE WHEN $8 THEN 1 ELSE 0 END"
     " WHERE d.event_id = $1 AND d.subscription = $2 AND d.lease_token = $3 AND d.status = 'active'"
     " RETURNING d.event_id",
     8, {UUIDOID, TEXTOID, INT8OID, INT4OID, TEXTOID, TEXTOID, TIMESTAMPTZOID, BOOLOID},
     PlanChoice::Custom},

    // An attempt's outcome for its endpoint $1: $2 success; $3 error; $4
    // outbox.webhook_breaker_failures; $5 outbox.webhook_disable_after (s);
    // $6 gone (a 410: disabled at once). Failures in a row open the breaker
    // for a cool-down doubling from 5 s to 10 min.
    {Stmt::SinkEndpointResult, "sink endpoint result",
     "UPDATE @extschema@.outbox_endpoints e SET"
     " consecutive_failures = CASE WHEN $2 THEN 0 ELSE e.consecutive_failures + 1 END,"
     " failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(e.failing_since, statement_timestamp()) END,"
     " breaker_open_until = CASE WHEN $2 THEN NULL"
     "   WHEN e.consecutive_failures + 1 >= $4 THEN statement_timestamp()"
     "        + make_interval(secs => least(600, 5 * power(2, least(e.consecutive_failures + 1 - $4, 10))))"
     "   ELSE e.breaker_open_until END,"
     " last_success_at = CASE WHEN $2 THEN statement_timestamp() ELSE e.last_success_at END,"
     " last_error = CASE WHEN $2 THEN e.last_error ELSE $3 END,"
     " last_error_at = CASE WHEN $2 THEN e.last_error_at ELSE statement_timestamp() END,"
     " state = CASE WHEN e.state <> 'enabled' OR $2 THEN e.state"
     "   WHEN $6 OR e.failing_since < statement_timestamp() - make_interval(secs => $5) THEN 'disabled'"
     "   ELSE e.state END,"
     " disabled_reason = CASE WHEN e.state <> 'enabled' OR $2 THEN e.disabled_reason"
     "   WHEN $6 THEN 'the endpoint answered 410 Gone'"
     "   WHEN e.failing_since < statement_timestamp() - make_interval(secs => $5)"
     "     THEN format('failing since %s without a success', e.failing_since)"
     "   ELSE e.disabled_reason END,"
     " disabled_at = CASE WHEN e.state <> 'enabled' OR $2 THEN e.disabled_at"
     "   WHEN $6 OR e.failing_since < statement_timestamp() - make_interval(secs => $5) THEN statement_timestamp()"
     "   ELSE e.disabled_at END"
     " WHERE e.name = $1"
     // just_disabled: by this statement (its subquery sees the row as it was before).
     " RETURNING e.state, e.disabled_reason,"
     "  e.state = 'disabled' AND (SELECT o.state FROM @extschema@.outbox_endpoints o WHERE o.name = e.name) = 'enabled'",
     6, {TEXTOID, BOOLOID, TEXTOID, INT4OID, FLOAT8OID, BOOLOID}, PlanChoice::Default},

    // Leases of the subscriptions $2 that ran out (or, $3, all of them: a
    // sink worker starting has none in flight): the attempt was counted at
    // claim; due again at once, failed once out of attempts ($1 max_retries).
    {Stmt::SinkReclaim, "sink reclaim",
     "UPDATE @extschema@.outbox_deliveries d SET"
     " status = CASE WHEN d.attempts >= 1 + $1 THEN 'failed' ELSE 'created' END::@extschema@.outbox_status,"
     " available_at = statement_timestamp(), lease_token = NULL,"
     " last_error = 'the attempt was not settled: the sink worker ended, or its lease ran out'"
     " WHERE d.status = 'active' AND d.subscription = ANY ($2)"
     "   AND (d.available_at <= statement_timestamp() OR $3)"
     " RETURNING d.status = 'failed', d.subscription",
     3, {INT4OID, TEXTARRAYOID, BOOLOID}, PlanChoice::Custom},

    // When the next delivery of the subscriptions $1 becomes due.
    {Stmt::SinkNextDue, "sink next due",
     "SELECT min(d.available_at) FROM @extschema@.outbox_deliveries d"
     " WHERE d.subscription = ANY ($1) AND d.status = 'created' AND d.available_at > statement_timestamp()",
     1, {TEXTARRAYOID}, PlanChoice::Custom},

    // The sink worker's archive: _outbox_archive_settled($1) (sql/outbox.sql,
    // which says why each step is as it is) as two plain statements with one
    // generic plan each, not a plpgsql function planned for its arguments at
    // every call. Keep the two the same. The lock first, in id order; the
    // archive then takes a new snapshot (READ COMMITTED), in which another
    // transaction that settled the event's other deliveries has committed.
    {Stmt::SinkArchiveLock, "sink archive lock",
     "SELECT 1 FROM @extschema@.outbox_events e WHERE e.id = ANY ($1) ORDER BY e.id FOR UPDATE",
     1, {UUIDARRAYOID}, PlanChoice::Generic},

    // Each table reached through its primary key, whatever the estimates.
    {Stmt::SinkArchive, "sink archive",
     "WITH settled AS ("
     " SELECT e.id FROM @extschema@.outbox_events e"
     "  WHERE e.id = ANY ($1) AND e.dispatched_at IS NOT NULL"
     "    AND NOT EXISTS (SELECT FROM @extschema@.outbox_deliveries d"
     "                     WHERE d.event_id = e.id AND d.completed_on IS NULL OFFSET 0)), "
     "outcomes AS ("
     " DELETE FROM @extschema@.outbox_deliveries d"
     "  WHERE d.event_id = ANY (ARRAY(SELECT s.id FROM settled s)) RETURNING d.*), "
     "gone AS ("
     " DELETE FROM @extschema@.outbox_events e"
     "  WHERE e.id = ANY (ARRAY(SELECT s.id FROM settled s)) RETURNING e.*), "
     "per_event AS ("
     " SELECT o.event_id AS id, bool_and(o.status = 'completed') AS ok,"
     "  max(o.attempts - CASE WHEN o.status = 'completed' THEN 1 ELSE 0 END) AS failures,"
     "  (array_agg(o.last_error ORDER BY o.completed_on DESC) FILTER (WHERE o.last_error IS NOT NULL))[1]"
     "    AS last_error,"
     "  jsonb_object_agg(o.subscription, jsonb_strip_nulls(jsonb_build_object("
     "   'status', o.status, 'attempts', o.attempts, 'completed_on', o.completed_on,"
     "   'last_error', o.last_error, 'last_status', o.last_status))) AS deliveries"
     " FROM outcomes o GROUP BY o.event_id) "
     "INSERT INTO @extschema@.outbox_events_archive"
     " (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,"
     "  retry_count, last_error, started_on, completed_on, lease_owner, deliveries) "
     "SELECT g.id, g.seq, g.type, g.payload, g.headers, g.ordering_key,"
     " CASE WHEN coalesce(p.ok, true) THEN 'completed' ELSE 'failed' END::@extschema@.outbox_status,"
     " g.occurred_at, g.created_on, g.retry_count + coalesce(p.failures, 0), coalesce(p.last_error, g.last_error),"
     " g.dispatched_at, statement_timestamp(), 'outbox relay', coalesce(p.deliveries, '{}'::jsonb)"
     " FROM gone g LEFT JOIN per_event p ON p.id = g.id",
     1, {UUIDARRAYOID}, PlanChoice::GenericDeliveries},

    // Events handed over whose deliveries are all settled but which are
    // still in outbox_events: settled by transactions that could not see each
    // other (an operator's, in REPEATABLE READ), or whose last delivery went
    // with its subscription. Moved to the archive, at most $1 of them.
    {Stmt::SweepSettled, "sweep settled",
     "SELECT @extschema@._outbox_archive_settled(ARRAY("
     " SELECT e.id FROM @extschema@.outbox_events e"
     " WHERE e.status = 'active' AND e.dispatched_at IS NOT NULL"
     "   AND NOT EXISTS (SELECT FROM @extschema@.outbox_deliveries d"
     "                    WHERE d.event_id = e.id AND d.completed_on IS NULL)"
     " LIMIT $1))",
     1, {INT4OID}, PlanChoice::Custom},

    {Stmt::ArchiveSettled, "archive settled",
     "SELECT @extschema@._outbox_archive_settled($1)",
     1, {UUIDARRAYOID}, PlanChoice::Default},

    // Expired leases a claim of this transaction met (and locked), taken
    // back. Returns the position of each event in $2 (from 1), whether it is
    // handed out, its attempt number and its whole row as it is now.
    {Stmt::ReclaimXact, "reclaim xact",
     RECLAIM
     " FROM unnest($2::uuid[]) WITH ORDINALITY AS m(id, ord)"
     " WHERE e.id = m.id AND e.status = 'active' "
     "RETURNING m.ord, e.status = 'created' AS handed_out, e.retry_count + 1 AS attempt, e",
     2, {INT4OID, UUIDARRAYOID}, PlanChoice::Default},

    {Stmt::Heartbeat, "heartbeat",
     "UPDATE @extschema@.outbox_events e SET"
     " keep_alive = statement_timestamp(),"
     " expire_in_seconds = coalesce($3, e.expire_in_seconds) "
     "WHERE " HELD_BY_LEASE " RETURNING e.id, " LEASE_END,
     3, {UUIDARRAYOID, INT8OID, INT4OID}, PlanChoice::Default},

    {Stmt::Complete, "complete",
     COMPLETE(HELD_BY_LEASE, "d.started_on", "d.lease_owner"),
     2, {UUIDARRAYOID, INT8OID}, PlanChoice::Generic},

    // Events held by a claim of this transaction (outbox_claim_xact): the
    // caller checked that they are; they are still created, locked by it.
    {Stmt::CompleteXact, "complete xact",
     COMPLETE("e.id = ANY ($1) AND e.status = 'created'", "$2", "$3"),
     3, {UUIDARRAYOID, TIMESTAMPTZOID, TEXTOID}, PlanChoice::Generic},

    {Stmt::FailLockXact, "fail lock xact",
     "SELECT e.retry_count FROM @extschema@.outbox_events e"
     " WHERE e.id = $1 AND e.status = 'created' FOR UPDATE",
     1, {UUIDOID}, PlanChoice::Default},

    {Stmt::Release, "release",
     "UPDATE @extschema@.outbox_events e SET"
     " status = 'created', available_at = least(e.available_at, statement_timestamp()),"
     " keep_alive = NULL, lease_owner = NULL, lease_token = NULL "
     "WHERE " HELD_BY_LEASE " RETURNING e.id",
     2, {UUIDARRAYOID, INT8OID}, PlanChoice::Default},

    {Stmt::FailLock, "fail lock",
     "SELECT e.retry_count, e.lease_owner FROM @extschema@.outbox_events e"
     " WHERE e.id = $1 AND e.lease_token = $2 AND e.status = 'active' FOR UPDATE",
     2, {UUIDOID, INT8OID}, PlanChoice::Default},

    // $2 is the status as text, cast to outbox_status here.
    {Stmt::Fail, "fail",
     "UPDATE @extschema@.outbox_events e SET"
     " status = $2::@extschema@.outbox_status, retry_count = e.retry_count + 1, last_error = $3,"
     " available_at = $4, next_retry_at = $5,"
     " keep_alive = NULL, lease_token = NULL "
     "WHERE e.id = $1",
     5, {UUIDOID, TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID}, PlanChoice::Default},

    {Stmt::LeaseCheck, "lease check",
     "SELECT e.status::text, e.lease_token FROM @extschema@.outbox_events e WHERE e.id = $1",
     1, {UUIDOID}, PlanChoice::Default},

    {Stmt::ArchiveCheck, "archive check",
     "SELECT x.status::text FROM @extschema@.outbox_events_archive x WHERE x.id = $1"
     " ORDER BY x.completed_on DESC LIMIT 1",
     1, {UUIDOID}, PlanChoice::Default},

    {Stmt::Subscriptions, "subscriptions",
     "SELECT s.name, s.event_type, s.handler::oid, s.owner::oid, s.paused, s.sink <> 'sql' AS external"
     " FROM @extschema@.outbox_subscriptions s ORDER BY s.name",
     0, {}, PlanChoice::Default},

    // Expired leases of consumers that did not come back: counts the attempt,
    // as a claim that reclaims does; past the maximum the event is failed.
    // Rows locked by a live transaction (the relay's own claims) are skipped.
    {Stmt::ReclaimExpired, "reclaim expired",
     "WITH expired AS ("
     " SELECT e.id FROM @extschema@.outbox_events e"
     " WHERE e.status = 'active' @undispatched@ AND e.available_at <= statement_timestamp()"
     "   AND " LEASE_ENDED
     " ORDER BY e.available_at LIMIT $2"
     " FOR UPDATE SKIP LOCKED) "
     RECLAIM
     " WHERE e.id = ANY (ARRAY(SELECT id FROM expired)) "
     "RETURNING e.status = 'failed', e.lease_owner",
     2, {INT4OID, INT4OID}, PlanChoice::Default},

    {Stmt::ArchiveMaintain, "archive maintain",
     "SELECT a FROM @extschema@.outbox_archive_maintain(make_interval(mins => $1)) a",
     1, {INT4OID}, PlanChoice::Default},

    // Events not handed over yet, and deliveries of the SQL subscriptions $1.
    {Stmt::NextDue, "next due",
     "SELECT least("
     " (SELECT min(e.available_at) FROM @extschema@.outbox_events e"
     "   WHERE e.status = ANY ('{created,active}'::@extschema@.outbox_status[])"
     "     AND e.dispatched_at IS NULL AND e.available_at > statement_timestamp()"
     "     AND e.available_at < " NEVER_DUE "),"
     " (SELECT min(d.available_at) FROM @extschema@.outbox_deliveries d"
     "   WHERE d.subscription = ANY ($1::text[]) AND d.status = 'created'"
     "     AND d.available_at > statement_timestamp()))",
     1, {TEXTARRAYOID}, PlanChoice::Custom},

    {Stmt::Subscribe, "subscribe",
     "INSERT INTO @extschema@.outbox_subscriptions (name, event_type, handler, owner)"
     " VALUES ($1, $2, $3::regprocedure, $4::regrole)"
     " ON CONFLICT (name) DO NOTHING RETURNING name",
     4, {TEXTOID, TEXTOID, OIDOID, OIDOID}, PlanChoice::Default},

    // Events a transaction claim held when its session ended (the backend
    // exited: terminated, a FATAL error, the connection lost) count a failed
    // attempt, as an expired lease does; due again at once, failed past the
    // maximum. Rows locked by someone again meanwhile are left alone.
    {Stmt::ChargeAbandoned, "charge abandoned",
     "WITH held AS ("
     " SELECT e.id FROM @extschema@.outbox_events e"
     " WHERE e.id = ANY ($2) AND e.status = 'created'"
     " FOR UPDATE SKIP LOCKED) "
     "UPDATE @extschema@.outbox_events e SET"
     " status = CASE WHEN e.retry_count >= $1 THEN 'failed' ELSE 'created' END::@extschema@.outbox_status,"
     " retry_count = e.retry_count + 1, last_error = $3,"
     " available_at = CASE WHEN e.retry_count >= $1 THEN " NEVER_DUE " ELSE statement_timestamp() END,"
     " next_retry_at = NULL"
     " WHERE e.id = ANY (ARRAY(SELECT id FROM held))"
     " RETURNING e.status = 'failed'",
     3, {INT4OID, UUIDARRAYOID, TEXTOID}, PlanChoice::Default},

    // How long the oldest due event (not handed over, or waiting for a
    // consumer) or due delivery has waited, in seconds; the deliveries of
    // paused subscriptions and paused endpoints wait by an operator's choice
    // and do not count.
    {Stmt::BacklogAge, "backlog age",
     "SELECT extract(epoch FROM statement_timestamp() - least("
     // (An event not handed over is in the claim index, which only a
     // statement that says dispatched_at IS NULL can use: without it, a scan
     // of the table, 60 ms for 200,000 events handed over.)
     " (SELECT min(e.available_at) FROM @extschema@.outbox_events e"
     "   WHERE e.status = 'created' @undispatched@ AND e.available_at <= statement_timestamp()),"
     // Each subscription's oldest due delivery, through the claim index.
     " (SELECT min(x.at) FROM @extschema@.outbox_subscriptions s"
     "   LEFT JOIN @extschema@.outbox_endpoints en ON en.name = s.endpoint"
     "   CROSS JOIN LATERAL (SELECT d.available_at AS at FROM @extschema@.outbox_deliveries d"
     "     WHERE d.subscription = s.name AND d.status = 'created' AND d.available_at <= statement_timestamp()"
     "     ORDER BY d.available_at LIMIT 1) x"
     "   WHERE NOT s.paused AND coalesce(en.state, '') <> 'paused')))::float8",
     0, {}, PlanChoice::Default},

    // Whether an event not handed over is due: one no subscription takes
    // (or an ordering key holds back), there for consumers, or an expired
    // lease. While none is, nothing for consumers can become due or expire
    // unseen by the relay: an event published wakes it at commit, and a time
    // ahead (a delivery time, a retry: available_at) is among those "next
    // due" returns. A leased event is waiting (its available_at is past: a
    // lease does not move it), so the relay looks for its lease's end.
    // The first by available_at, in a subquery (EXISTS would drop its ORDER
    // BY and LIMIT): the claim index's order, so that no estimate makes it a
    // scan of the table, which is mostly events handed over (statistics taken
    // before a backlog was handed over count them as waiting): 67 ms per look
    // for 200,000 of them, once per batch of a drain.
    {Stmt::EventsWaiting, "events waiting",
     "SELECT EXISTS (SELECT FROM (SELECT FROM @extschema@.outbox_events e"
     " WHERE e.status = ANY ('{created,active}'::@extschema@.outbox_status[]) @undispatched@"
     "   AND e.available_at <= statement_timestamp()"
     " ORDER BY e.available_at LIMIT 1) x)",
     0, {}, PlanChoice::Default},
};

#undef CLAIMABLE_HELD_BY
#undef CLAIMABLE
#undef DISPATCHABLE
#undef CLAIM_TOKEN
#undef EXHAUSTED
#undef LEASE_EXPIRED
#undef RECLAIM
#undef LEASE_END
#undef LEASE_ENDED
#undef NEVER_DUE
#undef COMPLETE
#undef HELD_BY_LEASE

static_assert(sizeof kStatements / sizeof kStatements[0] == kStatementCount, "one row per statement");

// Each row in its place, with as many argument types as its text has
// parameters; the claims agree on their common parameters.
constexpr bool
table_is_sound()
{
    for (int i = 0; i < kStatementCount; i++) {
        const Statement &s = kStatements[i];
        if (static_cast<int>(s.id) != i || s.nargs != highest_parameter(s.text) || s.nargs > kMaxStatementArgs)
            return false;
        for (int a = 0; a < kMaxStatementArgs; a++)
            if ((a < s.nargs) != (s.argtypes[a] != InvalidOid))
                return false;
    }
    for (Stmt claim : {Stmt::Claim, Stmt::ClaimXact, Stmt::DispatchClaim})
        for (int a = 0; a < kStatements[static_cast<int>(claim)].nargs && a < (claim == Stmt::DispatchClaim ? 4 : 5);
             a++)
            if (kStatements[static_cast<int>(claim)].argtypes[a] != kClaimArgs[a])
                return false;
    return true;
}
static_assert(table_is_sound(), "a statement row is out of place, or its argument types do not match its text");

} // namespace

const Statement &
statement(Stmt which)
{
    int i = static_cast<int>(which);
    if (i < 0 || i >= kStatementCount)
        elog(ERROR, "outbox: unknown statement %d", i);
    return kStatements[i];
}

} // namespace outbox
