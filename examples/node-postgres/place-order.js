// A runnable example: place an order and announce it, in one transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples node place-order.js SKU-1 2 alice
import pg from 'pg';
import { publish, withTransaction } from './outbox.js';

export async function placeOrder(pool, { sku, quantity, customer, eventType = 'order.placed' }) {
  return withTransaction(pool, async (client) => {
    const { rows: [order] } = await client.query(
      'INSERT INTO orders (sku, quantity, customer) VALUES ($1, $2, $3) RETURNING id',
      [sku, quantity, customer],
    );
    const eventId = await publish(client, eventType, { orderId: order.id, sku, quantity, customer },
                                  { orderingKey: `customer:${customer}` });
    return { orderId: order.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
  try {
    console.log(await placeOrder(pool, { sku, quantity: Number(quantity), customer }));
  } finally {
    await pool.end();
  }
}
