// Node side. YAML with positions: parse once, report syntax errors and duplicate keys as located problems, and
// map a field path back to line:col for every later check. Before parsing, a document is held to limits of size
// and nesting depth (the parser, toJS and every later pass recurse, and a deep enough document takes the process
// down with a native out-of-memory abort rather than an exception); aliases may expand only so far.
import {
  CST,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Lexer,
  LineCounter,
  parseDocument,
  type Document,
  type Node,
  type Pair,
  type YAMLMap,
} from 'yaml';
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
  problem(
    path: FieldPath,
    message: string,
    code: Code,
    opts?: { at?: 'key' | 'value'; severity?: 'error' | 'warning'; offset?: number },
  ): Problem;
}

/** Lists and mappings inside each other, at most. Runbooks and inventories need a dozen or so. */
export const YAML_MAX_DEPTH = 100;
/** Alias resolutions (the yaml library's `maxAliasCount`): refuses "billion laughs" documents. */
export const YAML_MAX_ALIAS_COUNT = 100;
/** A runbook's largest size: its JSON travels in workflow history, whose payloads Temporal caps at 2 MB anyway. */
export const RUNBOOK_MAX_BYTES = 2 * 1024 * 1024;

export interface YamlLimits {
  /** @default RUNBOOK_MAX_BYTES */
  maxBytes?: number;
  /** What the file is, for the size message. @default 'a runbook' */
  what?: string;
}

const MiB = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1).replace(/\.0$/, '')} MiB`;

/** The problem of a file over its size limit (no position: it is about the whole file). */
export function tooLargeProblem(file: string, bytes: number, limits: YamlLimits = {}): Problem {
  const max = limits.maxBytes ?? RUNBOOK_MAX_BYTES;
  return {
    file,
    line: 0,
    col: 0,
    path: '',
    severity: 'error',
    code: CODES.tooLarge,
    message: `the file is ${MiB(bytes)} (${bytes} bytes), more than the ${MiB(max)} ${limits.what ?? 'a runbook'} may have; refusing to parse it`,
  };
}

/** What a pass over the lexer's tokens found: where the document first nests too deep, and its first alias. */
export interface YamlScan {
  tooDeepAt?: number;
  firstAliasAt?: number;
}

/**
 * One pass over the lexer's flat token stream, building nothing and stopping at the first node deeper than
 * `max`: a pathological document costs only as much as its first `max` levels. Flow collections are counted
 * exactly. Block nesting is estimated from columns: a node starting a line, or following a `-`, `?` or `:`
 * indicator on its line, sits inside every open node at a smaller column. That can count a scalar as a level and
 * merges a sequence written at its parent key's indentation into the parent, so it stays within a factor of two
 * of the real depth, which is all a limit needs.
 */
export function scanYaml(text: string, max = YAML_MAX_DEPTH): YamlScan {
  let offset = 0;
  let lineStart = 0;
  let flow = 0;
  let opensNode = true;
  let scalarSource = false;
  let blockBody = false;
  let firstAliasAt: number | undefined;
  const columns: number[] = [];
  /** A token that starts a node: at a line start or after an indicator it nests in the open block nodes. */
  const starts = (at: number): boolean => {
    if (opensNode && flow === 0) {
      const col = at - lineStart;
      while (columns.length > 0 && columns[columns.length - 1]! >= col) columns.pop();
      columns.push(col);
    }
    opensNode = false;
    return columns.length + flow > max;
  };
  for (const tok of new Lexer().lex(text)) {
    if (tok === CST.SCALAR) {
      scalarSource = true;
      continue;
    }
    if (tok === CST.DOCUMENT) continue;
    if (tok === CST.FLOW_END) {
      flow = 0;
      continue;
    }
    const at = offset;
    offset += tok.length;
    const newline = tok.lastIndexOf('\n');
    if (newline >= 0) lineStart = at + newline + 1;
    if (scalarSource) {
      scalarSource = false;
      if (blockBody) blockBody = false;
      else if (starts(at)) return { tooDeepAt: at, firstAliasAt };
      continue;
    }
    switch (CST.tokenType(tok)) {
      case 'newline':
        opensNode = true;
        break;
      case 'byte-order-mark':
      case 'space':
      case 'comment':
      case 'comma':
      case 'directive-line':
        break;
      case 'doc-start':
      case 'doc-end':
        columns.length = 0;
        flow = 0;
        opensNode = true;
        break;
      case 'flow-seq-start':
      case 'flow-map-start':
        starts(at);
        flow += 1;
        if (columns.length + flow > max) return { tooDeepAt: at, firstAliasAt };
        break;
      case 'flow-seq-end':
      case 'flow-map-end':
        flow = Math.max(0, flow - 1);
        break;
      case 'seq-item-ind':
      case 'explicit-key-ind':
      case 'map-value-ind':
        if (starts(at)) return { tooDeepAt: at, firstAliasAt };
        opensNode = flow === 0;
        break;
      case 'block-scalar-header':
        if (starts(at)) return { tooDeepAt: at, firstAliasAt };
        blockBody = true;
        break;
      case 'alias':
        firstAliasAt ??= at;
        if (starts(at)) return { tooDeepAt: at, firstAliasAt };
        break;
      default: // anchors, tags, quoted scalars
        if (starts(at)) return { tooDeepAt: at, firstAliasAt };
    }
  }
  return { firstAliasAt };
}

function linePos(text: string, offset: number): { line: number; col: number } {
  let line = 1;
  let start = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < offset; i = text.indexOf('\n', i + 1)) {
    line += 1;
    start = i + 1;
  }
  return { line, col: offset - start + 1 };
}

/** The limit a document breaks before it is parsed (size, then depth) as a located problem, and the scan. */
export function checkYamlLimits(
  file: string,
  text: string,
  limits: YamlLimits = {},
): { problem?: Problem; scan?: YamlScan } {
  const bytes = Buffer.byteLength(text);
  if (bytes > (limits.maxBytes ?? RUNBOOK_MAX_BYTES)) return { problem: tooLargeProblem(file, bytes, limits) };
  const scan = scanYaml(text);
  if (scan.tooDeepAt === undefined) return { scan };
  return {
    scan,
    problem: {
      file,
      ...linePos(text, scan.tooDeepAt),
      path: '',
      severity: 'error',
      code: CODES.tooDeep,
      message: `nesting deeper than ${YAML_MAX_DEPTH} levels of lists and mappings; refusing to parse further`,
    },
  };
}

/** A source for a document refused before parsing: no data, one problem. */
export function refusedSource(file: string, text: string, problem: Problem): YamlSource {
  const at = { line: problem.line || 1, col: problem.col || 1 };
  return {
    file,
    text,
    data: undefined,
    problems: [problem],
    broken: true,
    locate: () => at,
    problem: (path, message, code, opts = {}) => ({
      file,
      ...at,
      path: pathString(path),
      message,
      code,
      severity: opts.severity ?? 'error',
    }),
  };
}

export function parseYamlSource(file: string, text: string, limits: YamlLimits = {}): YamlSource {
  const { problem: refused, scan } = checkYamlLimits(file, text, limits);
  if (refused) return refusedSource(file, text, refused);
  const lineCounter = new LineCounter();
  // Duplicate keys are found below in one pass: the library's own check compares each key with every earlier one.
  const doc: Document = parseDocument(text, { lineCounter, uniqueKeys: false, prettyErrors: true, strict: true });
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
    const hint =
      !duplicate && /\{[^}'"]*\$\{\{/.test(line)
        ? '; a value containing ${{ }} inside a { } flow mapping must be quoted'
        : '';
    const message = duplicate
      ? `duplicate key${keyAt(text, err.pos[0])}: a key may appear once per mapping`
      : `YAML syntax error: ${err.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '')}${hint}`;
    problems.push({
      file,
      line: pos.line,
      col: pos.col,
      path: '',
      message,
      code: duplicate ? CODES.duplicateKey : CODES.yamlSyntax,
      severity: 'error',
    });
  }
  for (const offset of duplicateKeys(doc)) {
    const pos = lineCounter.linePos(offset);
    problems.push({
      file,
      line: pos.line,
      col: pos.col,
      path: '',
      message: `duplicate key${keyAt(text, offset)}: a key may appear once per mapping`,
      code: CODES.duplicateKey,
      severity: 'error',
    });
  }
  let data: unknown;
  if (!broken) {
    try {
      data = doc.toJS({ maxAliasCount: YAML_MAX_ALIAS_COUNT });
      // Aliases can nest a value in itself (a cycle) or deeper than the text shows.
      const shape = scan?.firstAliasAt === undefined ? undefined : aliasedShape(data, YAML_MAX_DEPTH);
      if (shape) {
        broken = true;
        data = undefined;
        problems.push(aliasProblem(file, lineCounter.linePos(scan!.firstAliasAt!), shape));
      }
    } catch (err) {
      broken = true;
      problems.push(
        aliasProblem(
          file,
          lineCounter.linePos(scan?.firstAliasAt ?? 0),
          err instanceof Error ? err.message : String(err),
        ),
      );
    }
  }

  /** Each mapping's pairs by key (the first of duplicates, as a search would find), built when first asked. */
  const indexes = new WeakMap<object, Map<string, Pair>>();
  const pairOf = (map: YAMLMap, key: string): Pair | undefined => {
    let index = indexes.get(map);
    if (!index) {
      index = new Map();
      for (const p of map.items)
        if (isPair(p) && isScalar(p.key) && !index.has(String(p.key.value))) index.set(String(p.key.value), p);
      indexes.set(map, index);
    }
    return index.get(key);
  };

  const nodeAt = (path: FieldPath, at: 'key' | 'value'): Node | undefined => {
    let node: unknown = doc.contents;
    let found: Node | undefined = doc.contents ?? undefined;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = pairOf(node, String(seg));
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
    file,
    text,
    data,
    problems,
    broken,
    locate,
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
      return {
        file,
        line: pos.line,
        col: pos.col,
        path: pathString(path),
        message,
        code,
        severity: opts.severity ?? 'error',
      };
    },
  };
}

/** toJS failed or its value is unusable: aliases gone too far (located at the first alias), or anything else. */
function aliasProblem(file: string, firstAlias: { line: number; col: number }, message: string): Problem {
  if (!/alias/i.test(message))
    return {
      file,
      line: 1,
      col: 1,
      path: '',
      message: `YAML error: ${message}`,
      code: CODES.yamlSyntax,
      severity: 'error',
    };
  const what = /resource exhaustion/.test(message)
    ? `aliases expand to too much data (more than ${YAML_MAX_ALIAS_COUNT} alias resolutions, as in a "billion laughs" document)`
    : message;
  return {
    file,
    ...firstAlias,
    path: '',
    severity: 'error',
    code: CODES.aliasLimit,
    message: `${what}; write the values out or use fewer aliases`,
  };
}

/**
 * What is wrong with a value built through aliases, if anything: a cycle (an alias inside the node it names) or
 * nesting deeper than `max`. One pass over the distinct objects (shared ones are measured once), without recursion.
 */
export function aliasedShape(root: unknown, max: number): string | undefined {
  const depth = new Map<object, number>();
  const onPath = new Set<object>();
  const children = (v: object): unknown[] => (Array.isArray(v) ? v : Object.values(v));
  if (!root || typeof root !== 'object') return undefined;
  const stack: { node: object; items: unknown[]; i: number; deepest: number }[] = [
    { node: root, items: children(root), i: 0, deepest: 0 },
  ];
  onPath.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    if (top.i < top.items.length) {
      const child = top.items[top.i++];
      if (!child || typeof child !== 'object') continue;
      if (onPath.has(child)) return 'an alias refers to a node that contains it, which makes an endless value';
      const known = depth.get(child);
      if (stack.length + (known ?? 1) > max) return `aliases nest values deeper than ${max} levels`;
      if (known !== undefined) {
        top.deepest = Math.max(top.deepest, known);
        continue;
      }
      onPath.add(child);
      stack.push({ node: child, items: children(child), i: 0, deepest: 0 });
      continue;
    }
    stack.pop();
    onPath.delete(top.node);
    depth.set(top.node, top.deepest + 1);
    const parent = stack[stack.length - 1];
    if (parent) parent.deepest = Math.max(parent.deepest, top.deepest + 1);
  }
  return undefined;
}

/** Offsets of keys repeated within their mapping (scalar keys, compared by value as the library does), in one pass. */
function duplicateKeys(doc: Document): number[] {
  const found: number[] = [];
  const todo: unknown[] = [doc.contents];
  while (todo.length > 0) {
    const node = todo.pop();
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        if (isScalar(pair.key)) {
          if (seen.has(pair.key.value) && pair.key.range) found.push(pair.key.range[0]);
          seen.add(pair.key.value);
        } else {
          todo.push(pair.key);
        }
        todo.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) todo.push(item);
    } else if (isPair(node)) {
      todo.push(node.key, node.value);
    }
  }
  return found;
}

function keyAt(text: string, offset: number): string {
  const m = /^["']?([^"':\n]+)/.exec(text.slice(offset));
  return m?.[1] ? ` "${m[1].trim()}"` : '';
}
