#!/usr/bin/env node
// Writes the Function CRD generated from api's schemas into the chart: `node controller/dist/gen-crd.js`.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { functionCrdYaml } from './crd.js';

export const CRD_FILE = fileURLToPath(new URL('../../charts/hearth/crds/function.yaml', import.meta.url));

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await mkdir(dirname(CRD_FILE), { recursive: true });
  await writeFile(CRD_FILE, functionCrdYaml());
  console.log(`wrote ${CRD_FILE}`);
}
