// Node side. YAML with positions: parse once, report syntax errors and duplicate keys as located problems, and
// map a field path back to line:col for every later check.
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from 'yaml';
import { CODES, pathString, type Code, type Problem } from './problems';

export type FieldPath = (string | number)[];

/** After a syntax error the parser is guessing; what it reports next is mostly echoes of the first error. */
const MAX_SYNTAX_ERRORS = 1;

export interface YamlSource {
  file: string;
  text: string;
  data: unknown;
  problems: Problem[];
  /** True when the document could not be read reliably (syntax errors): skip further checks. */
  broken: boolean;
  /** line:col of the value at `path` (or of its key, with `at: 'key'`); falls back to the nearest ancestor. */
  locate(path: FieldPath, at?: 'key' | 'value'): { line: number; col: number };
  /** A located problem at `path`. */
  problem(path: FieldPath, message: string, code: Code, opts?: { at?: 'key' | 'value'; severity?: 'error' | 'warning'; offset?: number }): Problem;
}

export function parseYamlSource(file: string, text: string): YamlSource {
  const lineCounter = new LineCounter();
  const doc: Document = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: true, strict: true });
  const problems: Problem[] = [];
  let broken = false;
  const syntaxLines = new Set<number>();
  const lines = text.split('\n');
  for (const err of doc.errors) {
    const pos = lineCounter.linePos(err.pos[0]);
    const duplicate = err.code === 'DUPLICATE_KEY';
    if (!duplicate) {
      broken = true;
      // Only the first syntax error; later ones are echoes of it.
      if (syntaxLines.has(pos.line) || syntaxLines.size >= MAX_SYNTAX_ERRORS) continue;
      syntaxLines.add(pos.line);
    }
    const line = lines[pos.line - 1] ?? '';
    const hint = !duplicate && /\{[^}'"]*\$\{\{/.test(line) ? '; a value containing ${{ }} inside a { } flow mapping must be quoted' : '';
    const message = duplicate
      ? `duplicate key${keyAt(text, err.pos[0])}: a key may appear once per mapping`
      : `YAML syntax error: ${err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}${hint}`;
    problems.push({ file, line: pos.line, col: pos.col, path: '', message, code: duplicate ? CODES.duplicateKey : CODES.yamlSyntax, severity: 'error' });
  }
  let data: unknown;
  if (!broken) {
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      broken = true;
      problems.push({ file, line: 1, col: 1, path: '', message: `YAML error: ${(err as Error).message}`, code: CODES.yamlSyntax, severity: 'error' });
    }
  }

  const nodeAt = (path: FieldPath, at: 'key' | 'value'): Node | undefined => {
    let node: unknown = doc.contents;
    let found: Node | undefined = doc.contents ?? undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) return found;
        if (last && at === 'key') return pair.key as Node;
        node = pair.value;
        found = (pair.value as Node | null) ?? (pair.key as Node);
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        if (!node) return found;
        found = node as Node;
      } else {
        return found;
      }
    }
    return found;
  };

  const locate = (path: FieldPath, at: 'key' | 'value' = 'value') => {
    const node = nodeAt(path, at);
    const offset = node?.range?.[0] ?? 0;
    return lineCounter.linePos(offset);
  };

  return {
    file, text, data, problems, broken, locate,
    problem(path, message, code, opts = {}) {
      let pos = locate(path, opts.at ?? 'value');
      if (opts.offset) {
        const node = nodeAt(path, 'value');
        // Inside a plain or quoted scalar on one line, point at the offending character.
        if (node && isScalar(node) && node.range && typeof node.value === 'string') {
          const srcStart = node.range[0];
          const quoted = text[srcStart] === '"' || text[srcStart] === "'";
          const src = text.slice(srcStart + (quoted ? 1 : 0), node.range[1]);
          if (!src.includes('\n') && src.startsWith(node.value.slice(0, Math.min(opts.offset, 10)))) {
            pos = lineCounter.linePos(srcStart + (quoted ? 1 : 0) + opts.offset);
          }
        }
      }
      return { file, line: pos.line, col: pos.col, path: pathString(path), message, code, severity: opts.severity ?? 'error' };
    },
  };
}

function keyAt(text: string, offset: number): string {
  const m = /^["']?([^"':\n]+)/.exec(text.slice(offset));
  return m?.[1] ? ` "${m[1].trim()}"` : '';
}
