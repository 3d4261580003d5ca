// Unit: what an SSH step's exec returned, turned into the wrapper's outcome or the typed error that says why there is
// none (retryable when a retry is safe: it re-attaches, or nothing had started), and the run-scoped record key.
import crypto from 'node:crypto';
import { FINAL_FAILURES, isIn } from '../../common/failure-types';
import { stepRecordKey, wrapperOutcome } from '../../activities/ssh/step';

const retryable = (name: string) => !isIn(FINAL_FAILURES, name);

test.each([
  [
    'input arrived incomplete: nothing started',
    { exitCode: 242, signal: null, stderr: '\n__RUNBOOK_WRAPPER__ input=incomplete\n' },
    'SshInputIncomplete',
    "The step's input reached host-1 incomplete (the connection was lost while it was sent), so nothing was started. A retry sends it again.",
    true,
  ],
  [
    'the channel closed without an exit status (connection dropped)',
    { exitCode: null, signal: null, stderr: 'half a line' },
    'SshConnectionLost',
    'The connection to host-1 was lost before the step reported its outcome. A retry re-attaches to the command (it is not run again).',
    true,
  ],
  [
    'the wrapper was killed by a signal before its trailer',
    { exitCode: null, signal: 'KILL', stderr: '' },
    'SshConnectionLost',
    'The connection to host-1 was lost before the step reported its outcome. A retry re-attaches to the command (it is not run again).',
    true,
  ],
  [
    'an exit code and no trailer: the wrapper could not run',
    { exitCode: 127, signal: null, stderr: 'sh: 1: sha256sum: not found\n' },
    'SshWrapperError',
    'The runbook wrapper could not run on host-1 (exit 127): sh: 1: sha256sum: not found. The login user needs a writable home directory, a POSIX sh and coreutils.',
    false,
  ],
  [
    'exit 242 without the incomplete trailer is not mistaken for it',
    { exitCode: 242, signal: null, stderr: 'oops\n' },
    'SshWrapperError',
    'The runbook wrapper could not run on host-1 (exit 242): oops. The login user needs a writable home directory, a POSIX sh and coreutils.',
    false,
  ],
])('%s', (_what, raw, name, message, isRetryable) => {
  expect(() => wrapperOutcome(raw, 'host-1')).toThrow(expect.objectContaining({ name, message }));
  expect(retryable(name)).toBe(isRetryable);
});

test('a trailer is the outcome, whatever else happened to the channel', () => {
  expect(
    wrapperOutcome(
      { exitCode: 0, signal: null, stderr: 'err\n\n__RUNBOOK_WRAPPER__ mode=attached exit=3 pid=42\n' },
      'host-1',
    ),
  ).toEqual({ mode: 'attached', exit: 3, pid: '42', stderr: 'err\n' });
});

test('record keys: the run id is part of the key when given; without it, the key earlier versions derived', () => {
  const sha = (text: string) => crypto.createHash('sha256').update(text).digest('hex').slice(0, 32);
  expect(stepRecordKey({ workflowId: 'wf', stepPath: 'steps[1]' }, 'db-1')).toBe(sha('wf\0steps[1]\0db-1'));
  expect(stepRecordKey({ workflowId: 'wf', runId: 'r1', stepPath: 'steps[1]' }, 'db-1')).toBe(
    sha('wf\0r1\0steps[1]\0db-1'),
  );
  expect(stepRecordKey({ workflowId: 'wf', runId: 'r2', stepPath: 'steps[1]' }, 'db-1')).not.toBe(
    stepRecordKey({ workflowId: 'wf', runId: 'r1', stepPath: 'steps[1]' }, 'db-1'),
  );
});
