// Unit: the runbook language. Schema drift, the shipped runbooks, params coercion, expressions and quoting,
// strategies, selectors, inventories (ours and Ansible), and the plan/docs CLI.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import YAML from 'yaml';
import { evaluate, render, secretToken, maskSecrets, references } from '../../dsl/expr';
import { loadInventoryText } from '../../dsl/inventory';
import { isRunbookFileName, loadRunbookFile, loadRunbookText } from '../../dsl/load';
import { coerceParams } from '../../dsl/params';
import { batchSizes, failureThreshold, planRun } from '../../dsl/plan';
import { runbookJsonSchema } from '../../dsl/schema';
import { resolveTargets } from '../../dsl/selector';
import { checkFile } from '../../cli/language';

const root = path.join(__dirname, '..', '..');
const runbook = path.join(root, 'bin', 'runbook.js');
/** Every runbook in runbooks/: a new one is checked without being listed here. */
const shipped = fs
  .readdirSync(path.join(root, 'runbooks'))
  .filter(isRunbookFileName)
  .map((f) => f.replace(/\.ya?ml$/, ''));

describe('schema', () => {
  test('runbooks/runbook.schema.json is exactly what the schema module generates (run `runbook schema --write`)', () => {
    const onDisk = JSON.parse(fs.readFileSync(path.join(root, 'runbooks', 'runbook.schema.json'), 'utf8')) as unknown;
    expect(onDisk).toEqual(JSON.parse(JSON.stringify(runbookJsonSchema())));
  });

  test.each(shipped)('%s validates and lints clean, and the published JSON Schema accepts it', (name) => {
    const file = path.join(root, 'runbooks', `${name}.yaml`);
    expect(checkFile(file, true)).toEqual([]);
    const validate = new Ajv2020({ strict: false }).compile(
      JSON.parse(fs.readFileSync(path.join(root, 'runbooks', 'runbook.schema.json'), 'utf8')) as object,
    );
    expect(validate(YAML.parse(fs.readFileSync(file, 'utf8')))).toBe(true);
    expect(loadRunbookFile(file).contentHash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('params', () => {
  const rb = loadRunbookFile(path.join(root, 'runbooks', 'restart-service.yaml')).runbook!;
  const pw = loadRunbookFile(path.join(root, 'runbooks', 'password-reset.yaml')).runbook!;
  const patch = loadRunbookFile(path.join(root, 'runbooks', 'rolling-patch.yaml')).runbook!;
  const fo = loadRunbookFile(path.join(root, 'runbooks', 'postgres-failover.yaml')).runbook!;
  const withSecretParam = loadRunbookText(
    'secret-param.yaml',
    `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: secret-param }
params:
  new_password: { type: secret, default: secret:new_password }
secrets:
  new_password: { provider: env, key: NEW_PASSWORD }
steps:
  - { id: use, ssh: { run: 'use \${{ params.new_password }}' } }
`,
  ).runbook!;
  const cases: [string, typeof rb, Record<string, unknown>, string[]][] = [
    ['missing required', rb, {}, ['service: required, but not given (The service to restart, e.g. nginx) [RB1302]']],
    [
      'unknown name with a hint',
      rb,
      { service: 'nginx', servce: 'x' },
      [
        'servce: unknown param (did you mean "service"?); this runbook takes: service, hosts, health_port, health_path [RB1301]',
      ],
    ],
    [
      'pattern (injection)',
      rb,
      { service: 'nginx; rm -rf /' },
      ['service: "nginx; rm -rf /" does not match the pattern [A-Za-z0-9@._-]+ [RB1304]'],
    ],
    [
      'pattern is anchored',
      rb,
      { service: 'nginx\nreboot' },
      ['service: "nginx\\nreboot" does not match the pattern [A-Za-z0-9@._-]+ [RB1304]'],
    ],
    [
      'integer from CLI text',
      rb,
      { service: 'nginx', health_port: '80x' },
      ['health_port: expected an integer, got "80x" [RB1303]'],
    ],
    [
      'integer range',
      rb,
      { service: 'nginx', health_port: 70000 },
      ['health_port: must be at most 65535, got 70000 [RB1305]'],
    ],
    [
      'targets selector',
      rb,
      { service: 'nginx', hosts: 'group:web;reboot' },
      [
        'hosts: invalid selector term "group:web;reboot": expected all, group:NAME, host:NAME, label:KEY=VALUE or a name, optionally prefixed with ! [RB1307]',
      ],
    ],
    [
      'boolean',
      pw,
      { user: 'alice', force_change: 'maybe' },
      ['force_change: expected true or false, got "maybe" [RB1303]'],
    ],
    [
      'secret must be a reference',
      withSecretParam,
      { new_password: 'hunter2' },
      ['new_password: expected a secret reference like secret:NAME (never the secret itself) [RB1308]'],
    ],
    [
      'secret must be declared',
      withSecretParam,
      { new_password: 'secret:other' },
      ['new_password: secret "other" is not declared in the runbook\'s secrets [RB1308]'],
    ],
    [
      'list item pattern',
      patch,
      { packages: 'openssl,$(reboot)' },
      ['packages: item 2: "$(reboot)" does not match the pattern [a-z0-9][a-z0-9+.-]* [RB1304]'],
    ],
    [
      'enum',
      loadRunbookFile(path.join(root, 'runbooks', 'haproxy-server.yaml')).runbook!,
      { lb: 'host:lb-1', backend: 'web', server: 'web-1', state: 'paused' },
      ['state: expected one of drain, ready, got "paused" [RB1306]'],
    ],
    ['NUL is refused', pw, { user: 'ali\u0000ce' }, ['user: must not contain NUL characters [RB1303]']],
    [
      'every problem at once',
      fo,
      { standby: 'db-2', max_lag_bytes: -1 },
      [
        'standby: "db-2" does not match the pattern host:[A-Za-z0-9_.-]+ [RB1304]',
        'primary: required, but not given (The current primary, fenced before the promotion (one host)) [RB1302]',
        'max_lag_bytes: must be at least 0, got -1 [RB1305]',
      ],
    ],
  ];
  test.each(cases)('%s', (_label, spec, inputs, expected) => {
    const { errors } = coerceParams(spec.params ?? {}, inputs, Object.keys(spec.secrets ?? {}));
    expect(errors.map((e) => `${e.param}: ${e.message} [${e.code}]`)).toEqual(expected);
  });

  test('CLI strings, UI JSON and defaults are coerced to the declared types', () => {
    expect(coerceParams(rb.params!, { service: 'nginx', health_port: '9090' }, []).values).toEqual({
      service: 'nginx',
      hosts: 'group:web',
      health_port: 9090,
      health_path: '/health',
    });
    expect(coerceParams(patch.params!, { packages: 'a,b', service: 'nginx' }, []).values).toEqual({
      hosts: 'group:web',
      packages: ['a', 'b'],
      service: 'nginx',
      health_path: '/health',
    });
  });
});

describe('expressions', () => {
  const ctx = {
    params: { service: 'nginx', n: 4, list: ['a b', '$(id)'] },
    target: { name: 'web-1' },
    secrets: { db: secretToken('db') },
  };
  test('evaluate with CEL: integers stay integers, strings concatenate', () => {
    expect(evaluate('params.n * 2 + 1', ctx)).toBe(9);
    expect(evaluate('"x-" + target.name', ctx)).toBe('x-web-1');
    expect(evaluate('size(params.list) == 2 && params.service.startsWith("ng")', ctx)).toBe(true);
  });
  test('shell mode quotes each value; lists become several words; raw() opts out', () => {
    expect(render('systemctl restart ${{ params.service }}', ctx, 'shell')).toBe('systemctl restart nginx');
    expect(render('echo ${{ params.list }}', ctx, 'shell')).toBe("echo 'a b' \\$\\(id\\)");
    expect(render('echo ${{ raw(params.list) }}', ctx, 'shell')).toBe('echo a b,$(id)');
  });
  test('secrets render as tokens, shown masked, and only whole', () => {
    expect(maskSecrets(render('login ${{ secrets.db }}', ctx, 'shell'))).toBe('login <secret:db>');
    expect(() => render('x ${{ "p=" + secrets.db }}', ctx, 'shell')).toThrow(
      'a secret can only be interpolated whole, as `${{ secrets.NAME }}`',
    );
  });
  test('references ignore comprehension variables', () => {
    expect(references('params.list.map(x, x + target.name)')).toEqual([
      ['params', 'list'],
      ['target', 'name'],
    ]);
  });
  test('a missing key is an evaluation error naming the expression', () => {
    expect(() => evaluate('params.nope', ctx)).toThrow('`params.nope`: No such key: nope');
  });
});

describe('strategy', () => {
  test.each([
    [10, { type: 'rolling' as const, batch: 1 }, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]],
    [10, { type: 'rolling' as const, batch: 4 }, [4, 4, 2]],
    [10, { type: 'rolling' as const, batch: '25%' }, [3, 3, 3, 1]],
    [10, { type: 'rolling' as const, batch: [1, 2, '25%'] }, [1, 2, 3, 3, 1]],
    [3, { type: 'rolling' as const, batch: [1, 5] }, [1, 2]],
    [7, { type: 'parallel' as const, limit: 2 }, [7]],
    [0, { type: 'rolling' as const, batch: 1 }, []],
  ])('%i targets, %j -> %j', (total, strategy, sizes) => {
    expect(batchSizes(total, strategy)).toEqual(sizes);
  });
  test('failure threshold: a count, or a percentage rounded down', () => {
    expect(failureThreshold(10, { maxFailures: 2 })).toBe(2);
    expect(failureThreshold(10, { maxFailures: '25%' })).toBe(2);
    expect(failureThreshold(3, { maxFailures: '10%' })).toBe(0);
    expect(failureThreshold(3, undefined)).toBe(0);
  });
});

describe('inventories and selectors', () => {
  const ours = loadInventoryText(
    'inv.yaml',
    fs.readFileSync(path.join(root, 'runbooks', 'inventory.example.yaml'), 'utf8'),
  ).inventory!;
  const ini = loadInventoryText(
    'hosts.ini',
    [
      'bastion ansible_host=192.0.2.1',
      '',
      '[web]',
      'web1 ansible_host=10.0.0.1 ansible_port=2222',
      'web2 ansible_host=10.0.0.2 zone="eu 1"',
      '[db]',
      'db1 ansible_host=10.0.1.1 ansible_user=postgres',
      '',
      '[prod:children]',
      'web',
      'db',
      '',
      '[web:vars]',
      'ansible_user=deploy',
      '[all:vars]',
      'ansible_user=admin',
      'ansible_ssh_private_key_file=~/.ssh/ops',
    ].join('\n'),
  );
  const ayaml = loadInventoryText(
    'hosts.yaml',
    [
      'all:',
      '  vars: { ansible_user: admin }',
      '  children:',
      '    web:',
      '      hosts:',
      '        web1: { ansible_host: 10.0.0.1 }',
      '        web2: { ansible_host: 10.0.0.2, ansible_port: 2200 }',
      '      vars: { ansible_user: deploy }',
      '    prod:',
      '      children:',
      '        web:',
      '        db:',
      '          hosts:',
      '            db1: { ansible_host: 10.0.1.1 }',
    ].join('\n'),
  );

  test('Ansible INI: groups, children, ansible_host/port/user with host > group > all precedence', () => {
    expect(ini.problems).toEqual([]);
    const inv = ini.inventory!;
    expect(inv.format).toBe('ansible-ini');
    expect(inv.hosts.map((h) => [h.name, h.address, h.port, h.user])).toEqual([
      ['bastion', '192.0.2.1', 22, 'admin'],
      ['web1', '10.0.0.1', 2222, 'deploy'],
      ['web2', '10.0.0.2', 22, 'deploy'],
      ['db1', '10.0.1.1', 22, 'postgres'],
    ]);
    expect(inv.groups.prod).toEqual(['web1', 'web2', 'db1']);
    expect(inv.hosts[2]!.vars.zone).toBe('eu 1');
  });

  test('Ansible YAML: nested children, vars precedence', () => {
    expect(ayaml.problems).toEqual([]);
    const inv = ayaml.inventory!;
    expect(inv.format).toBe('ansible-yaml');
    expect(inv.hosts.map((h) => [h.name, h.address, h.port, h.user])).toEqual([
      ['web1', '10.0.0.1', 22, 'deploy'],
      ['web2', '10.0.0.2', 2200, 'deploy'],
      ['db1', '10.0.1.1', 22, 'admin'],
    ]);
    expect(inv.groups.prod).toEqual(['web1', 'web2', 'db1']);
  });

  test.each([
    ['group:web', ['web-1', 'web-2', 'web-3', 'web-4']],
    ['host:db-2', ['db-2']],
    ['web-3, db-1', ['web-3', 'db-1']],
    ['label:zone=eu1', ['web-1', 'web-2', 'db-1', 'db-2', 'lb-1']],
    ['group:web,!label:zone=us1', ['web-1', 'web-2']],
    ['!group:postgres', ['web-1', 'web-2', 'web-3', 'web-4', 'lb-1']],
    ['all,!web-1,!db-2', ['web-2', 'web-3', 'web-4', 'db-1', 'lb-1']],
  ])('selector %s', (selector, names) => {
    const r = resolveTargets(ours, selector);
    expect(r.errors).toEqual([]);
    expect(r.hosts.map((h) => h.name)).toEqual(names);
  });

  test.each([
    ['group:wbe', 'unknown group "wbe" (did you mean "web"?) [RB1402]'],
    ['host:web-9', 'unknown host "web-9" (did you mean "web-1"?) [RB1401]'],
    ['label:zone=mars', 'selector "label:zone=mars" matches no hosts [RB1403]'],
    ['group:web,!group:web', 'selector "group:web,!group:web" matches no hosts [RB1403]'],
  ])('selector error %s', (selector, message) => {
    expect(resolveTargets(ours, selector).errors.map((e) => `${e.message} [${e.code}]`)).toEqual([message]);
  });
});

describe('plan, docs and injection', () => {
  const inventory = path.join(root, 'runbooks', 'inventory.example.yaml');
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' });

  test('plan of a rolling runbook shows its batches and the exact commands, in order', () => {
    const out = execFileSync('node', [runbook, 'plan', 'rolling-patch', '-i', inventory, '-p', 'packages=openssl'], {
      encoding: 'utf8',
      cwd: root,
    });
    expect(out).toContain('Targets:  4 from "group:web": web-1, web-2, web-3, web-4');
    expect(out).toContain(
      'Strategy: rolling, 3 batches of 1 + 2 + 1; stop after more than 0 failed targets; host locks: wait',
    );
    const batches = out.split('\n').filter((l) => l.startsWith('Batch '));
    expect(batches).toEqual(['Batch 1/3: web-1', 'Batch 2/3: web-2, web-3', 'Batch 3/3: web-4']);
    // A command written as a YAML block is shown line by line.
    expect(out).toContain(
      '     5. upgrade          ssh      $ [as root] DEBIAN_FRONTEND=noninteractive:\n' +
        '          | apt-get install -y -q --only-upgrade openssl &&\n' +
        "          |   dpkg-query -W -f='${Package}=${Version}\\n' openssl   [timeout 20m]\n",
    );
    expect(out).toContain(
      '     3. drain            runbook  runbook haproxy-server {"lb":"host:lb-1","backend":"web","server":"web-2","state":"drain"}',
    );
    // Skipped steps are not rendered (their expressions may not hold where `when` is false).
    expect(out).toContain('     6. restart          ssh         [SKIPPED (when is false); timeout 2m]');
    expect(out).not.toContain('\u0000');
  });

  test('plan --json is machine-readable and masks secrets', () => {
    const plan = JSON.parse(
      execFileSync(
        'node',
        [
          runbook,
          'plan',
          'postgres-failover',
          '-i',
          inventory,
          '-p',
          'standby=host:db-2',
          '-p',
          'primary=host:db-1',
          '--json',
        ],
        { encoding: 'utf8', cwd: root },
      ),
    ) as {
      targets: string[];
      approval: { kind: string };
      perTarget: { steps: { id: string; on?: { target: string }[]; action?: { auth?: { bearer?: string } } }[] }[];
    };
    expect(plan.targets).toEqual(['db-2']);
    expect(plan.approval.kind).toBe('approval');
    const steps = plan.perTarget[0]!.steps;
    expect(steps.find((s) => s.id === 'fence_primary')?.on?.map((o) => o.target)).toEqual(['db-1']);
    expect(steps.find((s) => s.id === 'into_lb')?.action).toMatchObject({
      kind: 'runbook',
      name: 'haproxy-server',
      params: { lb: 'host:lb-1', server: 'db-2', state: 'ready' },
    });
    // A secret is shown as its reference, never read.
    const pw = JSON.parse(
      execFileSync('node', [runbook, 'plan', 'password-reset', '-i', inventory, '-p', 'user=alice', '--json'], {
        encoding: 'utf8',
        cwd: root,
      }),
    ) as { perTarget: { steps: { id: string; action?: { command?: string } }[] }[] };
    expect(pw.perTarget[0]!.steps.find((s) => s.id === 'set_password')?.action?.command).toContain(
      '<secret:new_password>',
    );
  });

  test('injection strings in params and alert labels reach the command as literal data', () => {
    const evil = [
      '; rm -rf /',
      '$(touch /tmp/pwned)',
      '`id`',
      'it\'s "quoted"',
      '*.log',
      'two\nlines',
      '$HOME',
      'a && b',
      '| cat /etc/shadow',
    ];
    for (const value of evil) {
      const plan = JSON.parse(
        execFileSync(
          'node',
          [
            runbook,
            'plan',
            path.join(root, 'test', 'fixtures', 'valid', 'echo-note.yaml'),
            '-i',
            inventory,
            '-p',
            `note=${value}`,
            '-p',
            `words=${value}`,
            '-p',
            'words=second',
            '--alert-label',
            `summary=${value}`,
            '--json',
          ],
          { encoding: 'utf8', cwd: root },
        ),
      ) as {
        perTarget: { steps: { id: string; action: { command: string } }[] }[];
      };
      const [note, words, label] = plan.perTarget[0]!.steps.map((s) => s.action.command);
      // Run the rendered command through a real shell: it must print the value, unchanged and unexpanded.
      expect(sh(note!)).toBe(value);
      expect(sh(words!)).toBe(`<${value}><second>`);
      expect(sh(label!)).toBe(value);
    }
    expect(fs.existsSync('/tmp/pwned')).toBe(false);
  });

  test('bad params at plan time: located, named, exit 1, nothing planned', () => {
    const r = spawnSync(
      'node',
      [runbook, 'plan', 'restart-service', '-i', inventory, '-p', 'service=nginx;reboot', '-p', 'hosts=group:wbe'],
      { encoding: 'utf8', cwd: root },
    );
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(
      'runbook: Invalid params for restart-service (runbooks/restart-service.yaml):\n' +
        'params.service: "nginx;reboot" does not match the pattern [A-Za-z0-9@._-]+ [RB1304]\n',
    );
    const t = spawnSync(
      'node',
      [runbook, 'plan', 'restart-service', '-i', inventory, '-p', 'service=nginx', '-p', 'hosts=group:wbe'],
      { encoding: 'utf8', cwd: root },
    );
    expect(t.stderr).toBe(
      'runbook: Cannot resolve the targets of restart-service:\ntargets: unknown group "wbe" (did you mean "web"?) [RB1402]\n',
    );
  });

  test('docs renders Markdown with the params table', () => {
    const md = execFileSync('node', [runbook, 'docs', 'restart-service'], { encoding: 'utf8', cwd: root });
    expect(md.startsWith('# restart-service\n')).toBe(true);
    expect(md).toContain(
      "| `health_port` | integer | no |  | Port of the HTTP health endpoint (default the host's http_port var, else 80) (min 1, max 65535) |",
    );
    expect(md).toContain('## Rollback');
    // A command of several lines is a code block under its step, not broken inline code.
    expect(md).toContain('1. **restart** (ssh): runs this as root — Restart the service. _(timeout 2m)_\n');
    expect(md).toContain(
      "\n   ```sh\n   case ${{ has(target.vars.service_manager) ? target.vars.service_manager : 'systemd' }} in\n     systemd) systemctl restart",
    );
    expect(md).toContain('1. **drain** (runbook): runs runbook `haproxy-server` — Take the host out');
  });
});

describe('origin: the run target a delegated step is for', () => {
  const text = (cmd: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: drain }
targets: group:web
steps:
  - id: drain
    targets: 'host:\${{ target.vars.lb }}'
    ssh: { run: ${JSON.stringify(cmd)} }
`;
  const inventory = loadInventoryText(
    'inv.yaml',
    `hosts:
  web-1: { address: 127.0.0.2, vars: { lb: lb-1 } }
  lb-1: { address: 127.0.0.3 }
groups: { web: [web-1] }
`,
  ).inventory;

  test('in a step with its own targets, `target` is the host acted on and `origin` the run target', () => {
    const loaded = loadRunbookText('drain.yaml', text('drain ${{ origin.name }} at ${{ target.name }}'));
    expect(loaded.problems).toEqual([]);
    const result = planRun({
      runbook: loaded.runbook!,
      contentHash: 'x',
      params: {},
      inventory,
      run: { id: 'r', initiator: 'me', trigger: 'manual' },
    });
    if (!result.ok) throw new Error(JSON.stringify(result.errors));
    const step = result.plan.perTarget[0]!.steps[0]!;
    expect(step.on).toEqual([{ target: 'lb-1', action: expect.objectContaining({ command: 'drain web-1 at lb-1' }) }]);
  });

  test('an unknown origin field is a located error', () => {
    const loaded = loadRunbookText('drain.yaml', text('drain ${{ origin.nmae }}'));
    expect(loaded.problems.map((p) => p.message)).toEqual([
      expect.stringMatching(/unknown origin field "nmae" .*did you mean "name"/),
    ]);
  });
});

describe('generated secrets and password logins', () => {
  const doc = (secret: string, login: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: gen }
secrets:
  pw: ${secret}
steps:
  - id: check
    ssh: { run: 'id -un', ${login} }
`;
  const problems = (text: string) => loadRunbookText('gen.yaml', text).problems.map((p) => p.message);

  test('a generated secret must be a file secret; a login names a declared secret and takes no sudo or user', () => {
    expect(
      problems(
        doc('{ provider: file, key: x, generate: { length: 24 } }', "login: { user: alice, password: 'secret:pw' }"),
      ),
    ).toEqual([]);
    expect(
      problems(doc('{ provider: env, key: X, generate: {} }', "login: { user: alice, password: 'secret:pw' }")),
    ).toEqual([
      'a generated secret is stored through its provider, and only the file provider can store (this one is env)',
    ]);
    expect(
      problems(doc('{ provider: file, key: x }', "login: { user: alice, password: 'secret:pwd' }, sudo: true")),
    ).toEqual([
      'a step that logs in as another account (login) runs as that account: drop sudo and user',
      'unknown secret "pwd" (did you mean "pw"?); declare it under secrets',
    ]);
    expect(problems(doc('{ provider: file, key: x, generate: { length: 8 } }', ''))).toEqual([
      'must be >= 16; found integer 8',
    ]);
    expect(problems(doc('{ provider: file, key: ../x, generate: {} }', ''))).toEqual([
      "a generated secret's file is relative to the worker's secrets directory (RUNBOOK_SECRETS_DIR), without `..`",
    ]);
    expect(
      problems(
        doc(
          '{ provider: file, key: x }',
          "login: { user: alice, password: 'secret:pw' }, env: { PW: '${{ secrets.pw }}' }",
        ),
      ),
    ).toEqual([
      'a step that logs in as another account runs its command in that account: give it no secrets and no env',
    ]);
  });
});
