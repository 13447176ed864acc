import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactedConfig, redactUrl } from '../../src/config/config.js';

function configFile(content: unknown): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kpi-live-config-')), 'config.json');
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('loadConfig', () => {
  it('has working defaults: port 3434, embedded store, group commit on', () => {
    const config = loadConfig({ env: {} });
    expect(config.port).toBe(3434);
    expect(config.couchdbUrl).toBeUndefined();
    expect(config.dataDir).toBe('./data');
    expect(config.commitBatchMaxDocs).toBe(500);
    expect(config.maxBlobsPerRequest).toBe(100);
    expect(config.apiTokens).toEqual([]);
    expect(config.trustLoopback).toBe(false);
  });

  it('reads environment variables into typed values', () => {
    const config = loadConfig({
      env: { PORT: '8080', KPI_TRUST_PROXY: '10.0.0.0/8', KPI_API_TOKENS: 'a, b,,c', KPI_MAX_BLOB_AGE_HOURS: '2.5', COUCHDB_URL: 'http://u:p@db:5984' },
    });
    expect(config.port).toBe(8080);
    expect(config.trustProxy).toEqual(['10.0.0.0/8']);
    expect(config.apiTokens).toEqual(['a', 'b', 'c']);
    expect(config.maxBlobAgeHours).toBe(2.5);
    expect(config.couchdbUrl).toBe('http://u:p@db:5984');
  });

  it('lets the environment win over the config file', () => {
    const file = configFile({ port: 9000, dbName: 'from_file' });
    const config = loadConfig({ env: { KPI_CONFIG: file, PORT: '9001' } });
    expect(config.port).toBe(9001);
    expect(config.dbName).toBe('from_file');
  });

  it.each([
    [{ PORT: 'abc' }, /PORT must be integer \("abc"\)|PORT must be integer \(NaN\)|PORT must be integer/],
    [{ PORT: '70000' }, /PORT must be <= 65535/],
    [{ KPI_COMMIT_BATCH_DOCS: '0' }, /KPI_COMMIT_BATCH_DOCS must be >= 1/],
    [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL must be equal to one of the allowed values/],
    [{ KPI_TRUST_PROXY: 'maybe' }, /KPI_TRUST_PROXY entry 1 \("maybe"\) is not an IP address/],
    [{ KPI_TRUST_PROXY: 'true' }, /KPI_TRUST_PROXY may not be "true"/],
    [{ KPI_TRUST_PROXY: '1' }, /KPI_TRUST_PROXY takes the proxies' addresses or CIDRs .*not a number of hops/],
    [{ KPI_TRUST_PROXY: '10.0.0.0/33' }, /KPI_TRUST_PROXY entry 1/],
    [{ COUCHDB_URL: 'ftp://db' }, /COUCHDB_URL must be an http: or https: URL/],
    [{ COUCHDB_URL: 'not a url' }, /COUCHDB_URL is not a URL/],
  ])('stops with a message naming the variable at fault: %j', (env, message) => {
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    expect(() => loadConfig({ env })).toThrow(message);
  });

  it('names unknown and bad keys of the config file', () => {
    expect(() => loadConfig({ env: {}, file: configFile({ prot: 1 }) })).toThrow(/unknown key "prot"/);
    expect(() => loadConfig({ env: {}, file: configFile({ port: 'x' }) })).toThrow(/config file .*key "port".* must be integer/);
    expect(() => loadConfig({ env: {}, file: configFile('{oops') })).toThrow(/is not valid JSON/);
    expect(() => loadConfig({ env: {}, file: join(tmpdir(), 'no-such-kpi-live-config.json') })).toThrow(/cannot read config file/);
  });

  it('reads KPI_TRUST_PROXY as the proxies, never as "believe anyone" or a hop count', () => {
    const read = (value: string | undefined) => loadConfig({ env: { KPI_TRUST_PROXY: value } }).trustProxy;
    expect(read(undefined)).toBe(false);
    expect(read('false')).toBe(false);
    expect(read('off')).toBe(false);
    expect(read('')).toBe(false);
    expect(read('10.0.0.0/8, 192.168.1.7,::1,fd00::/8,loopback')).toEqual(['10.0.0.0/8', '192.168.1.7', '::1', 'fd00::/8', 'loopback']);
    expect(loadConfig({ env: {}, file: configFile({ trustProxy: '127.0.0.1' }) }).trustProxy).toEqual(['127.0.0.1']);
    expect(() => loadConfig({ env: {}, file: configFile({ trustProxy: 2 }) })).toThrow(/key "trustProxy", takes the proxies' addresses/);
    expect(loadConfig({ env: {}, file: configFile({ trustProxy: false }) }).trustProxy).toBe(false);
    expect(() => loadConfig({ env: {}, file: configFile({ trustProxy: true }) })).toThrow(/key "trustProxy", may not be "true"/);
  });

  it('says where a config file is not JSON, never what it holds', () => {
    const secret = 'hunter2-couchdb-password-of-the-team';
    for (const text of [`{\n  "couchdbPassword": "${secret}" oops\n}`, `{"couchdbPassword": "${secret}", x}`, `{"couchdbPassword": ${secret}}`]) {
      const file = configFile(text);
      let message = '';
      try {
        loadConfig({ env: {}, file });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(new RegExp(`^config file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is not valid JSON`));
      expect(message).not.toContain('hunter2');
      expect(message).not.toContain('couchdbPassword');
    }
    let message = '';
    try {
      loadConfig({ env: {}, file: configFile(`{\n  "couchdbPassword": "${secret}" oops\n}`) });
    } catch (err) {
      message = (err as Error).message;
    }
    // the engine says where on Node 20 for this shape; the line is the second
    expect(message).toMatch(/at line 2, column \d+$/);
  });

  it('reads alert thresholds and names what is wrong in them', () => {
    expect(loadConfig({ env: { KPI_THRESHOLDS: '{"bounceRate":{"max":0.7},"newUsers":{"min":5}}' } }).thresholds).toBe(
      '{"bounceRate":{"max":0.7},"newUsers":{"min":5}}',
    );
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '{oops' } })).toThrow('KPI_THRESHOLDS is not JSON');
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '{"bounce":{"max":1}}' } })).toThrow(/KPI_THRESHOLDS names "bounce"/);
    expect(() => loadConfig({ env: { KPI_THRESHOLDS: '{"bounceRate":{"max":"high"}}' } })).toThrow('KPI_THRESHOLDS.bounceRate takes numbers');
  });

  it('refuses session and nonce keys shorter than 32 characters, without echoing them', () => {
    for (const env of ['KPI_SESSION_SECRET', 'KPI_INGEST_NONCE_SECRET']) {
      expect(() => loadConfig({ env: { [env]: 'short-key' } })).toThrow(new RegExp(`${env} must NOT have fewer than 32 characters$`));
      expect(loadConfig({ env: { [env]: 'k'.repeat(32) } })).toBeDefined();
    }
  });

  it('never echoes a secret in an error', () => {
    const secret = 'hunter2-secret';
    let message = '';
    try {
      loadConfig({ env: { COUCHDB_PASSWORD: '', KPI_API_TOKENS: secret, PORT: 'x' } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/PORT/);
    expect(message).not.toContain(secret);
  });

  it('masks secrets for logging', () => {
    const config = loadConfig({ env: { COUCHDB_URL: 'https://admin:s3cret@db.example:6984/', COUCHDB_PASSWORD: 'pw', KPI_API_TOKENS: 't1,t2' } });
    const shown = JSON.stringify(redactedConfig(config));
    expect(shown).not.toContain('s3cret');
    expect(shown).not.toContain('"pw"');
    expect(shown).not.toContain('t1');
    expect(shown).toContain('db.example:6984');
    expect(redactUrl('http://a:b@h:1/x')).toBe('http://h:1/x');
  });
});
