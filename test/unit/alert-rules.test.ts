// Unit: alert rules (dsl/alert-rule.ts) and the guard's pure decisions (workflows/guard-state.ts). Matchers hold like
// Alertmanager's (anchored regexes, an absent label never equals anything); labels reach params only through the
// rule's templates and the params' own checks; a label cannot widen a selector or pick a secret; bad rules are
// located errors; the guard's state keeps hostile fingerprints as data and stays bounded.
import { alertLimits, alertParams, ruleMatches, type AlertRuleDoc, type AlertView } from '../../dsl/alert-rule';
import { loadRunbookText } from '../../dsl/load';
import { formatProblem } from '../../dsl/problems';
import type { RunbookDoc } from '../../dsl/schema';
import { decide, MAX_INCIDENTS, newGuardState, prune, runEnded, type AlertDelivery } from '../../workflows/guard-state';

const rule = (match: AlertRuleDoc['match']): AlertRuleDoc => ({ match });

describe('matchers', () => {
  it.each([
    [{ alertname: 'Down' }, { alertname: 'Down' }, true],
    [{ alertname: 'Down' }, { alertname: 'Downer' }, false],
    [{ alertname: 'Down' }, {}, false],
    [{ severity: { regex: 'critical|page' } }, { severity: 'page' }, true],
    [{ severity: { regex: 'critical|page' } }, { severity: 'paged' }, false], // anchored
    [{ severity: { regex: 'crit.*' } }, {}, false],
    [{ env: { not: 'staging' } }, { env: 'prod' }, true],
    [{ env: { not: 'staging' } }, {}, true],
    [{ env: { not: 'staging' } }, { env: 'staging' }, false],
    [{ instance: { notRegex: 'test-.*' } }, { instance: 'test-1' }, false],
    [{ instance: { notRegex: 'test-.*' } }, { instance: 'web-1' }, true],
    [{ instance: { notRegex: 'test-.*' } }, {}, true],
    [{ a: 'x', b: { regex: 'y+' } }, { a: 'x', b: 'yyy' }, true],
    [{ a: 'x', b: { regex: 'y+' } }, { a: 'x', b: '' }, false],
    [{ toString: 'x' }, {}, false], // a label named like an Object method is just absent
  ] as [AlertRuleDoc['match'], Record<string, string>, boolean][])('%j on %j → %s', (match, labels, want) => {
    expect(ruleMatches(rule(match), labels)).toBe(want);
  });
});

const yaml = (body: string) => `apiVersion: runbooks/v1
kind: Runbook
metadata: { name: t, description: test }
${body}`;

function load(body: string) {
  const loaded = loadRunbookText('t.yaml', yaml(body));
  return { rb: loaded.runbook as RunbookDoc | undefined, problems: loaded.problems.map(formatProblem) };
}

const view = (labels: Record<string, string>): AlertView => ({
  labels,
  annotations: { summary: 'disk 95%' },
  fingerprint: 'f1',
  status: 'firing',
  source: 'alertmanager',
});

const base = `params:
  service: { type: string, pattern: '[a-z]+' }
  note: { type: string, default: none }
  hosts: { type: targets }
targets: \${{ params.hosts }}
steps:
  - id: s
    ssh: { run: 'echo \${{ params.note }}' }
on:
  alert:
    match: { alertname: Down }
    params:
      service: \${{ alert.labels.service }}
      note: \${{ alert.annotations.summary }} on \${{ alert.labels.instance }}
      hosts: "host:\${{ alert.labels.instance.split(':')[0] }}"
`;

describe('params from an alert', () => {
  const { rb, problems } = load(base);
  it('the shipped example loads', () => expect(problems).toEqual([]));

  it('fills params through the templates and the params’ checks', () => {
    expect(alertParams(rb!, view({ alertname: 'Down', service: 'nginx', instance: 'web-1:9100' }))).toEqual({
      values: { service: 'nginx', note: 'disk 95% on web-1:9100', hosts: 'host:web-1' },
      errors: [],
    });
  });

  it.each([
    [{ service: 'nginx; rm -rf /', instance: 'web-1' }, 'service', /does not match the pattern/],
    [{ service: 'nginx', instance: 'web-1,all' }, 'hosts', /contains a comma, "!" or white space/],
    [{ service: 'nginx', instance: '!web-1' }, 'hosts', /contains a comma/],
    [{ service: 'nginx', instance: 'web-1 all' }, 'hosts', /white space/],
    [{ instance: 'web-1' }, 'service', /from the alert: /],
  ])('refuses %j naming params.%s', (labels, param, message) => {
    const { errors } = alertParams(rb!, view({ alertname: 'Down', ...labels }));
    expect(errors.map((e) => e.param)).toContain(param);
    expect(errors.find((e) => e.param === param)!.message).toMatch(message);
  });

  it('shell metacharacters in a param without a pattern stay data (quoting happens when rendered)', () => {
    const evil = '$(id); `id` \'"';
    const { values, errors } = alertParams(rb!, {
      ...view({ alertname: 'Down', service: 'x', instance: 'h' }),
      annotations: { summary: evil },
    });
    expect(errors).toEqual([]);
    expect(values.note).toBe(`${evil} on h`);
  });
});

describe('rule validation', () => {
  it('a bad matcher regex and a secret param filled from an alert are located errors', () => {
    const { problems } = load(`params:
  key: { type: secret }
secrets: { db: { provider: env, key: DB } }
steps:
  - id: s
    ssh: { run: 'true' }
on:
  alert:
    match: { alertname: { regex: '(' } }
    params: { key: '\${{ alert.labels.secret }}' }
`);
    expect(problems).toEqual([
      expect.stringMatching(
        /^t\.yaml:12:34: on\.alert\.match\.alertname\.regex: invalid regular expression: Unterminated group \[RB1212\]$/,
      ),
      expect.stringMatching(/^t\.yaml:13:15: on\.alert\.params\.key: a secret param cannot be filled from an alert/),
    ]);
  });

  it('limits: unknown keys and out-of-range values are schema errors; defaults fill the rest', () => {
    const { problems } = load(`steps:
  - id: s
    ssh: { run: 'true' }
on:
  alert:
    match: { alertname: X }
    limits: { maxTargets: 0, rate: { max: 1, window: 1h, burst: 2 } }
`);
    expect(problems.join('\n')).toMatch(/on\.alert\.limits\.maxTargets/);
    expect(problems.join('\n')).toMatch(/on\.alert\.limits\.rate\.burst: unknown key/);
    expect(alertLimits({ match: { a: 'b' }, limits: { breaker: { window: '30m' } } })).toEqual({
      maxTargets: 5,
      concurrencyPerTarget: 1,
      rate: { max: 10, windowMs: 3600_000 },
      perTarget: { max: 3, windowMs: 3600_000 },
      breaker: { failures: 3, remediations: 20, windowMs: 1800_000, cooldownMs: 1800_000 },
      onResolved: 'cancel-approval',
    });
  });
});

describe('guard state', () => {
  const limits = alertLimits({ match: { a: 'b' }, limits: { rate: { max: 100_000 }, perTarget: { max: 100_000 } } });
  const delivery = (fingerprint: string, target = 'h1'): AlertDelivery => ({
    alert: { fingerprint, status: 'firing', labels: { alertname: 'X' }, annotations: {}, source: 'test' },
    contentHash: 'c',
    targets: [target],
    limits,
  });

  it('a fingerprint named __proto__ or constructor is an incident like any other', () => {
    const s = newGuardState('r');
    expect(decide(s, delivery('__proto__'), 1).answer.outcome).toBe('started');
    expect(decide(s, delivery('constructor', 'h2'), 2).answer.outcome).toBe('started');
    expect(Object.getPrototypeOf(s.incidents)).toBe(Object.prototype);
    expect(Object.keys(s.incidents).sort()).toEqual(['__proto__', 'constructor']);
    expect(decide(s, delivery('__proto__'), 3).answer.outcome).toBe('deduplicated');
    expect(JSON.parse(JSON.stringify(s)).incidents.__proto__.workflowId).toBe('alert:r:__proto__');
  });

  it('a run end naming another run of the remediation, or an unknown status, changes nothing (a forged signal)', () => {
    const s = newGuardState('r');
    decide(s, delivery('f1'), 1);
    s.incidents.f1!.runId = 'run-1';
    expect(runEnded(s, 'alert:r:f1', 'run-2', 'succeeded', 2)).toEqual([]);
    expect(runEnded(s, 'alert:r:f1', 'run-1', 'exploded', 2)).toEqual([]);
    expect(s.incidents.f1!.active).toBe(true);
    expect(runEnded(s, 'alert:r:f1', 'run-1', 'failed', 3).map((e) => e.kind)).toEqual(['escalate']);
    expect(s.incidents.f1!.active).toBe(false);
    expect(runEnded(s, 'alert:r:f1', 'run-1', 'failed', 4)).toEqual([]); // counted once
    expect(s.counters.failed).toBe(1);
  });

  it('a remediation a change calendar blocked ends its incident and escalates, but never opens the breaker', () => {
    const s = newGuardState('r');
    for (let i = 0; i < 5; i++) {
      decide(s, delivery(`f${i}`, `h${i}`), i);
      const effects = runEnded(s, `alert:r:f${i}`, undefined, 'blocked', i + 1);
      expect(effects).toEqual([
        expect.objectContaining({
          kind: 'escalate',
          escalation: expect.objectContaining({ reason: expect.stringMatching(/blocked: a change calendar/) }),
        }),
      ]);
      expect(s.incidents[`f${i}`]!.active).toBe(false);
    }
    expect(s.counters.failed).toBe(0);
    expect(s.breaker).toBeUndefined();
    // The same incident redelivered starts nothing new: it was handled (by people, now).
    expect(decide(s, delivery('f0', 'h0'), 10).answer.outcome).toBe('deduplicated');
  });

  it('stays bounded: at most MAX_INCIDENTS incidents, the most recent kept', () => {
    const s = newGuardState('r');
    const many = { ...limits, concurrencyPerTarget: 100_000, breaker: { ...limits.breaker, remediations: 100_000 } };
    for (let i = 0; i < MAX_INCIDENTS + 50; i++) {
      const d = { ...delivery(`f${i}`, `h${i}`), limits: many };
      decide(s, d, i);
      s.incidents[`f${i}`]!.active = false; // ended
    }
    prune(s, MAX_INCIDENTS + 50);
    expect(Object.keys(s.incidents)).toHaveLength(MAX_INCIDENTS);
    expect(s.incidents[`f${MAX_INCIDENTS + 49}`]).toBeDefined();
    expect(s.incidents.f0).toBeUndefined();
  });
});
