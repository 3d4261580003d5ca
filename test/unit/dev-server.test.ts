// Unit: the data-dir sanity check that turns a corrupt or foreign database file into an operator message.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkDatabaseFile } from '../../worker/dev-server';
import { UserError } from '../../common/errors';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-db-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a missing or empty file is fine (the server creates it)', () => {
  expect(() => checkDatabaseFile(path.join(dir, 'absent.db'))).not.toThrow();
  fs.writeFileSync(path.join(dir, 'empty.db'), '');
  expect(() => checkDatabaseFile(path.join(dir, 'empty.db'))).not.toThrow();
});

test('a SQLite header passes', () => {
  fs.writeFileSync(
    path.join(dir, 'ok.db'),
    Buffer.concat([Buffer.from('SQLite format 3\0', 'latin1'), Buffer.alloc(84)]),
  );
  expect(() => checkDatabaseFile(path.join(dir, 'ok.db'))).not.toThrow();
});

test('anything else is a UserError that says how to move it aside', () => {
  const file = path.join(dir, 'bad.db');
  fs.writeFileSync(file, 'garbage');
  expect(() => checkDatabaseFile(file)).toThrow(UserError);
  expect(() => checkDatabaseFile(file)).toThrow(`mv ${file} ${file}.corrupt`);
});

test('a directory in place of the file is named', () => {
  const sub = path.join(dir, 'dir.db');
  fs.mkdirSync(sub);
  expect(() => checkDatabaseFile(sub)).toThrow(`The Temporal database path ${sub} is a directory, not a SQLite file.`);
});
