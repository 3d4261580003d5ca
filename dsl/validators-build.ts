// Node side (build time). The JSON Schema validators of runbooks, inventories and calendars as one generated
// module (ajv's standalone code), so no process compiles them at start: compiling the runbook schema took ~140 ms
// of every `runbook run FILE` and `runbook validate`. `npm run build` writes it next to the compiled code;
// validate.ts uses a validator from it only when its schema's hash matches, and compiles otherwise.
import fs from 'node:fs';
import path from 'node:path';
import standaloneCode from 'ajv/dist/standalone';
import { CalendarFileSchema } from './calendars';
import { InventorySchema } from './inventory';
import { runbookJsonSchema } from './schema';
import { newAjv, PRECOMPILED_FILE, schemaKey } from './validate';

/** The schemas validated with validateAgainstSchema. */
export function validatedSchemas(): object[] {
  return [runbookJsonSchema(), InventorySchema, CalendarFileSchema];
}

/** The generated module: one export per schema, named by the hash of the schema's JSON. */
export function validatorsModuleCode(schemas: object[] = validatedSchemas()): string {
  const ajv = newAjv({ code: { source: true } });
  const exports: Record<string, string> = {};
  for (const schema of schemas) {
    const key = schemaKey(schema);
    ajv.addSchema(schema, key);
    exports[key] = key;
  }
  return standaloneCode(ajv, exports);
}

export function writeValidators(out = PRECOMPILED_FILE): number {
  const code = validatorsModuleCode();
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, code);
  return code.length;
}

if (require.main === module) {
  const size = writeValidators();
  process.stdout.write(`schema validators: ${PRECOMPILED_FILE} (${Math.round(size / 1024)} KiB)\n`);
}
