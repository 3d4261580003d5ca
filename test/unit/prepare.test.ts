// Unit: the one run preparation (dsl/prepare.ts) the CLI's plan/run and the worker's prepare activity share:
// each kind of problem is a PrepareError of its failure type with the located messages, problems come in the
// order runbook, params, inventory, targets, and a prepared run carries what planRun takes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FAILURES } from '../../common/failure-types';
import { PrepareError, prepareRunbook, type RunPreparation } from '../../dsl/prepare';

const root = path.join(__dirname, '..', '..');
const restart = path.join(root, 'runbooks', 'restart-service.yaml');
const inventory = path.join(root, 'runbooks', 'inventory.example.yaml');
const run = { id: 'r', initiator: 'me', trigger: 'manual' };

function prepare(over: Partial<RunPreparation>) {
  return prepareRunbook({
    runbookFile: restart,
    params: { service: 'nginx' },
    inventoryFile: () => inventory,
    run,
    ...over,
  });
}

function failure(over: Partial<RunPreparation>): PrepareError {
  try {
    prepare(over);
  } catch (err) {
    if (err instanceof PrepareError) return err;
    throw err;
  }
  throw new Error('prepared, but should have failed');
}

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'prepare-test-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a valid run: coerced params, defaults, the inventory, the targets in order, the content hash', () => {
  const p = prepare({});
  expect(p.params).toEqual({ service: 'nginx', hosts: 'group:web', health_path: '/health' });
  expect(p.selector).toBe('group:web');
  expect(p.hosts.map((h) => h.name)).toEqual(['web-1', 'web-2', 'web-3', 'web-4']);
  expect(p.inventory?.file).toBe(inventory);
  expect(p.contentHash).toMatch(/^[0-9a-f]{64}$/);
  expect(p.file).toBe(restart);
});

test('a file that cannot be read: UnknownRunbook, with the loader error as cause', () => {
  const err = failure({ runbookFile: path.join(dir, 'missing.yaml') });
  expect([err.type, err.message]).toEqual([
    FAILURES.unknownRunbook,
    `Cannot read runbook ${path.join(dir, 'missing.yaml')}: no such file.`,
  ]);
  expect(err.cause).toBeInstanceOf(Error);
});

test('an invalid runbook: RunbookInvalid listing its problems', () => {
  const file = path.join(dir, 'broken.yaml');
  fs.writeFileSync(file, 'apiVersion: runbooks/v1\nkind: Runbook\nmetadata: { name: broken }\nsteps: []\n');
  const err = failure({ runbookFile: file });
  expect(err.type).toBe(FAILURES.runbookInvalid);
  expect(err.message).toMatch(new RegExp(`^${file} is not a valid runbook:\n${file}:4:`));
  expect(err.cause).toBeUndefined();
});

test('bad params: ParamsInvalid, naming the file only when asked (the CLI does, the worker does not)', () => {
  const lines =
    'params.nope: unknown param; this runbook takes: service, hosts, health_port, health_path [RB1301]\n' +
    'params.service: required, but not given (The service to restart, e.g. nginx) [RB1302]';
  const worker = failure({ params: { nope: 1 } });
  expect([worker.type, worker.message]).toEqual([
    FAILURES.paramsInvalid,
    `Invalid params for restart-service:\n${lines}`,
  ]);
  expect(failure({ params: { nope: 1 }, paramsNameFile: true }).message).toBe(
    `Invalid params for restart-service (${restart}):\n${lines}`,
  );
});

test('the inventory is asked for only once the runbook and its params are valid', () => {
  const inventoryFile = jest.fn(() => inventory);
  failure({ params: {}, inventoryFile });
  expect(inventoryFile).not.toHaveBeenCalled();
  prepare({ inventoryFile });
  expect(inventoryFile).toHaveBeenCalledTimes(1);
});

test.each<[string, string | undefined, (file: string) => string]>([
  ['cannot be read', undefined, (f) => `Cannot read inventory ${f}: no such file.`],
  ['is invalid', 'hosts: {}\n', (f) => `Inventory ${f} is invalid:\n${f}:1:1: the inventory has no hosts [RB1405]`],
])('an inventory that %s: InventoryInvalid', (name, text, message) => {
  const file = path.join(dir, `${name.replace(/ /g, '-')}.yaml`);
  if (text !== undefined) fs.writeFileSync(file, text);
  const err = failure({ inventoryFile: () => file });
  expect([err.type, err.message]).toEqual([FAILURES.inventoryInvalid, message(file)]);
});

test.each<[string, Record<string, unknown>, string | undefined, string]>([
  [
    'an unknown group',
    { service: 'nginx', hosts: 'group:wbe' },
    inventory,
    'targets: unknown group "wbe" (did you mean "web"?) [RB1402]',
  ],
  [
    'no inventory',
    { service: 'nginx' },
    undefined,
    'targets: this runbook acts on targets (group:web): give an inventory [RB1403]',
  ],
])('%s: TargetsInvalid', (_name, params, file, line) => {
  const err = failure({ params, inventoryFile: () => file });
  expect([err.type, err.message]).toEqual([
    FAILURES.targetsInvalid,
    `Cannot resolve the targets of restart-service:\n${line}`,
  ]);
});
