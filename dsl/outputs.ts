// Pure (workflow-safe). Step outputs: values captured from a step's result (stdout, exit code, a JSON field,
// an HTTP status or body), available to later steps as steps.ID.outputs.NAME.
import { failureClass, FAILURES } from '../common/failure-types';
import { evaluate } from './expr';
import type { StepDoc } from './schema';

export interface StepResultView {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
  status?: number;
  body?: string;
  json?: unknown;
}

/** Thrown when an output cannot be extracted (e.g. the JSON path is missing). */
export class OutputError extends failureClass(FAILURES.output) {}

function parseJson(text: string | undefined): unknown {
  try {
    return JSON.parse(text ?? '');
  } catch {
    throw new OutputError('output is not JSON');
  }
}

export function extractOutputs(step: StepDoc, result: StepResultView): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(step.outputs ?? {})) {
    const trim = spec.trim ?? true;
    const text = (s: string | undefined) => (trim ? (s ?? '').trim() : (s ?? ''));
    switch (spec.from) {
      case 'stdout':
        out[name] = text(result.stdout);
        break;
      case 'stderr':
        out[name] = text(result.stderr);
        break;
      case 'exitCode':
        out[name] = result.exitCode;
        break;
      case 'status':
        out[name] = result.status;
        break;
      case 'body':
        out[name] = text(result.body);
        break;
      case 'json': {
        const doc = result.json !== undefined ? result.json : parseJson(result.stdout);
        try {
          out[name] = spec.path ? evaluate(`json.${spec.path}`, { json: doc }) : doc;
        } catch (err) {
          throw new OutputError(`output "${name}": ${(err as Error).message}`);
        }
        break;
      }
    }
  }
  return out;
}
