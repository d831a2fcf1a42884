// Publishing outbox events with node-postgres (pg): the few lines to copy.
//
// outbox_publish() joins whatever transaction its connection is in, so the
// event commits or rolls back with the business rows written on the same
// client. Publish with the client of the transaction, never with the pool.

/**
 * Publish an event in the transaction `client` is in.
 * payload: any JSON value, or a JSON text (sent as is: keeps numbers beyond
 * 2^53 exact, which a JS number cannot hold).
 */
export async function publish(client, type, payload, options = {}) {
  const { orderingKey = null, headers = null, deliverAt = null, delay = null, id = null } = options;
  const { rows } = await client.query(
    `SELECT outbox_publish($1, $2::jsonb, ordering_key => $3, headers => $4::jsonb,
                           deliver_at => $5::timestamptz, delay => $6::interval, id => $7::uuid) AS id`,
    [type, toJsonText(payload), orderingKey, headers === null ? null : toJsonText(headers), deliverAt, delay, id],
  );
  return rows[0].id;
}

/** Run fn(client) in a transaction on one client of the pool: BEGIN, COMMIT, or ROLLBACK if fn throws. */
export async function withTransaction(pool, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

// pg would turn a JS array parameter into a PostgreSQL array: send JSON text.
function toJsonText(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}
