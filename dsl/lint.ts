// Pure. Warnings for a valid runbook: raw interpolation, risky runbooks without rollback,
// missing descriptions and timeouts, schedules at times a DST change skips or repeats. They never block a run; `runbook lint` prints them.
import { parseTemplate } from './expr';
import { CODES, type Problem } from './problems';
import type { Reporter } from './rules';
import { walkSteps } from './rules';
import type { RunbookDoc } from './schema';
import { dstWarnings, scheduleProblems } from './schedule-spec';

function strings(value: unknown, path: (string | number)[], out: { text: string; path: (string | number)[] }[]): void {
  if (typeof value === 'string') out.push({ text: value, path });
  else if (Array.isArray(value)) value.forEach((v, i) => strings(v, [...path, i], out));
  else if (value && typeof value === 'object') Object.entries(value).forEach(([k, v]) => strings(v, [...path, k], out));
}

/** `now`: where the DST hazards of a schedule are looked for (the next 400 days). */
export function lintRunbook(rb: RunbookDoc, warn: Reporter, now = new Date()): Problem[] {
  const found: Problem[] = [];
  const w: Reporter = (path, message, code, opts) => {
    const p = warn(path, message, code, opts);
    found.push(p);
    return p;
  };
  const all: { text: string; path: (string | number)[] }[] = [];
  strings(rb.steps, ['steps'], all);
  strings(rb.rollback, ['rollback'], all);
  for (const s of all) {
    try {
      for (const seg of parseTemplate(s.text)) {
        if (seg.kind === 'expr' && seg.raw) {
          w(
            s.path,
            `raw(${seg.source}) inserts the value unquoted: anything in it runs as shell code; quote it unless it is trusted shell syntax`,
            CODES.lintRawInterpolation,
            { offset: seg.offset },
          );
        }
      }
    } catch {
      /* invalid templates are validation errors, not lint */
    }
  }
  const steps = walkSteps(rb);
  const risk = rb.metadata.risk ?? 'medium';
  if (risk !== 'low' && !rb.rollback?.length && !steps.some(({ step }) => step.rollback?.length)) {
    w(
      ['metadata', 'risk'],
      `a ${risk}-risk runbook without any rollback step: a failure leaves hosts as they are`,
      CODES.lintNoRollback,
    );
  }
  if (!rb.metadata.description)
    w(['metadata'], 'no description: operators see it in the UI and in docs', CODES.lintNoDescription, { at: 'key' });
  for (const [name, spec] of Object.entries(rb.params ?? {})) {
    if (!spec.description)
      w(['params', name], `param "${name}" has no description`, CODES.lintNoDescription, { at: 'key' });
  }
  const everything = JSON.stringify([rb.targets, rb.steps, rb.rollback, rb.approval]);
  for (const name of Object.keys(rb.params ?? {})) {
    if (!new RegExp(`params\\s*\\.\\s*${name}\\b`).test(everything))
      w(['params', name], `param "${name}" is never used`, CODES.lintUnusedParam, { at: 'key' });
  }
  for (const { step, path } of steps) {
    if (!step.description && !step.name)
      w([...path, 'id'], `step "${step.id}" has no description`, CODES.lintNoDescription);
    if ((step.ssh || step.http) && !step.timeout && !step.until) {
      w([...path, 'id'], `step "${step.id}" has no timeout; it may run for the default 10m`, CODES.lintNoTimeout);
    }
  }
  const schedule = rb.on?.schedule;
  if (schedule && !scheduleProblems(schedule).length) {
    const warnings = dstWarnings(schedule, now);
    if (warnings.length) w(['on', 'schedule'], warnings.join(' '), CODES.lintScheduleDst, { at: 'key' });
  }
  return found;
}
