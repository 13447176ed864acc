/**
 * How the tests pick their CouchDB (test/harness/couch-backend.ts): a
 * `COUCHDB_URL` is used as given and shown without its credentials;
 * `KPI_TEST_BACKEND=embedded` starts the embedded server; an unknown
 * `KPI_TEST_BACKEND` stops the run with a message naming it.
 */
import { describe, expect, it } from 'vitest';
import { splitCredentials, startCouchBackend } from '../harness/couch-backend.js';

describe('the test backend choice', () => {
  it('takes COUCHDB_URL first, and never shows its credentials', async () => {
    const backend = await startCouchBackend({ COUCHDB_URL: 'http://admin:s3cret-pw@127.0.0.1:5984/', KPI_TEST_BACKEND: 'embedded' });
    expect(backend.kind).toBe('env');
    expect(backend.url).toBe('http://admin:s3cret-pw@127.0.0.1:5984');
    expect(backend.description).toBe('COUCHDB_URL http://127.0.0.1:5984');
    expect(backend.description).not.toContain('s3cret');
    await backend.stop();
  });

  it('starts the embedded server when asked to, without asking for a container runtime, its URL holding the credentials it needs', async () => {
    const backend = await startCouchBackend({ KPI_TEST_BACKEND: 'embedded' });
    try {
      expect(backend.kind).toBe('embedded');
      const { base, headers } = splitCredentials(backend.url);
      expect(headers.authorization).toBeDefined();
      expect(backend.description).not.toContain(new URL(backend.url).password);
      expect((await fetch(`${base}/`, { headers })).ok).toBe(true);
      expect((await fetch(`${base}/`)).status).toBe(401);
    } finally {
      await backend.stop();
    }
  });

  it('refuses an unknown KPI_TEST_BACKEND, naming it', async () => {
    await expect(startCouchBackend({ KPI_TEST_BACKEND: 'containers' })).rejects.toThrow(
      /KPI_TEST_BACKEND must be testcontainers or embedded, not 'containers'/,
    );
  });
});
