// Unit: the validators generated at build time (dsl/validators-build.ts, ajv's standalone code) judge every
// document exactly as validators compiled at run time do: same verdict, same errors (which become the located
// problems), over every runbook in the repo and every fixture, valid and invalid, against each schema.
import fs from 'node:fs';
import path from 'node:path';
import type { ValidateFunction } from 'ajv/dist/2020';
import { validatedSchemas, validatorsModuleCode } from '../../dsl/validators-build';
import { newAjv, schemaKey } from '../../dsl/validate';
import { parseYamlSource } from '../../dsl/yaml-source';

const ROOT = path.join(__dirname, '..', '..');

function yamlFiles(dir: string): string[] {
  return fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f))
        .map((f) => path.join(dir, f))
    : [];
}

const corpus = ['runbooks', 'test/fixtures/runbooks', 'test/fixtures/valid', 'test/fixtures/invalid']
  .flatMap((d) => yamlFiles(path.join(ROOT, d)))
  .map((file) => ({ file, data: parseYamlSource(file, fs.readFileSync(file, 'utf8')).data }))
  .filter((d) => d.data !== undefined);

// Inside the repo, so the generated code's require('ajv/dist/runtime/...') resolves.
const dir = path.join(ROOT, 'node_modules', '.cache', 'runbook-validators-test');
let generated: Record<string, ValidateFunction>;

beforeAll(() => {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `validators-${process.pid}.js`);
  fs.writeFileSync(file, validatorsModuleCode());
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  generated = require(file) as Record<string, ValidateFunction>;
});

test('the corpus has valid and invalid documents', () => {
  expect(corpus.length).toBeGreaterThan(60);
});

test.each(validatedSchemas().map((schema, i) => [['runbook', 'inventory', 'calendar'][i], schema] as const))(
  'the %s schema: the generated validator agrees with a compiled one on every document',
  (_name, schema) => {
    const pre = generated[schemaKey(schema)];
    expect(pre).toBeInstanceOf(Function);
    const compiled = newAjv().compile(schema);
    let failures = 0;
    for (const { file, data } of corpus) {
      const a = pre!(data);
      const b = compiled(data);
      expect([file, a]).toEqual([file, b]);
      expect([file, JSON.stringify(pre!.errors ?? null)]).toEqual([file, JSON.stringify(compiled.errors ?? null)]);
      if (!a) failures += 1;
    }
    expect(failures).toBeGreaterThan(0); // the comparison covered failures, errors and all
  },
);

test('a changed schema gets another name, so a stale generated module is never used for it', () => {
  const [runbook] = validatedSchemas();
  expect(schemaKey({ ...runbook!, title: 'changed' })).not.toBe(schemaKey(runbook!));
});
