// Unit: the metrics settings (worker/config.ts: --metrics, RUNBOOK_METRICS_ADDRESS, the default) and the reason
// label of suppressed remediations (workflows/metrics.ts), pinned against the alert guard's real decisions, so a
// reworded refusal in guard-state.ts fails here instead of turning into reason="other" on the dashboard.
import { UserError } from '../../common/errors';
import { DEFAULT_METRICS_ADDRESS, metricsSettingFrom, parseMetricsAddress } from '../../worker/config';
import { approvalsQuery } from '../../worker/metrics';
import { control, decide, newGuardState, type AlertDelivery, type Limits } from '../../workflows/guard-state';
import { suppressionReason } from '../../workflows/metrics';

describe('metrics address', () => {
  it.each([
    ['127.0.0.1:9464', '127.0.0.1:9464'],
    ['0.0.0.0:19464', '0.0.0.0:19464'],
    [' localhost:9464 ', '127.0.0.1:9464'],
    ['[::1]:9464', '[::1]:9464'],
    ['[::]:1', '[::]:1'],
  ])('%s binds %s', (raw, address) => {
    expect(parseMetricsAddress(raw, '--metrics')).toEqual({ address, source: '--metrics' });
  });

  it.each(['off', 'OFF', 'false', '0', 'no'])('%s turns metrics off', (raw) => {
    expect(parseMetricsAddress(raw, 'RUNBOOK_METRICS_ADDRESS')).toEqual({ source: 'RUNBOOK_METRICS_ADDRESS' });
  });

  it.each([
    ['9464', 'that is not HOST:PORT'],
    ['127.0.0.1', 'that is not HOST:PORT'],
    ['http://127.0.0.1:9464', 'that is not HOST:PORT'],
    ['::1:9464', 'that is not HOST:PORT'],
    ['metrics.example.com:9464', 'the host must be an IP address or localhost'],
    ['127.0.0.1:0', 'the port must be 1 to 65535'],
    ['127.0.0.1:70000', 'the port must be 1 to 65535'],
  ])('%s is refused: %s', (raw, problem) => {
    expect(() => parseMetricsAddress(raw, 'RUNBOOK_METRICS_ADDRESS')).toThrow(UserError);
    expect(() => parseMetricsAddress(raw, 'RUNBOOK_METRICS_ADDRESS')).toThrow(problem);
  });

  it('the message is one paragraph naming the setting to fix', () => {
    expect(() => parseMetricsAddress('127.0.0.1:99999', '--metrics')).toThrow(
      new UserError(
        '--metrics must be IP:PORT or off, got "127.0.0.1:99999": the port must be 1 to 65535. For example ' +
          '127.0.0.1:9464 (this machine only), 0.0.0.0:9464 (to be scraped from other machines) or [::1]:9464. ' +
          'Fix --metrics, or leave it out for the default 127.0.0.1:9464.',
      ),
    );
  });

  it('the flag wins over the variable, which wins over the default', () => {
    const env = { RUNBOOK_METRICS_ADDRESS: '127.0.0.1:9999' };
    expect(metricsSettingFrom('off', env)).toEqual({ source: '--metrics' });
    expect(metricsSettingFrom(undefined, env)).toEqual({
      address: '127.0.0.1:9999',
      source: 'RUNBOOK_METRICS_ADDRESS',
    });
    expect(metricsSettingFrom(undefined, { RUNBOOK_METRICS_ADDRESS: '' })).toEqual({
      address: DEFAULT_METRICS_ADDRESS,
      source: 'default',
    });
    expect(metricsSettingFrom(undefined, {})).toEqual({ address: '127.0.0.1:9464', source: 'default' });
  });

  it('the approvals query keeps a quote in a task queue name from changing it', () => {
    expect(approvalsQuery("q'); DROP")).toBe(
      "WorkflowType = 'runbook' AND ExecutionStatus = 'Running' AND RunbookStatus = 'awaiting-approval' AND " +
        "TaskQueue = 'q); DROP'",
    );
  });
});

describe('suppressed remediation reasons, from the guard', () => {
  const roomy: Limits = {
    maxTargets: 100,
    concurrencyPerTarget: 100,
    rate: { max: 100, windowMs: 3600_000 },
    perTarget: { max: 100, windowMs: 3600_000 },
    breaker: { failures: 100, remediations: 100, windowMs: 3600_000, cooldownMs: 3600_000 },
    onResolved: 'record',
  };
  const delivery = (fingerprint: string, targets: string[], limits: Partial<Limits> = {}): AlertDelivery => ({
    alert: { fingerprint, status: 'firing', labels: { alertname: 'X' }, annotations: {}, source: 'test' },
    contentHash: 'c',
    targets,
    limits: { ...roomy, ...limits },
  });
  /** The reason of the second delivery, after a first one that started a run on h1. */
  const second = (
    limits: Partial<Limits>,
    targets = ['h1'],
    prepare?: (s: ReturnType<typeof newGuardState>) => void,
  ) => {
    const s = newGuardState('r');
    expect(decide(s, delivery('f1', ['h1'], limits), 1).answer.outcome).toBe('started');
    prepare?.(s);
    return suppressionReason(decide(s, delivery('f2', targets, limits), 2).answer);
  };

  it('a run started, and a resolution, are not suppressions', () => {
    const s = newGuardState('r');
    expect(suppressionReason(decide(s, delivery('f1', ['h1']), 1).answer)).toBeUndefined();
    const resolved = {
      ...delivery('f1', ['h1']),
      alert: { ...delivery('f1', ['h1']).alert, status: 'resolved' as const },
    };
    expect(suppressionReason(decide(s, resolved, 2).answer)).toBeUndefined();
  });

  it.each<[string, Partial<Limits>, string[]]>([
    ['circuit-breaker', { breaker: { ...roomy.breaker, remediations: 1 } }, ['h2']],
    ['blast-radius', { maxTargets: 1 }, ['h2', 'h3']],
    ['rate-limit', { rate: { max: 1, windowMs: 3600_000 } }, ['h2']],
    ['target-rate-limit', { perTarget: { max: 1, windowMs: 3600_000 } }, ['h1']],
    ['target-concurrency', { concurrencyPerTarget: 1 }, ['h1']],
  ])('%s', (reason, limits, targets) => {
    expect(second(limits, targets)).toBe(reason);
  });

  it('frozen, duplicate and refused', () => {
    expect(second({}, ['h2'], (s) => control(s, { action: 'freeze', by: 'ops', reason: 'change freeze' }, 1))).toBe(
      'frozen',
    );
    const s = newGuardState('r');
    decide(s, delivery('f1', ['h1']), 1);
    expect(suppressionReason(decide(s, delivery('f1', ['h1']), 2).answer)).toBe('duplicate');
    expect(suppressionReason(decide(s, { ...delivery('f3', ['h1']), refused: ['params.x: bad'] }, 3).answer)).toBe(
      'refused',
    );
  });

  it('a breaker that is already open says so too', () => {
    const s = newGuardState('r');
    const tight = { breaker: { ...roomy.breaker, remediations: 1 } };
    decide(s, delivery('f1', ['h1'], tight), 1);
    decide(s, delivery('f2', ['h2'], tight), 2);
    expect(suppressionReason(decide(s, delivery('f3', ['h3'], tight), 3).answer)).toBe('circuit-breaker');
  });
});
