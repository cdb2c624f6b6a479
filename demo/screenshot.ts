/**
 * npx tsx demo/screenshot.ts <report.html> <out.png> [--width 1280] [--height N] [--force]
 * Screenshots a canary HTML report in headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH):
 * how the README's picture is made from a demo run. Refuses to overwrite a file git tracks (the README's
 * own picture, say) unless --force.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const USAGE = 'usage: npx tsx demo/screenshot.ts <existing report.html> <out.png> [--width 1280] [--height N] [--force]\n';

/** Whether git tracks this path (false outside a repository or without git). */
function trackedByGit(file: string): boolean {
  const absolute = resolve(file);
  if (!existsSync(dirname(absolute))) return false;
  const result = spawnSync('git', ['ls-files', '--error-unmatch', '--', basename(absolute)], { cwd: dirname(absolute), stdio: 'ignore', timeout: 10_000 });
  return result.status === 0;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { width: { type: 'string' }, height: { type: 'string' }, force: { type: 'boolean' } },
    allowPositionals: true,
  });
  const [report, out] = positionals;
  if (!report || !out || !existsSync(report)) {
    process.stderr.write(USAGE);
    return 64;
  }
  if (!values.force && trackedByGit(out)) {
    process.stderr.write(`refusing to overwrite ${out}: git tracks it (add --force to replace it, or write the picture elsewhere)\n${USAGE}`);
    return 64;
  }
  const width = Number(values.width ?? 1280);
  const height = values.height ? Number(values.height) : undefined;
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  // Checked here, not left to playwright: a launch that fails on a missing binary leaves its temporary profile and
  // artifacts folders behind in the temp directory.
  if (!existsSync(executablePath)) throw new Error(`Chromium not found at ${executablePath}: apt-get install -y chromium (Debian), or set CHROMIUM_PATH`);
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage({ viewport: { width, height: height ?? 900 }, deviceScaleFactor: 1 });
    await page.goto(pathToFileURL(resolve(report)).href);
    await page.screenshot({ path: out, fullPage: height === undefined });
    process.stdout.write(`wrote ${out}\n`);
  } finally {
    await browser.close();
  }
  return 0;
}

main().then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`screenshot failed: ${(error as Error).message}\n`);
    process.exitCode = 1;
  },
);
