/**
 * Writes config/schema.json from the TypeBox schema in src/config/schema.ts (`npm run schema`).
 * test/config.test.ts fails while the file differs from what this writes.
 */

import { writeFileSync } from 'node:fs';
import { configSchemaJson } from '../src/config/schema.js';

const file = new URL('../config/schema.json', import.meta.url);
writeFileSync(file, configSchemaJson());
console.log(`wrote ${file.pathname}`);
