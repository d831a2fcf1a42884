// A runnable example: place an order and announce it, in one Prisma Next transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples npx tsx place-order.ts SKU-1 2 alice
import { newDb, type Db } from './db.ts';
import { publishForOrder } from './outbox.ts';

export async function placeOrder(db: Db, order: { sku: string; quantity: number; customer: string },
                                 eventType = 'order.placed') {
  return db.transaction(async (tx) => {
    const created = await tx.orm.public.Order.create(order);
    const eventId = await publishForOrder(tx, created.id, eventType, { orderId: created.id, ...order },
                                          { orderingKey: `customer:${order.customer}` });
    return { orderId: created.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const db = newDb();
  try {
    console.log(await placeOrder(db, { sku, quantity: Number(quantity), customer }));
  } finally {
    await db.close();
  }
}
