/** The arguments infra's commands share (`--stack`, `--dir`), parsed once for infra:check and infra:adopt. */
import { resolve } from 'node:path';

export type StackArgs = { ok: true; stack: string; dir: string } | { ok: false; message: string };

/** `usage` is printed when no stack is named (or on --help); an unknown argument is named. Either way: exit 64. */
export function parseStackArgs(argv: string[], usage: string): StackArgs {
  let stack: string | undefined;
  let dir = process.cwd();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--stack' || arg === '-s') stack = argv[++i];
    else if (arg === '--dir') dir = resolve(argv[++i] ?? '.');
    else if (arg === '--help' || arg === '-h') stack = undefined;
    else return { ok: false, message: `unknown argument: ${arg}` };
  }
  return stack ? { ok: true, stack, dir } : { ok: false, message: usage };
}
