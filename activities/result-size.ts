// Node side. What a step activity hands back to the workflow is recorded in its history, where Temporal refuses a
// payload over 2 MiB and a workflow task completion over 4 MiB; a refused one fails the workflow task again and
// again, wedging the run. So a step's outputs are extracted here from its whole output, and what goes back is
// bounded: the tails of stdout and stderr (or of an HTTP body), the outputs, and nothing else large. The whole
// stdout's size and sha256 are kept for the audit trail.
import { extractOutputs, OutputError, type StepResultView } from '../dsl/outputs';
import type { StepDoc } from '../dsl/schema';

/** Bytes of each kind kept in a result that goes to history. */
export const HISTORY_LIMITS = {
  stdout: 8 * 1024,
  stderr: 4 * 1024,
  body: 8 * 1024,
  /** A parsed JSON body kept beside a cut body, for `until` conditions over `result.json`. */
  json: 32 * 1024,
  /** A step's outputs together (as JSON). */
  outputs: 64 * 1024,
  /** stdout and stderr of each finished step of a group, once its outputs are taken (the audit keeps 1 KiB). */
  groupStep: 2 * 1024,
  /** A step group hands back at most about this much (results and outputs); the workflow goes on with the rest. */
  group: 256 * 1024,
} as const;

/** The last `max` bytes of a string (on a character boundary). */
export function tailBytes(text: string, max: number): string {
  if (text.length <= max / 4 || Buffer.byteLength(text) <= max) return text;
  const buf = Buffer.from(text, 'utf8').subarray(-max);
  let start = 0;
  while (start < buf.length && (buf[start]! & 0xc0) === 0x80) start++; // skip a split character's continuation bytes
  return buf.subarray(start).toString('utf8');
}

interface Sized extends StepResultView {
  truncated?: boolean;
  outputs?: Record<string, unknown>;
}

/** The step's outputs from its whole result, refused when they are too large for history. */
export function outputsFor(
  spec: StepDoc['outputs'] | undefined,
  stepId: string,
  result: StepResultView,
): Record<string, unknown> {
  const outputs = extractOutputs({ id: stepId, outputs: spec } as StepDoc, result);
  const size = Buffer.byteLength(JSON.stringify(outputs) ?? '');
  if (size > HISTORY_LIMITS.outputs) {
    throw new OutputError(
      `the outputs of step "${stepId}" are ${Math.ceil(size / 1024)} KiB; outputs are limited to ${HISTORY_LIMITS.outputs / 1024} KiB ` +
        "(capture a field with `path`, or filter the command's output)",
    );
  }
  return outputs;
}

/** A copy of `result` small enough for history: stream and body tails; `json` unless it is large too. */
export function bounded<T extends Sized>(
  result: T,
  limits: { stdout: number; stderr: number; body: number } = HISTORY_LIMITS,
): T {
  const out: T = { ...result };
  let cut = false;
  for (const [field, max] of [
    ['stdout', limits.stdout],
    ['stderr', limits.stderr],
    ['body', limits.body],
  ] as const) {
    const text = out[field];
    if (typeof text !== 'string') continue;
    const kept = tailBytes(text, max);
    if (kept !== text) {
      out[field] = kept;
      cut = true;
      if (field === 'body' && Buffer.byteLength(JSON.stringify(out.json) ?? '') > HISTORY_LIMITS.json) delete out.json;
    }
  }
  if (cut && 'truncated' in out) out.truncated = true;
  return out;
}
