import { defineConfig } from 'prisma/config';

export default defineConfig({
  schema: 'prisma/schema.prisma',
  // Used by migrate / db pull only (not by generate, not by the client).
  datasource: { url: process.env.DATABASE_URL },
  experimental: { externalTables: true },
  // The outbox tables and their enum belong to the extension: Prisma Migrate must leave them alone.
  tables: { external: ['public.outbox_events', 'public.outbox_events_archive'] },
  enums: { external: ['public.outbox_status'] },
});
