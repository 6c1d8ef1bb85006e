// The TypeScript declarations: a typed usage file (test/types/usage.ts, which imports the
// package by its name) passes `tsc --noEmit`, and the declarations name exactly what
// src/index.js exports at run time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import * as electd from '../src/index.js';

const require = createRequire(import.meta.url);
const here = (p) => fileURLToPath(new URL(p, import.meta.url));

test('tsc --noEmit accepts the typed usage and rejects every misuse it marks', { timeout: 120_000 }, () => {
  const tsc = require.resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', here('./types/tsconfig.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});

test('package.json points "types" and "exports" at the declarations', () => {
  const pkg = JSON.parse(readFileSync(here('../package.json'), 'utf8'));
  assert.equal(pkg.types, './src/index.d.ts');
  assert.deepEqual(pkg.exports['.'], { types: './src/index.d.ts', default: './src/index.js' });
});

test('the declarations export exactly what src/index.js exports', () => {
  const ts = require('typescript');
  const file = here('../src/index.d.ts');
  const program = ts.createProgram([file], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, noEmit: true, types: [] });
  const checker = program.getTypeChecker();
  const symbol = checker.getSymbolAtLocation(program.getSourceFile(file));
  const values = checker.getExportsOfModule(symbol)
    .filter((s) => s.flags & ts.SymbolFlags.Value) // interfaces and types have no run-time counterpart
    .map((s) => s.name)
    .sort();
  assert.deepEqual(values, Object.keys(electd).sort());
});
