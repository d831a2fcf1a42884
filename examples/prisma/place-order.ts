// A runnable example: place an order and announce it, in one Prisma interactive transaction.
//
//   DATABASE_URL=postgresql://app:secret@127.0.0.1:6432/examples npx tsx place-order.ts SKU-1 2 alice
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/prisma/client.ts';
import { publish } from './outbox.ts';

export function newPrismaClient(connectionString = process.env.DATABASE_URL) {
  // Through PgBouncer in transaction pooling: node-postgres uses unnamed
  // prepared statements, which need nothing from the session. An interactive
  // transaction holds one server connection from BEGIN to COMMIT; when more
  // run at once than PgBouncer has server connections, they queue there:
  // give them longer than the 2 s default to start.
  return new PrismaClient({
    adapter: new PrismaPg({ connectionString }),
    transactionOptions: { maxWait: 10_000, timeout: 10_000 },
  });
}

export async function placeOrder(prisma: PrismaClient, order: { sku: string; quantity: number; customer: string },
                                 eventType = 'order.placed') {
  return prisma.$transaction(async (tx) => {
    const created = await tx.order.create({ data: order });
    const eventId = await publish(tx, eventType, { orderId: created.id.toString(), ...order },
                                  { orderingKey: `customer:${order.customer}` });
    return { orderId: created.id, eventId };
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [sku = 'SKU-1', quantity = '1', customer = 'alice'] = process.argv.slice(2);
  const prisma = newPrismaClient();
  try {
    console.log(await placeOrder(prisma, { sku, quantity: Number(quantity), customer }));
  } finally {
    await prisma.$disconnect();
  }
}
