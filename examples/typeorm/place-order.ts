// A runnable example: place an order and announce it, in one TypeORM transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples npx tsx place-order.ts SKU-1 2 alice
import { DataSource } from 'typeorm';
import { Delivery, Order, OutboxEvent, OutboxEventArchive } from './entities.ts';
import { publish } from './outbox.ts';

export function newDataSource(url = process.env.DATABASE_URL) {
  // Through PgBouncer in transaction pooling: the pg driver sends unnamed
  // prepared statements; no synchronize, no migrations run at start.
  return new DataSource({
    type: 'postgres',
    url,
    entities: [Order, OutboxEvent, OutboxEventArchive, Delivery],
    synchronize: false,
    migrationsRun: false,
    poolSize: 4,
  });
}

export async function placeOrder(dataSource: DataSource, order: { sku: string; quantity: number; customer: string },
                                 eventType = 'order.placed') {
  return dataSource.transaction(async (manager) => {
    const saved = await manager.save(manager.create(Order, order));
    const eventId = await publish(manager, eventType, { orderId: saved.id, ...order },
                                  { orderingKey: `customer:${order.customer}` });
    return { orderId: saved.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const dataSource = await newDataSource().initialize();
  try {
    console.log(await placeOrder(dataSource, { sku, quantity: Number(quantity), customer }));
  } finally {
    await dataSource.destroy();
  }
}
