// Text of the statements behind the C++ fast paths (pure C++, see statements.hpp).
#include "outbox/pure.hpp"
#include "outbox/statements.hpp"

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace outbox {
namespace {

struct Template {
    const char *name;
    const char *text;
};

// Which events a claim takes, shared by "claim", "claim xact" and "relay claim" ({claimable}
// in them): due events, oldest first, never one whose ordering key has an
// earlier event still in the outbox (pending, in flight or failed), locked
// FOR UPDATE SKIP LOCKED. {types}, {skip_types} and {held} are the numbers of
// the parameters with the LIKE patterns of the types to take (NULL: all), of
// those to leave alone (NULL: none), and the ids to skip (NULL: none).
constexpr const char *kClaimable =
    " WHERE e.status = ANY ('{{created,active}}'::{s}.outbox_status[])"
    "   AND e.available_at <= statement_timestamp()"
    "   AND (${types}::text[] IS NULL OR e.type LIKE ANY (${types}::text[]))"
    "   AND (${skip_types}::text[] IS NULL OR NOT e.type LIKE ANY (${skip_types}::text[]))"
    "   AND (${held}::uuid[] IS NULL OR e.id <> ALL (${held}::uuid[]))"
    "   AND (e.ordering_key IS NULL OR NOT EXISTS ("
    "        SELECT FROM {s}.outbox_events p"
    "         WHERE p.ordering_key = e.ordering_key AND p.seq < e.seq))"
    " ORDER BY e.available_at, e.seq"
    " LIMIT $1"
    " FOR UPDATE OF e SKIP LOCKED";

// Why a lease ended, for last_error ({lease_expired}).
constexpr const char *kLeaseExpired =
    "format('lease expired: not completed within %s s by %s (lease token %s)',"
    " e.expire_in_seconds, coalesce(e.lease_owner, 'an unnamed consumer'), e.lease_token)";

// An expired lease taken back ({reclaim}, of "reclaim xact" and "reclaim
// expired"; $1 is outbox.max_retries): the attempt counts; past the maximum
// the event becomes failed, else it is due again at once.
constexpr const char *kReclaim =
    "UPDATE {s}.outbox_events e SET"
    " status = CASE WHEN e.retry_count >= $1 THEN 'failed' ELSE 'created' END::{s}.outbox_status,"
    " retry_count = e.retry_count + 1, last_error = {lease_expired},"
    " available_at = statement_timestamp(), next_retry_at = NULL, keep_alive = NULL, lease_token = NULL";

// {s} is the quoted schema of the extension.
constexpr Template kTemplates[kStatementCount] = {
    {"publish",
     "INSERT INTO {s}.outbox_events (id, type, payload, headers, ordering_key, available_at) "
     "VALUES ($1, $2, $3, $4, $5, coalesce($6, now()))"},

    {"publish id check",
     "SELECT CASE WHEN EXISTS (SELECT FROM {s}.outbox_events WHERE id = $1) THEN 1 "
     "WHEN EXISTS (SELECT FROM {s}.outbox_events_archive WHERE id = $1) THEN 2 ELSE 0 END"},

    // The claimable events ({claimable}) get a lease. An active event whose
    // lease expired is reclaimed: that counts as a failed attempt, and one
    // past the maximum becomes failed instead of being handed out.
    // The UPDATE returns rows in table order: the outer SELECT hands them out
    // in claim order (earliest due first, then publish order).
    {"claim",
     "WITH cand AS ("
     " SELECT e.id, e.available_at AS due, e.seq FROM {s}.outbox_events e"
     "{claimable}), "
     "claimed AS ("
     "UPDATE {s}.outbox_events e SET"
     " status = CASE WHEN {x} THEN 'failed' ELSE 'active' END::{s}.outbox_status,"
     " retry_count = e.retry_count + CASE WHEN e.status = 'active' THEN 1 ELSE 0 END,"
     " last_error = CASE WHEN e.status = 'active'"
     "   THEN {lease_expired}"
     "   ELSE e.last_error END,"
     " next_retry_at = NULL,"
     // An exhausted event keeps the record of its last lease; the others get a new one.
     " started_on = CASE WHEN {x} THEN e.started_on ELSE statement_timestamp() END,"
     " keep_alive = CASE WHEN {x} THEN e.keep_alive ELSE statement_timestamp() END,"
     " expire_in_seconds = CASE WHEN {x} THEN e.expire_in_seconds ELSE $2 END,"
     " available_at = CASE WHEN {x} THEN statement_timestamp()"
     "                ELSE statement_timestamp() + make_interval(secs => $2) END,"
     " lease_owner = CASE WHEN {x} THEN e.lease_owner ELSE $3 END,"
     " lease_token = CASE WHEN {x} THEN NULL"
     "               ELSE coalesce($6, (SELECT nextval('{s}.outbox_lease_token_seq'))) END"
     " WHERE e.id = ANY (ARRAY(SELECT id FROM cand)) "
     "RETURNING e.id, e.type, e.payload, e.headers, e.ordering_key, e.occurred_at,"
     " e.retry_count + 1 AS attempt, e.lease_token, e.available_at, e.status = 'active' AS handed_out) "
     "SELECT claimed.* FROM claimed JOIN cand ON cand.id = claimed.id ORDER BY cand.due, cand.seq"},

    // outbox_claim_xact(): the claimable events, held by the row locks of
    // the caller's transaction instead of a lease. A plain locking SELECT:
    // nothing is written. Events this transaction already claimed are
    // skipped ($5): its own row locks do not make SKIP LOCKED skip them. The
    // token is drawn only when something is handed out. An active event met
    // here is one whose lease expired (expired = true): the caller reclaims
    // those with "reclaim xact" before handing them out.
    {"claim xact",
     "SELECT e.id, e.type, e.payload, e.headers, e.ordering_key, e.occurred_at,"
     " e.retry_count + 1 AS attempt,"
     " coalesce($4, (SELECT nextval('{s}.outbox_lease_token_seq'))) AS lease_token,"
     " NULL::timestamptz AS lease_expires_at, e.status = 'active' AS expired"
     " FROM {s}.outbox_events e"
     "{claimable}"},

    // The relay's claim: as "claim xact", returning the whole row, which is
    // the handlers' argument.
    {"relay claim",
     "SELECT e.id, e.type, e.status = 'active' AS expired,"
     " coalesce($4, (SELECT nextval('{s}.outbox_lease_token_seq'))) AS lease_token, e"
     " FROM {s}.outbox_events e"
     "{claimable}"},

    // Expired leases a claim of this transaction met (and locked), taken
    // back ({reclaim}). Returns the position of each event in $2 (from 1),
    // whether it is handed out, its attempt number and its whole row as it
    // is now.
    {"reclaim xact",
     "{reclaim}"
     " FROM unnest($2::uuid[]) WITH ORDINALITY AS m(id, ord)"
     " WHERE e.id = m.id AND e.status = 'active' "
     "RETURNING m.ord, e.status = 'created' AS handed_out, e.retry_count + 1 AS attempt, e"},

    {"heartbeat",
     "UPDATE {s}.outbox_events e SET"
     " keep_alive = statement_timestamp(),"
     " expire_in_seconds = coalesce($3, e.expire_in_seconds),"
     " available_at = statement_timestamp() + make_interval(secs => coalesce($3, e.expire_in_seconds)) "
     "WHERE e.id = ANY ($1) AND e.lease_token = $2 AND e.status = 'active' "
     "RETURNING e.id, e.available_at"},

    {"complete",
     "WITH done AS ("
     " DELETE FROM {s}.outbox_events e"
     " WHERE e.id = ANY ($1) AND e.lease_token = $2 AND e.status = 'active'"
     " RETURNING e.*) "
     "INSERT INTO {s}.outbox_events_archive"
     " (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,"
     "  retry_count, last_error, started_on, completed_on, lease_owner) "
     "SELECT d.id, d.seq, d.type, d.payload, d.headers, d.ordering_key, 'completed', d.occurred_at,"
     " d.created_on, d.retry_count, d.last_error, d.started_on, statement_timestamp(), d.lease_owner"
     " FROM done d "
     "RETURNING id"},

    // Events held by a claim of this transaction (outbox_claim_xact): the
    // caller checked that they are; they are still created, locked by it.
    {"complete xact",
     "WITH done AS ("
     " DELETE FROM {s}.outbox_events e"
     " WHERE e.id = ANY ($1) AND e.status = 'created'"
     " RETURNING e.*) "
     "INSERT INTO {s}.outbox_events_archive"
     " (id, seq, type, payload, headers, ordering_key, status, occurred_at, created_on,"
     "  retry_count, last_error, started_on, completed_on, lease_owner) "
     "SELECT d.id, d.seq, d.type, d.payload, d.headers, d.ordering_key, 'completed', d.occurred_at,"
     " d.created_on, d.retry_count, d.last_error, $2, statement_timestamp(), $3"
     " FROM done d "
     "RETURNING id"},

    {"fail lock xact",
     "SELECT e.retry_count FROM {s}.outbox_events e"
     " WHERE e.id = $1 AND e.status = 'created' FOR UPDATE"},

    {"release",
     "UPDATE {s}.outbox_events e SET"
     " status = 'created', available_at = statement_timestamp(),"
     " keep_alive = NULL, lease_owner = NULL, lease_token = NULL "
     "WHERE e.id = ANY ($1) AND e.lease_token = $2 AND e.status = 'active' "
     "RETURNING e.id"},

    {"fail lock",
     "SELECT e.retry_count FROM {s}.outbox_events e"
     " WHERE e.id = $1 AND e.lease_token = $2 AND e.status = 'active' FOR UPDATE"},

    {"fail",
     "UPDATE {s}.outbox_events e SET"
     " status = $2::{s}.outbox_status, retry_count = e.retry_count + 1, last_error = $3,"
     " available_at = $4, next_retry_at = $5,"
     " keep_alive = NULL, lease_token = NULL "
     "WHERE e.id = $1"},

    {"lease check",
     "SELECT e.status::text, e.lease_token FROM {s}.outbox_events e WHERE e.id = $1"},

    {"archive check",
     "SELECT x.status::text FROM {s}.outbox_events_archive x WHERE x.id = $1"
     " ORDER BY x.completed_on DESC LIMIT 1"},

    {"subscriptions",
     "SELECT s.name, s.event_type, s.handler::oid, s.owner::oid, s.paused"
     " FROM {s}.outbox_subscriptions s ORDER BY s.name"},

    // Expired leases of consumers that did not come back: counts the attempt,
    // as a claim that reclaims does; past the maximum the event is failed.
    // Rows locked by a live transaction (the relay's own claims) are skipped.
    {"reclaim expired",
     "WITH expired AS ("
     " SELECT e.id FROM {s}.outbox_events e"
     " WHERE e.status = 'active' AND e.available_at <= statement_timestamp()"
     " ORDER BY e.available_at LIMIT $2"
     " FOR UPDATE SKIP LOCKED) "
     "{reclaim}"
     " WHERE e.id = ANY (ARRAY(SELECT id FROM expired)) "
     "RETURNING e.status = 'failed'"},

    {"archive maintain",
     "SELECT a FROM {s}.outbox_archive_maintain(make_interval(mins => $1)) a"},

    {"next due",
     "SELECT min(e.available_at) FROM {s}.outbox_events e"
     " WHERE e.status = ANY ('{{created,active}}'::{s}.outbox_status[])"
     "   AND e.available_at > statement_timestamp()"},

    {"subscribe",
     "INSERT INTO {s}.outbox_subscriptions (name, event_type, handler, owner)"
     " VALUES ($1, $2, $3::regprocedure, $4::regrole)"
     " ON CONFLICT (name) DO NOTHING RETURNING name"},

    // Events a transaction claim held when its session ended (the backend
    // exited: terminated, a FATAL error, the connection lost) count a failed
    // attempt, as an expired lease does; due again at once, failed past the
    // maximum. Rows locked by someone again meanwhile are left alone.
    {"charge abandoned",
     "WITH held AS ("
     " SELECT e.id FROM {s}.outbox_events e"
     " WHERE e.id = ANY ($2) AND e.status = 'created'"
     " FOR UPDATE SKIP LOCKED) "
     "UPDATE {s}.outbox_events e SET"
     " status = CASE WHEN e.retry_count >= $1 THEN 'failed' ELSE 'created' END::{s}.outbox_status,"
     " retry_count = e.retry_count + 1, last_error = $3,"
     " available_at = statement_timestamp(), next_retry_at = NULL"
     " WHERE e.id = ANY (ARRAY(SELECT id FROM held))"},
};

// One template per statement: too many fail to compile; too few leave the
// last ones empty, which this catches.
static_assert(kTemplates[kStatementCount - 1].name != nullptr, "a statement has no template");

} // namespace

std::size_t
render_statement(Stmt which, const char *schema_quoted, char *out, std::size_t cap)
{
    const Template &t = kTemplates[static_cast<int>(which)];
    if (cap == 0)
        throw std::length_error("no room for a statement");
    // {claimable}: the parameter numbers differ between the two claims.
    bool xact = which == Stmt::ClaimXact || which == Stmt::RelayClaim;
    std::string claimable = fmt::format(fmt::runtime(kClaimable), fmt::arg("s", schema_quoted),
                                        fmt::arg("types", xact ? 2 : 4), fmt::arg("skip_types", xact ? 3 : 7),
                                        fmt::arg("held", xact ? 5 : 8));
    // {x}: in the claim, "this reclaimed event has no attempt left".
    std::string reclaim = fmt::format(fmt::runtime(kReclaim), fmt::arg("s", schema_quoted),
                                      fmt::arg("lease_expired", kLeaseExpired));
    auto res = fmt::format_to_n(out, cap - 1, fmt::runtime(t.text), fmt::arg("s", schema_quoted),
                                fmt::arg("x", "(e.status = 'active' AND e.retry_count >= $5)"),
                                fmt::arg("claimable", claimable), fmt::arg("reclaim", reclaim),
                                fmt::arg("lease_expired", kLeaseExpired));
    if (res.size >= cap)
        throw std::length_error(fmt::format("statement \"{}\" does not fit in {} bytes", t.name, cap));
    out[res.size] = '\0';
    return res.size;
}

const char *
statement_name(Stmt which) noexcept
{
    int i = static_cast<int>(which);
    return (i >= 0 && i < kStatementCount) ? kTemplates[i].name : "?";
}

} // namespace outbox
