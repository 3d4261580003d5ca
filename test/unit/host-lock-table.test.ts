// Unit: the lock manager's table (workflows/host-lock-table.ts), pure: FIFO per host, fail policy against a live or
// a gone holder, withdrawals, runs that end without releasing, undeliverable answers, old-style locks, a new
// manager taking over what the runs say, bounds, hostile messages, and the table carried over continue-as-new.
import {
  LockTable,
  LockTableStateSchema,
  MAX_LIVE,
  MAX_QUEUE,
  requestProblems,
  type LockRequests,
  type Plan,
  type RunRef,
} from '../../workflows/host-lock-table';
import { inputProblems } from '../../dsl/run-input';

const rid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
const run = (n: number): RunRef => ({ workflowId: `run-${n}`, runId: rid(n) });
const ask = (n: number, host: string, policy: 'wait' | 'fail' = 'wait', id = `q${n}-${host}`): LockRequests => ({
  from: run(n),
  acquire: [{ requestId: id, host, policy }],
});
const free = (n: number, host: string, id = `q${n}-${host}`): LockRequests => ({
  from: run(n),
  release: [{ requestId: id, host }],
});
/** The answers of a plan as `run-N: requestId answer` lines, in order. */
const said = (p: Plan) =>
  [...p.answers.values()].flatMap((a) => a.answers.map((x) => `${a.run.workflowId}: ${x.requestId} ${x.answer}`));

/** A table whose old-style checks are done (every host clear). */
function table(): LockTable {
  const t = new LockTable(undefined, 0);
  t.adopt({ held: [], waiting: [] });
  t.legacyDone = true;
  return t;
}

describe('grants', () => {
  test('one holder per host, then FIFO; waiters are told once that they wait', () => {
    const t = table();
    for (const n of [1, 2, 3]) t.receive(ask(n, 'h'));
    expect(said(t.plan(new Set()))).toEqual(['run-1: q1-h granted', 'run-2: q2-h queued', 'run-3: q3-h queued']);
    expect(said(t.plan(new Set()))).toEqual([]);
    t.receive(free(1, 'h'));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-h granted']);
    t.receive(free(2, 'h'));
    t.receive(free(3, 'h')); // withdrawn while queued: nobody gets it any more
    expect(said(t.plan(new Set()))).toEqual([]);
    expect(t.hosts).toEqual({});
  });

  test('the answers of one round go to each run in one message; hosts are independent', () => {
    const t = table();
    t.receive({
      from: run(1),
      acquire: ['a', 'b', 'c'].map((h) => ({ requestId: `x-${h}`, host: h, policy: 'wait' })),
    });
    t.receive(ask(2, 'b'));
    const p = t.plan(new Set());
    expect(p.answers.size).toBe(2);
    expect(p.answers.get(`run-1\u0000${rid(1)}`)!.answers.map((a) => `${a.host} ${a.answer}`)).toEqual([
      'a granted',
      'b granted',
      'c granted',
    ]);
    expect(p.watch).toEqual([run(1)]); // someone waits for run-1: watch it
  });

  test('a duplicate request (asked again) changes nothing; the holder asking again is told again', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.receive(ask(2, 'h'));
    t.plan(new Set());
    t.receive(ask(2, 'h'));
    t.receive(ask(1, 'h'));
    expect(said(t.plan(new Set()))).toEqual(['run-1: q1-h granted']);
    expect(t.hosts.h!.queue.map((q) => q.requestId)).toEqual(['q2-h']);
  });

  test('a request id once released is never queued again (a late duplicate)', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.plan(new Set());
    t.receive(free(1, 'h'));
    t.receive(ask(1, 'h'));
    expect(said(t.plan(new Set()))).toEqual([]);
    expect(t.hosts).toEqual({});
  });

  test('a release before its request (messages crossed) leaves nothing behind', () => {
    const t = table();
    t.receive(free(1, 'h'));
    t.receive(ask(1, 'h'));
    expect(said(t.plan(new Set()))).toEqual([]);
  });

  test('a grant given back (the run never asked for it) frees exactly that grant', () => {
    const t = table();
    t.receive({ from: run(9), acquire: [{ requestId: 'forged', host: 'h', policy: 'wait' }] }); // in run-9's name
    t.receive(ask(2, 'h'));
    expect(said(t.plan(new Set()))).toEqual(['run-9: forged granted', 'run-2: q2-h queued']);
    t.receive({ from: run(9), decline: [{ requestId: 'other', host: 'h' }] });
    expect(t.hosts.h!.holder?.requestId).toBe('forged');
    t.receive({ from: run(9), decline: [{ requestId: 'forged', host: 'h' }] });
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-h granted']);
  });

  test('another run cannot release a hold by its request id', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.receive(ask(2, 'h'));
    t.plan(new Set());
    t.receive({ from: run(9), release: [{ requestId: 'q1-h', host: 'h' }] });
    expect(t.hosts.h!.holder?.workflowId).toBe('run-1');
  });
});

describe('fail policy', () => {
  test('a free host is granted; a held one is refused only once its holder is seen running', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.plan(new Set());
    t.receive(ask(2, 'h', 'fail'));
    const p = t.plan(new Set());
    expect(p.holderCheck).toEqual([run(1)]);
    expect(said(p)).toEqual([]);
    expect(t.plan(new Set()).holderCheck).toEqual([]); // checked once
    t.holdersChecked([run(1)], []);
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-h refused']);
    expect(t.hosts.h!.queue).toEqual([]);
  });

  test('a holder found closed frees the host: the fail-policy request gets it', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.plan(new Set());
    t.receive(ask(2, 'h', 'fail'));
    t.plan(new Set());
    t.holdersChecked([run(1)], [run(1)]);
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-h granted']);
  });

  test('a check that failed is made again', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.plan(new Set());
    t.receive(ask(2, 'h', 'fail'));
    t.plan(new Set());
    t.holdersChecked([], []);
    expect(t.plan(new Set()).holderCheck).toEqual([run(1)]);
  });

  test('a check of a holder that has since released says nothing about the next holder', () => {
    const t = table();
    t.receive(ask(1, 'h'));
    t.receive(ask(3, 'h'));
    t.plan(new Set());
    t.receive(ask(2, 'h', 'fail'));
    t.plan(new Set());
    t.receive(free(1, 'h')); // run-3 gets it
    expect(said(t.plan(new Set()))).toEqual(['run-3: q3-h granted']);
    t.holdersChecked([run(1)], []);
    const p = t.plan(new Set());
    expect(said(p)).toEqual([]);
    expect(p.holderCheck).toEqual([run(3)]);
  });
});

describe('runs that go away', () => {
  test('a holder seen closed (terminated, timed out) frees every host it held and drops its requests', () => {
    const t = table();
    t.receive({
      from: run(1),
      acquire: [
        { requestId: 'a', host: 'a', policy: 'wait' },
        { requestId: 'b', host: 'b', policy: 'wait' },
      ],
    });
    t.receive(ask(2, 'a'));
    t.receive(ask(1, 'c', 'wait', 'c1'));
    t.plan(new Set());
    t.runClosed(run(1));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-a granted']);
    expect(Object.keys(t.hosts)).toEqual(['a']);
  });

  test('an undelivered grant is no hold: the next in line gets the host; an undelivered `queued` drops the request', () => {
    const t = table();
    for (const n of [1, 2, 3]) t.receive(ask(n, 'h'));
    const p = t.plan(new Set());
    t.undeliverable(run(1), p.answers.get(`run-1\u0000${rid(1)}`)!.answers);
    t.undeliverable(run(2), p.answers.get(`run-2\u0000${rid(2)}`)!.answers);
    expect(said(t.plan(new Set()))).toEqual(['run-3: q3-h granted']);
  });
});

describe('old-style locks', () => {
  test('no host is granted before it was checked; a running old-style lock keeps it until it ends', () => {
    const t = new LockTable(undefined, 0);
    t.adopt({ held: [], waiting: [] });
    t.receive(ask(1, 'h'));
    t.receive(ask(2, 'g', 'fail'));
    let p = t.plan(new Set());
    expect(said(p)).toEqual([]);
    expect(p.legacyCheck.sort()).toEqual(['g', 'h']);
    expect(t.plan(new Set(['g', 'h'])).legacyCheck).toEqual([]); // in flight: not asked twice
    t.legacyChecked(['g', 'h'], ['h', 'g'], false, 1);
    p = t.plan(new Set());
    expect(said(p).sort()).toEqual(['run-1: q1-h queued', 'run-2: q2-g refused']);
    expect(p.legacyWatch).toEqual(['h']);
    t.legacyReleased('h');
    expect(said(t.plan(new Set()))).toEqual(['run-1: q1-h granted']);
    // Checked once: the next request for h is granted without a check.
    t.receive(free(1, 'h'));
    t.receive(ask(3, 'h'));
    p = t.plan(new Set());
    expect(p.legacyCheck).toEqual([]);
    expect(said(p)).toEqual(['run-3: q3-h granted']);
  });

  test('checks stop for good once none runs anywhere, but not in the first minutes of a manager', () => {
    const t = new LockTable(undefined, 0);
    t.legacyChecked(['h'], [], true, 60_000);
    expect(t.legacyDone).toBe(false);
    t.legacyChecked(['g'], [], true, 11 * 60_000);
    expect(t.legacyDone).toBe(true);
  });
});

describe('a new manager (no table carried)', () => {
  test('grants nothing while it learns the table; then holds and waits as the runs said, waits in the order asked', () => {
    const t = new LockTable(undefined, 0);
    t.legacyDone = true;
    t.receive(ask(4, 'h')); // came while it asked the runs
    t.receive(free(5, 'h', 'x5')); // released while it asked: not taken over
    let p = t.plan(new Set());
    expect(said(p)).toEqual([]);
    expect(p.watch).toEqual([]);
    const conflicts = t.adopt({
      held: [
        { ...run(1), requestId: 'q1-h', host: 'h' },
        { ...run(5), requestId: 'x5', host: 'g' },
      ],
      waiting: [
        { ...run(3), requestId: 'q3-h', host: 'h', policy: 'wait', at: 20 },
        { ...run(2), requestId: 'q2-h', host: 'h', policy: 'wait', at: 10 },
        { ...run(4), requestId: 'q4-h', host: 'h', policy: 'wait', at: 30 },
      ],
    });
    expect(conflicts).toEqual([]);
    p = t.plan(new Set());
    expect(said(p)).toEqual(['run-2: q2-h queued', 'run-3: q3-h queued', 'run-4: q4-h queued']);
    expect(t.hosts.g).toBeUndefined();
    t.receive(free(1, 'h'));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-h granted']);
  });

  test('two runs saying they hold one host is reported, the first kept', () => {
    const t = new LockTable(undefined, 0);
    expect(
      t.adopt({
        held: [
          { ...run(1), requestId: 'a', host: 'h' },
          { ...run(2), requestId: 'b', host: 'h' },
        ],
        waiting: [],
      }),
    ).toEqual(['h: run-1 and run-2 both say they hold it']);
    expect(t.hosts.h!.holder?.workflowId).toBe('run-1');
  });

  test('a run that did not answer holds its targets until it releases, asks (it never held it) or ends', () => {
    const t = table();
    t.adopt({
      held: [
        { ...run(1), requestId: 'unanswered:r1', host: 'a', unanswered: true },
        { ...run(1), requestId: 'unanswered:r1', host: 'b', unanswered: true },
      ],
      waiting: [],
    });
    t.receive(ask(2, 'a'));
    t.receive(ask(2, 'b'));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-a queued', 'run-2: q2-b queued']);
    // It gives back a grant it never asked for (forged in its name): that frees nothing it may hold.
    t.receive({ from: run(1), decline: [{ requestId: 'forged', host: 'b' }] });
    expect(t.hosts.b!.holder?.workflowId).toBe('run-1');
    t.receive(ask(1, 'a', 'wait', 'real')); // it was waiting for a, in line before run-2
    expect(said(t.plan(new Set()))).toEqual(['run-1: real granted']);
    t.receive(free(1, 'b', 'whatever')); // it releases b under its own request id
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-b granted']);
  });
});

describe('bounds and hostile input', () => {
  test('a host queues at most MAX_QUEUE, the table at most MAX_LIVE: past that, refused', () => {
    const t = table();
    t.receive({
      from: run(1),
      acquire: Array.from({ length: MAX_QUEUE + 2 }, (_, i) => ({
        requestId: `q${i}`,
        host: 'h',
        policy: 'wait' as const,
      })),
    });
    const p = t.plan(new Set());
    expect(said(p).filter((a) => a.endsWith('refused'))).toEqual(['run-1: q1000 refused', 'run-1: q1001 refused']);
    expect(t.live).toBe(MAX_QUEUE);
    const many = new LockTable(undefined, 0);
    for (let i = 0; i < MAX_LIVE + 3; i++) many.receive(ask(i, `h${i}`));
    expect(many.live).toBe(MAX_LIVE);
  });

  test.each([
    ['nothing', undefined],
    ['a string', 'release everything'],
    ['no sender', { acquire: [{ requestId: 'a', host: 'h', policy: 'wait' }] }],
    ['an unknown field', { from: run(1), grant: [] }],
    ['a bad policy', { from: run(1), acquire: [{ requestId: 'a', host: 'h', policy: 'steal' }] }],
    ['a host with a space', { from: run(1), acquire: [{ requestId: 'a', host: 'h 1', policy: 'wait' }] }],
    ['a control character', { from: { workflowId: 'x\n', runId: 'r' }, release: [] }],
    [
      'too many requests',
      { from: run(1), release: Array.from({ length: 501 }, () => ({ requestId: 'a', host: 'h' })) },
    ],
    ['a huge id', { from: run(1), release: [{ requestId: 'a'.repeat(65), host: 'h' }] }],
    ['deep nesting', { from: run(1), acquire: [JSON.parse('['.repeat(40) + ']'.repeat(40))] }],
  ])('a message with %s is refused', (_what, msg) => {
    expect(requestProblems(msg)).not.toEqual([]);
  });

  test('the carried table is schema-checked; continue-as-new round trip keeps holders, queues and what was said', () => {
    const t = new LockTable(undefined, 5);
    t.adopt({ held: [], waiting: [] });
    t.receive(ask(1, 'h'));
    t.receive(ask(2, 'h'));
    t.receive(ask(3, 'g'));
    t.plan(new Set());
    t.legacyChecked(['h', 'g'], [], false, 6);
    t.plan(new Set());
    t.receive(ask(1, 'h')); // owed: told again after the carry
    const state = JSON.parse(JSON.stringify(t.carry())) as unknown;
    expect(inputProblems(LockTableStateSchema, state)).toEqual([]);
    const next = new LockTable(state as never, 99);
    expect(next.since).toBe(5);
    expect(next.recovering).toBe(false);
    expect(said(next.plan(new Set()))).toEqual(['run-1: q1-h granted']); // the owed answer, nothing new
    next.receive(free(1, 'h'));
    expect(said(next.plan(new Set()))).toEqual(['run-2: q2-h granted']);
    expect(inputProblems(LockTableStateSchema, { ...(state as object), recovering: 'no' })).not.toEqual([]);
  });
});

describe('claims and forgeries (adversarial review)', () => {
  test('two silent runs taken to hold one host, and a run that answered it holds it: the host waits for all three', () => {
    const t = new LockTable(undefined, 0);
    t.adopt({
      held: [
        { ...run(8), requestId: `unanswered:${rid(8)}`, host: 'x', unanswered: true },
        { ...run(1), requestId: 'q1-x', host: 'x' },
        { ...run(9), requestId: `unanswered:${rid(9)}`, host: 'x', unanswered: true },
      ],
      waiting: [],
    });
    t.legacyDone = true;
    t.receive(ask(2, 'x'));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-x queued']);
    // The silent ones end (or ask for it themselves, which withdraws their claim): the real holder still holds it.
    t.runClosed(run(8));
    t.receive(ask(9, 'x', 'wait', 'q9-x'));
    expect(said(t.plan(new Set()))).toEqual(['run-9: q9-x queued']);
    expect(t.view().hosts.x!.holder).toEqual(run(1));
    t.receive(free(1, 'x'));
    // The silent run 9 was in line before anyone who asked since.
    expect(said(t.plan(new Set()))).toEqual(['run-9: q9-x granted']);
  });

  test('two runs that answered they hold one host: it is granted to nobody until both are gone', () => {
    const t = new LockTable(undefined, 0);
    const conflicts = t.adopt({
      held: [
        { ...run(1), requestId: 'q1-x', host: 'x' },
        { ...run(2), requestId: 'q2-x', host: 'x' },
      ],
      waiting: [],
    });
    t.legacyDone = true;
    expect(conflicts).toHaveLength(1);
    t.receive(ask(3, 'x'));
    t.receive(ask(4, 'x', 'fail'));
    expect(said(t.plan(new Set()))).toEqual(['run-4: q4-x refused', 'run-3: q3-x queued']);
    t.receive(free(1, 'x'));
    expect(said(t.plan(new Set()))).toEqual([]);
    t.runClosed(run(2));
    expect(said(t.plan(new Set()))).toEqual(['run-3: q3-x granted']);
  });

  test("a release in another run's name frees nothing and does not make the real request look finished", () => {
    const t = table();
    t.receive(ask(1, 'x'));
    t.plan(new Set());
    t.receive({ from: run(66), release: [{ requestId: 'q1-x', host: 'x' }] });
    t.receive(ask(2, 'x'));
    expect(said(t.plan(new Set()))).toEqual(['run-2: q2-x queued']);
    // A new manager learns the hold from run 1 and keeps it (a finished id would have been skipped).
    const carried = new LockTable({ ...t.carry(), recovering: true }, 0);
    carried.adopt({ held: [{ ...run(1), requestId: 'q1-x', host: 'x' }], waiting: [] });
    expect(carried.view().hosts.x!.holder).toEqual(run(1));
  });

  test("an acquire in another run's name reusing the holder's request id is not granted, and its loss frees nothing", () => {
    const t = table();
    t.receive(ask(1, 'x'));
    t.plan(new Set());
    t.receive({ from: run(66), acquire: [{ requestId: 'q1-x', host: 'x', policy: 'wait' }] });
    const p = t.plan(new Set());
    expect(said(p)).toEqual([]);
    t.undeliverable(run(66), [{ requestId: 'q1-x', host: 'x', answer: 'granted' }]);
    expect(t.view().hosts.x!.holder).toEqual(run(1));
  });

  test('run ids must be UUIDs and workflow ids at most 1000 bytes (the manager could not signal them)', () => {
    expect(requestProblems({ from: { workflowId: 'w', runId: 'x' }, release: [] }).join()).toMatch(/runId/);
    const long = { from: { workflowId: '\u4e00'.repeat(400), runId: rid(1) }, release: [] };
    expect(requestProblems(long)).toEqual(['from.workflowId: longer than 1000 bytes']);
    expect(requestProblems({ from: { workflowId: '\u4e00'.repeat(333), runId: rid(1) }, release: [] })).toEqual([]);
  });
});
