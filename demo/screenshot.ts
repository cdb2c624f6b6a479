/**
 * npx tsx demo/screenshot.ts <report.html> <out.png> [--width 1280] [--height N]
 * Screenshots a canary HTML report in headless Chromium (Debian's /usr/bin/chromium, or CHROMIUM_PATH):
 * how the README's picture is made from a demo run.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    options: { width: { type: 'string' }, height: { type: 'string' } },
    allowPositionals: true,
  });
  const [report, out] = positionals;
  if (!report || !out || !existsSync(report)) {
    process.stderr.write('usage: npx tsx demo/screenshot.ts <existing report.html> <out.png> [--width 1280] [--height N]\n');
    return 64;
  }
  const width = Number(values.width ?? 1280);
  const height = values.height ? Number(values.height) : undefined;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
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
