#!/usr/bin/env node
// Writes the CRDs generated from api's schemas into the chart: `node controller/dist/gen-crd.js`.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { eventSourceMappingCrdYaml, functionCrdYaml } from './crd.js';

export const CRD_FILE = fileURLToPath(new URL('../../charts/hearth/crds/function.yaml', import.meta.url));
export const ESM_CRD_FILE = fileURLToPath(
  new URL('../../charts/hearth/crds/eventsourcemapping.yaml', import.meta.url),
);

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [file, yaml] of [
    [CRD_FILE, functionCrdYaml()],
    [ESM_CRD_FILE, eventSourceMappingCrdYaml()],
  ] as const) {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, yaml);
    console.log(`wrote ${file}`);
  }
}
