// A runnable example: place an order and announce it, in one Drizzle transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples npx tsx place-order.ts SKU-1 2 alice
import { drizzle } from 'drizzle-orm/node-postgres';
import pg from 'pg';
import { publish, type Executor } from './outbox.ts';
import { orders } from './schema.ts';

export async function placeOrder(db: Executor, order: { sku: string; quantity: number; customer: string },
                                 eventType = 'order.placed') {
  return db.transaction(async (tx) => {
    const [row] = await tx.insert(orders).values(order).returning({ id: orders.id });
    const eventId = await publish(tx, eventType, { orderId: row.id, ...order },
                                  { orderingKey: `customer:${order.customer}` });
    return { orderId: row.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL });
  try {
    console.log(await placeOrder(drizzle(pool), { sku, quantity: Number(quantity), customer }));
  } finally {
    await pool.end();
  }
}
