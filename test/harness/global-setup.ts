/**
 * Vitest global setup: one CouchDB backend for the whole run (each test file
 * works in databases of its own), announced on the console.
 */
import type { TestProject } from 'vitest/node';
import { startCouchBackend, type CouchBackend } from './couch-backend.js';

declare module 'vitest' {
  export interface ProvidedContext {
    couchUrl: string;
    couchKind: string;
  }
}

let backend: CouchBackend | undefined;

export async function setup(project: TestProject): Promise<void> {
  backend = await startCouchBackend();
  console.log(`[kpi-live tests] CouchDB backend: ${backend.kind} (${backend.description})`);
  project.provide('couchUrl', backend.url);
  project.provide('couchKind', backend.kind);
}

export async function teardown(): Promise<void> {
  await backend?.stop();
}
