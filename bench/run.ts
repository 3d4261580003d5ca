// Benchmark entry: `npm run bench -- NAME [--steps N]`. Each benchmark is bounded in count and time.
import { sshOverhead } from './ssh-overhead';

async function main(): Promise<void> {
  const [name = 'ssh', ...rest] = process.argv.slice(2);
  const stepsArg = rest.indexOf('--steps');
  const steps = Math.min(5000, Number(stepsArg >= 0 ? rest[stepsArg + 1] : 200) || 200);
  if (name === 'ssh') await sshOverhead(steps);
  else throw new Error(`unknown benchmark ${name}; available: ssh`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
