// The Prisma Next contract, authored in TypeScript and handed to the runtime
// as is (the no-emit workflow: no `prisma-next contract emit` step).
//
// Order is the business table. OutboxEvent maps the extension's table for
// reading: write it only through outbox_publish and the other functions, and
// never let `prisma-next db init/update` or migrations manage it (it belongs to
// the extension). Its status column is the enum outbox_status, read as text.
import { defineContract } from '@prisma-next/postgres/contract-builder';

export const contract = defineContract({}, ({ field, model }) => ({
  models: {
    Order: model('Order', {
      fields: {
        id: field.bigint().defaultSql('autoincrement()').id(), // GENERATED ALWAYS AS IDENTITY
        sku: field.text(),
        quantity: field.int(),
        customer: field.text(),
        createdAt: field.temporal.createdAt().column('created_at'),
      },
    }).sql({ table: 'orders' }),
    OutboxEvent: model('OutboxEvent', {
      fields: {
        id: field.uuidNative().id(),
        type: field.text(),
        payload: field.json(),
        orderingKey: field.text().optional().column('ordering_key'),
        status: field.text(),
      },
    }).sql({ table: 'outbox_events' }),
  },
}));
