// Publishing outbox events with Knex: the few lines to copy.
//
// Inside knex.transaction(async (trx) => ...), call publish(trx, ...): trx runs
// every query on the transaction's one connection, so the event commits or
// rolls back with the rows written through trx. Called with `knex` instead of
// `trx`, it runs on another pooled connection outside your transaction
// (outbox.require_transaction warns, or refuses when set to error).

/**
 * Publish an event in the transaction `trx` is in; returns its id.
 * payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond
 * 2^53 exact, which a JS number cannot hold).
 */
export async function publish(trx, type, payload, options = {}) {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  // Knex binds `?` positionally; the casts follow the placeholders.
  const { rows } = await trx.raw(
    `SELECT outbox_publish(?, ?::jsonb, ordering_key => ?, headers => ?::jsonb,
                           deliver_at => ?::timestamptz, delay => ?::interval, id => ?::uuid) AS id`,
    [type, toJsonText(payload), orderingKey, headers === null ? null : toJsonText(headers), deliverAt, delay, id],
  );
  return rows[0].id;
}

// pg would turn a JS array into a PostgreSQL array: send JSON text.
function toJsonText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
