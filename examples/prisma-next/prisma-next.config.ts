// `prisma-next contract emit` (offline): writes generated/contract.json and
// generated/contract.d.ts from contract.ts; both are committed. examples/run.sh
// emits again into PRISMA_NEXT_EMIT_DIR and checks that the committed files
// are up to date.
import { defineConfig } from '@prisma-next/postgres/config';

export default defineConfig({
  contract: './contract.ts',
  outputPath: process.env.PRISMA_NEXT_EMIT_DIR ?? './generated',
});
