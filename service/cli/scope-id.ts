/**
 * `npm run scope-id -- --location test --agent agent-1 --prompt "You are a helpful assistant"`
 * prints scope:<location>:<agent>:<16 hex of sha256(prompt)>, exactly as the service derives it.
 */
import { parseArgs } from 'node:util';
import { generateScopeId } from '../domain/scope-id';

const USAGE = 'usage: npm run scope-id -- --location <id> --agent <id> --prompt "<full system prompt>"';

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { location: { type: 'string' }, agent: { type: 'string' }, prompt: { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (values.location === undefined || values.agent === undefined || values.prompt === undefined) {
    process.stderr.write(`missing --location, --agent or --prompt\n${USAGE}\n`);
    process.exit(2);
  }
  try {
    process.stdout.write(`${await generateScopeId({ locationId: values.location, agentId: values.agent, promptText: values.prompt })}\n`);
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n`);
    process.exit(2);
  }
}

void main();
