// Pure (workflow-safe). A problem found in a runbook, its params or an inventory: where, what, and a stable code.

/** Stable codes. 10xx syntax, 11xx schema, 12xx cross-field rules, 13xx params, 14xx inventory/targets, 20xx lint. */
export const CODES = {
  yamlSyntax: 'RB1001',
  duplicateKey: 'RB1002',
  notFound: 'RB1003',
  tooDeep: 'RB1004',
  tooLarge: 'RB1005',
  aliasLimit: 'RB1006',
  unknownKey: 'RB1101',
  wrongType: 'RB1102',
  missingField: 'RB1103',
  notAllowedValue: 'RB1104',
  badFormat: 'RB1105',
  badName: 'RB1106',
  outOfRange: 'RB1107',
  duplicateStepId: 'RB1201',
  unknownParam: 'RB1202',
  unknownStep: 'RB1203',
  badExpression: 'RB1204',
  unknownSecret: 'RB1205',
  approvalRequired: 'RB1206',
  stepKind: 'RB1207',
  sshAction: 'RB1208',
  badDefault: 'RB1209',
  paramShape: 'RB1210',
  unknownVariable: 'RB1211',
  badPattern: 'RB1212',
  unknownOutput: 'RB1213',
  nameMismatch: 'RB1214',
  expressionTooComplex: 'RB1215',
  badSchedule: 'RB1216',
  unknownCalendar: 'RB1217',
  inputUnknown: 'RB1301',
  inputMissing: 'RB1302',
  inputType: 'RB1303',
  inputPattern: 'RB1304',
  inputRange: 'RB1305',
  inputEnum: 'RB1306',
  inputTargets: 'RB1307',
  inputSecret: 'RB1308',
  unknownHost: 'RB1401',
  unknownGroup: 'RB1402',
  noTargets: 'RB1403',
  badSelector: 'RB1404',
  inventoryShape: 'RB1405',
  lintRawInterpolation: 'RB2001',
  lintNoRollback: 'RB2002',
  lintNoDescription: 'RB2003',
  lintNoTimeout: 'RB2004',
  lintUnusedParam: 'RB2005',
  lintScheduleDst: 'RB2006',
} as const;

export type Code = (typeof CODES)[keyof typeof CODES];

export interface Problem {
  file: string;
  /** 1-based; 0 when the problem has no place in a file (e.g. a CLI input). */
  line: number;
  col: number;
  /** Field path like `steps[1].ssh.run`, or `params.service` for an input. */
  path: string;
  message: string;
  code: Code;
  severity: 'error' | 'warning';
}

/** `file:line:col: path: message [RBnnnn]`, the form every tool prints. */
export function formatProblem(p: Problem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  return `${where}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.path ? `${p.path}: ` : ''}${p.message} [${p.code}]`;
}

/** `steps[1].ssh.run` from ['steps', 1, 'ssh', 'run']. */
export function pathString(path: readonly (string | number)[]): string {
  return path.reduce<string>(
    (acc, seg) => (typeof seg === 'number' ? `${acc}[${seg}]` : acc ? `${acc}.${seg}` : seg),
    '',
  );
}

/** Orders problems by file, line, column. */
export function sortProblems(problems: Problem[]): Problem[] {
  return [...problems].sort(
    (a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.col - b.col || a.code.localeCompare(b.code),
  );
}
