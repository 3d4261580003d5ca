// Node side. Loads a runbook file in passes (YAML with positions, JSON Schema, cross-field rules) and reports
// every problem at once. Only a runbook with no errors is returned, with the sha256 of its exact bytes.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../common/errors';
import { CODES, sortProblems, type Problem } from './problems';
import { checkRules } from './rules';
import { runbookJsonSchema, type RunbookDoc } from './schema';
import { validateAgainstSchema } from './validate';
import { parseYamlSource, refusedSource, RUNBOOK_MAX_BYTES, tooLargeProblem, type YamlSource } from './yaml-source';

export interface LoadedRunbook {
  /** Present only when there are no errors. */
  runbook?: RunbookDoc;
  problems: Problem[];
  /** sha256 (hex) of the file's bytes: the version a run pins. */
  contentHash: string;
  file: string;
  source: YamlSource;
}

const schema = runbookJsonSchema();

export function loadRunbookText(file: string, text: string): LoadedRunbook {
  const contentHash = crypto.createHash('sha256').update(text).digest('hex');
  const src = parseYamlSource(file, text);
  const problems = [...src.problems];
  if (!src.broken && (src.data === null || src.data === undefined)) {
    problems.push(
      src.problem(
        [],
        'the file is empty: a runbook is a mapping with apiVersion, kind, metadata and steps',
        CODES.wrongType,
      ),
    );
  } else if (!src.broken) {
    const schemaProblems = validateAgainstSchema(schema, src);
    problems.push(...schemaProblems);
    if (schemaProblems.length === 0) {
      const rb = src.data as RunbookDoc;
      checkRules(rb, (p, message, code, opts) => {
        const problem = src.problem(p, message, code, opts);
        problems.push(problem);
        return problem;
      });
      const stem = path.basename(file).replace(/\.ya?ml$/, '');
      if (stem !== rb.metadata.name && /\.ya?ml$/.test(file)) {
        problems.push(
          src.problem(
            ['metadata', 'name'],
            `name "${rb.metadata.name}" does not match the file name "${path.basename(file)}"; runbooks are found by name, so call the file ${rb.metadata.name}.yaml`,
            CODES.nameMismatch,
          ),
        );
      }
    }
  }
  const sorted = sortProblems(problems);
  const ok = !sorted.some((p) => p.severity === 'error');
  return { runbook: ok ? (src.data as RunbookDoc) : undefined, problems: sorted, contentHash, file, source: src };
}

export function loadRunbookFile(file: string): LoadedRunbook {
  let text: string;
  try {
    const bytes = fs.statSync(file).size;
    if (bytes > RUNBOOK_MAX_BYTES) {
      // Not even read: the size alone refuses it.
      const problem = tooLargeProblem(file, bytes);
      return { problems: [problem], contentHash: '', file, source: refusedSource(file, '', problem) };
    }
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(
      `Cannot read runbook ${file}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}.`,
      { cause: err },
    );
  }
  return loadRunbookText(file, text);
}

/**
 * Whether a file name in a runbook directory is a runbook's: NAME.yaml or NAME.yml, not an inventory and not the
 * calendar file (calendars.yaml), which live there too.
 */
export function isRunbookFileName(name: string): boolean {
  return /^[a-z][a-z0-9-]*\.ya?ml$/.test(name) && !name.includes('inventory') && !/^calendars\.ya?ml$/.test(name);
}

/** Thrown when a runbook is named (not given by path) and the runbooks directory has no file of that name. */
export class RunbookNotFoundError extends UserError {
  override name = 'RunbookNotFoundError' as const;
}

/**
 * A runbook by name (`dir`/NAME.yaml) or by path (anything ending in .yaml/.yml or containing a slash). `dir` is
 * the runbooks directory (RUNBOOK_DIR, read in worker/config.ts).
 */
export function resolveRunbookPath(nameOrPath: string, dir: string): string {
  if (/\.ya?ml$/.test(nameOrPath) || nameOrPath.includes('/')) return nameOrPath;
  for (const ext of ['.yaml', '.yml']) {
    const candidate = path.join(dir, nameOrPath + ext);
    if (fs.existsSync(candidate)) return candidate;
  }
  const known = fs.existsSync(dir)
    ? fs
        .readdirSync(dir)
        .filter(isRunbookFileName)
        .map((f) => f.replace(/\.ya?ml$/, ''))
    : [];
  throw new RunbookNotFoundError(
    `No runbook named "${nameOrPath}" in ${dir}${known.length ? ` (there are: ${known.join(', ')})` : ''}. Give a name from that directory, a path to a YAML file, or set RUNBOOK_DIR.`,
  );
}
