// Pure (workflow-safe). Markdown documentation rendered from a runbook: what it does, its params, targets,
// strategy, approvals, steps and rollback, and its triggers.
import { alertLimits, type LabelMatcherDoc } from './alert-rule';
import { describeSchedule } from './schedule-spec';
import type { RunbookDoc, StepDoc } from './schema';

const cell = (s: unknown) =>
  s === undefined
    ? ''
    : String(typeof s === 'string' ? s : JSON.stringify(s))
        .replace(/\|/g, '\\|')
        .replace(/\n/g, ' ');

function stepLine(step: StepDoc, depth: number): string[] {
  const kind =
    (['ssh', 'http', 'sleep', 'approval', 'notify', 'runbook', 'parallel'] as const).find(
      (k) => step[k] !== undefined,
    ) ?? 'step';
  let what = '';
  // A command of several lines (or a script) is a code block under the step; one line stays inline.
  const code = step.ssh?.script ?? (step.ssh?.run?.includes('\n') ? step.ssh.run : undefined);
  if (step.ssh)
    what =
      code !== undefined
        ? `runs ${step.ssh.script !== undefined ? 'this script' : 'this'}${step.ssh.sudo ? ' as root' : ''}`
        : step.ssh.run !== undefined
          ? `\`${step.ssh.run}\``
          : `uploads ${step.ssh.upload?.src} to ${step.ssh.upload?.dest}`;
  if (step.ssh?.sudo && code === undefined) what += ' (sudo)';
  if (step.ssh?.login) what += ` (logs in as \`${step.ssh.login.user}\` with ${step.ssh.login.password})`;
  if (step.targets !== undefined) what += ` on \`${step.targets}\``;
  if (step.http) what = `${step.http.method ?? 'GET'} \`${step.http.url}\``;
  if (step.sleep) what = `waits ${step.sleep}`;
  if (step.approval)
    what = `waits for approval by ${[...(step.approval.approvers.users ?? []), ...(step.approval.approvers.groups ?? []).map((g) => `group ${g}`)].join(', ')}`;
  if (step.notify) what = `notifies ${step.notify.channel}`;
  if (step.runbook) what = `runs runbook \`${step.runbook.name}\``;
  if (step.parallel) what = 'runs in parallel:';
  const extras = [
    step.when && `when \`${step.when}\``,
    step.until && `until it succeeds, every ${step.until.every} for up to ${step.until.timeout}`,
    step.timeout && `timeout ${step.timeout}`,
    step.retry && `${step.retry.attempts} attempts`,
    step.continueOnError && 'failure does not stop the run',
  ].filter(Boolean);
  const lines = [
    `${'  '.repeat(depth)}1. **${step.id}** (${kind}): ${what}${step.description ? ` — ${step.description}` : ''}${extras.length ? ` _(${extras.join('; ')})_` : ''}`,
  ];
  if (code !== undefined) {
    const indent = `${'  '.repeat(depth)}   `;
    const fence = '`'.repeat(Math.max(3, ...(code.match(/`+/g) ?? []).map((f) => f.length + 1)));
    lines.push(
      '',
      `${indent}${fence}sh`,
      ...code
        .trimEnd()
        .split('\n')
        .map((l) => `${indent}${l}`),
      `${indent}${fence}`,
      '',
    );
  }
  for (const child of step.parallel?.steps ?? []) lines.push(...stepLine(child, depth + 1));
  if (step.rollback?.length) {
    lines.push(`${'  '.repeat(depth + 1)}- rollback:`);
    for (const r of step.rollback) lines.push(...stepLine(r, depth + 2));
  }
  return lines;
}

export function runbookMarkdown(rb: RunbookDoc, contentHash?: string): string {
  const m = rb.metadata;
  const out: string[] = [`# ${m.name}`, '', m.description ?? '_No description._', ''];
  out.push(`- **Risk:** ${m.risk ?? 'medium'}${m.owner ? `  \n- **Owner:** ${m.owner}` : ''}`);
  if (contentHash) out.push(`- **Version (sha256):** \`${contentHash.slice(0, 16)}\``);
  out.push(`- **Targets:** ${rb.targets ? `\`${rb.targets}\`` : 'none (runs once)'}`);
  const s = rb.strategy;
  out.push(
    `- **Strategy:** ${s?.type ?? 'rolling'}${s?.type !== 'parallel' ? `, batches of ${JSON.stringify(s?.batch ?? 1)}` : s.limit ? `, at most ${s.limit} at once` : ''}, tolerating ${s?.maxFailures ?? 0} failures`,
  );
  out.push(`- **Host locks:** ${rb.locks?.hosts ?? 'wait'}`);
  if (rb.approval)
    out.push(
      `- **Approval before any change:** ${rb.approval.quorum ?? 1} of ${[...(rb.approval.approvers.users ?? []), ...(rb.approval.approvers.groups ?? []).map((g) => `group ${g}`)].join(', ')}, within ${rb.approval.timeout ?? '1h'} (then ${rb.approval.onTimeout ?? 'reject'})`,
    );
  out.push('');
  const params = Object.entries(rb.params ?? {});
  if (params.length) {
    out.push(
      '## Parameters',
      '',
      '| name | type | required | default | description |',
      '| --- | --- | --- | --- | --- |',
    );
    for (const [name, p] of params) {
      const type =
        p.type === 'enum'
          ? `enum: ${(p.values ?? []).join(', ')}`
          : p.type === 'list'
            ? `list of ${p.items ?? 'string'}`
            : p.type;
      const constraints = [
        p.pattern && `pattern \`${p.pattern}\``,
        p.min !== undefined && `min ${p.min}`,
        p.max !== undefined && `max ${p.max}`,
      ]
        .filter(Boolean)
        .join(', ');
      out.push(
        `| \`${name}\` | ${cell(type)} | ${(p.required ?? p.default === undefined) ? 'yes' : 'no'} | ${p.default === undefined ? '' : `\`${cell(p.default)}\``} | ${cell(p.description)}${constraints ? ` (${cell(constraints)})` : ''} |`,
      );
    }
    out.push('');
  }
  if (rb.secrets && Object.keys(rb.secrets).length) {
    out.push('## Secrets', '');
    for (const [name, sec] of Object.entries(rb.secrets))
      out.push(
        `- \`${name}\` from ${sec.provider}${sec.generate ? ` (generated by each run, ${sec.generate.length ?? 24} characters)` : ''}${sec.description ? `: ${sec.description}` : ''}`,
      );
    out.push('');
  }
  out.push('## Steps', '', ...rb.steps.flatMap((st) => stepLine(st, 0)), '');
  if (rb.rollback?.length)
    out.push(
      '## Rollback',
      '',
      'On a failure or a cancel, newest first:',
      '',
      ...rb.rollback.flatMap((st) => stepLine(st, 0)),
      '',
    );
  if (rb.on) {
    out.push('## Triggers', '');
    if (rb.on.alert) {
      const l = alertLimits(rb.on.alert);
      const matcher = ([k, v]: [string, LabelMatcherDoc]) =>
        typeof v === 'string'
          ? `\`${k}="${v}"\``
          : 'regex' in v
            ? `\`${k}=~"${v.regex}"\``
            : 'not' in v
              ? `\`${k}!="${v.not}"\``
              : `\`${k}!~"${v.notRegex}"\``;
      out.push(
        `- Alert matching ${Object.entries(rb.on.alert.match).map(matcher).join(', ')}` +
          `${
            rb.on.alert.params
              ? `; params ${Object.entries(rb.on.alert.params)
                  .map(([k, v]) => `\`${k}: ${v}\``)
                  .join(', ')}`
              : ''
          }`,
        `  - guardrails: at most ${l.maxTargets} target(s) per run and ${l.concurrencyPerTarget} at once per target; ` +
          `${l.rate.max} runs per ${l.rate.windowMs / 60_000} min, ${l.perTarget.max} per target per ${l.perTarget.windowMs / 60_000} min; ` +
          `breaker after ${l.breaker.failures} failures or ${l.breaker.remediations} runs in ${l.breaker.windowMs / 60_000} min; ` +
          `on resolution: ${l.onResolved}`,
      );
    }
    if (rb.on.schedule) out.push(`- Schedule: ${describeSchedule(rb.on.schedule)}`);
    if (rb.window)
      out.push(
        `- Change window: ${rb.window.calendars.join(' + ')} (${rb.window.policy ?? 'wait'} when closed${rb.window.cutoff ? `, cutoff ${rb.window.cutoff}` : ''})`,
      );
    out.push('');
  }
  return out.join('\n');
}
