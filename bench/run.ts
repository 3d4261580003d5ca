// Benchmark entry: `npm run bench -- ssh [--steps N]` or `npm run bench -- engine [--concurrent N]`. Each benchmark is bounded in count and time.
import { engineBench } from './engine';
import { sshOverhead } from './ssh-overhead';

async function main(): Promise<void> {
  const [name = 'ssh', ...rest] = process.argv.slice(2);
  const stepsArg = rest.indexOf('--steps');
  const steps = Math.min(5000, Number(stepsArg >= 0 ? rest[stepsArg + 1] : 200) || 200);
  const concArg = rest.indexOf('--concurrent');
  const concurrent = Math.min(5000, Number(concArg >= 0 ? rest[concArg + 1] : 1000) || 1000);
  if (name === 'ssh') await sshOverhead(steps);
  else if (name === 'engine') await engineBench(concurrent);
  else throw new Error(`unknown benchmark ${name}; available: ssh, engine`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
