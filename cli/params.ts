// Node side. Param inputs from the command line, one rule for every command that takes them (`plan`, `run`):
// `-p key=value`, repeatable, where a key given twice makes a list (`-p host=a -p host=b` is ["a", "b"]), over
// `--params-json` (a JSON object, as the UI sends). Values stay strings: the runbook's declarations coerce them.
import { UserError } from '../common/errors';

/** `key=value` pairs; a key given twice makes a list. `flag` names the option in messages. */
export function parseParamPairs(pairs: string[], flag = '-p'): Record<string, unknown> {
  // No prototype: a key such as __proto__ or constructor is a plain key (then an unknown param), not dropped.
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new UserError(`${flag} ${pair}: expected key=value.`);
    const key = pair.slice(0, eq);
    const value = pair.slice(eq + 1);
    const prev = Object.prototype.hasOwnProperty.call(out, key) ? out[key] : undefined;
    out[key] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

export interface ParamOptions {
  /** `-p key=value` arguments, in order. */
  param: string[];
  /** `--params-json`: a JSON object of param values. */
  paramsJson?: string;
}

/** The param inputs of a command line: `--params-json`, with each `-p` key replacing that key's JSON value. */
export function paramInputs(opts: ParamOptions): Record<string, unknown> {
  const pairs = parseParamPairs(opts.param);
  if (!opts.paramsJson) return pairs;
  let parsed: unknown;
  try {
    parsed = JSON.parse(opts.paramsJson);
  } catch (err) {
    throw new UserError(`--params-json is not valid JSON: ${(err as Error).message}.`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new UserError('--params-json must be a JSON object of param values.');
  return { ...(parsed as Record<string, unknown>), ...pairs };
}
