// A runnable example: place an order and announce it, in one Knex transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples node place-order.js SKU-1 2 alice
import knexFactory from 'knex';
import { publish } from './outbox.js';

export function newKnex(connection = process.env.DATABASE_URL) {
  // Through PgBouncer in transaction pooling: pg sends unnamed prepared
  // statements, and Knex keeps no session state. min: 0 so that idle
  // connections are not held open for nothing.
  return knexFactory({ client: 'pg', connection, pool: { min: 0, max: 4 } });
}

export async function placeOrder(knex, order, eventType = 'order.placed') {
  return knex.transaction(async (trx) => {
    const [row] = await trx('orders').insert(order).returning('id');
    const eventId = await publish(trx, eventType, { orderId: row.id, ...order },
                                  { orderingKey: `customer:${order.customer}` });
    return { orderId: row.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const knex = newKnex();
  try {
    console.log(await placeOrder(knex, { sku, quantity: Number(quantity), customer }));
  } finally {
    await knex.destroy();
  }
}
