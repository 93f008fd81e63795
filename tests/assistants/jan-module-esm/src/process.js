// An ES module (package.json says "type": "module") with top-level await.
import { readFile } from 'node:fs/promises';

const definition = JSON.parse(await readFile('assistant.json', 'utf8'));

export function describe() {
  return { name: definition.name, node: process.versions.node.split('.')[0] };
}

export async function dispose() {}
