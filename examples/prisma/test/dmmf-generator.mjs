// A Prisma generator that writes the data model as Prisma understands it (the
// DMMF) to a JSON file: the schema test compares it with the live database.
import { writeFileSync } from 'node:fs';
import gh from '@prisma/generator-helper';

gh.generatorHandler({
  onManifest: () => ({ prettyName: 'DMMF (for the schema test)', defaultOutput: './dmmf.json' }),
  onGenerate: async (options) => {
    writeFileSync(options.generator.output.value, JSON.stringify(options.dmmf.datamodel, null, 2));
  },
});
