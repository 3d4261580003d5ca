// Benchmark entry: `npm run bench -- ssh [--steps N]`, `npm run bench -- engine [--concurrent N]` or
// `npm run bench -- alerts [--alerts N] [--gap MS] [--burst] [--hosts N] [--warmup N] [--db]` or
// `npm run bench -- locks [--runs N] [--hosts N]` or `npm run bench -- fanout [--hosts N] [--repeats N] [--warmup N]
// [--smoke]`. Each benchmark is bounded in count and time.
import { alertBenchOptions, alertsBench } from './alerts';
import { engineBench } from './engine';
import { fanoutBench, fanoutOptions } from './fanout';
import { locksBench, locksBenchOptions } from './locks';
import { sshOverhead } from './ssh-overhead';

async function main(): Promise<void> {
  const [name = 'ssh', ...rest] = process.argv.slice(2);
  const stepsArg = rest.indexOf('--steps');
  const steps = Math.min(5000, Number(stepsArg >= 0 ? rest[stepsArg + 1] : 200) || 200);
  const concArg = rest.indexOf('--concurrent');
  const concurrent = Math.min(5000, Number(concArg >= 0 ? rest[concArg + 1] : 1000) || 1000);
  if (name === 'ssh') await sshOverhead(steps);
  else if (name === 'engine') await engineBench(concurrent);
  else if (name === 'alerts') await alertsBench(alertBenchOptions(rest));
  else if (name === 'locks') await locksBench(locksBenchOptions(rest));
  else if (name === 'fanout') await fanoutBench(fanoutOptions(rest));
  else throw new Error(`unknown benchmark ${name}; available: ssh, engine, alerts, locks, fanout`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
