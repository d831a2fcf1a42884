// A runnable example: place an order and announce it, in one Kysely transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples npx tsx place-order.ts SKU-1 2 alice
import type { Kysely } from 'kysely';
import { newKysely, type Database } from './db.ts';
import { publish } from './outbox.ts';

export async function placeOrder(db: Kysely<Database>, order: { sku: string; quantity: number; customer: string },
                                 eventType = 'order.placed') {
  return db.transaction().execute(async (trx) => {
    const { id: orderId } = await trx.insertInto('orders').values(order).returning('id').executeTakeFirstOrThrow();
    const eventId = await publish(trx, eventType, { orderId, ...order }, { orderingKey: `customer:${order.customer}` });
    return { orderId, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const db = newKysely();
  try {
    console.log(await placeOrder(db, { sku, quantity: Number(quantity), customer }));
  } finally {
    await db.destroy();
  }
}
