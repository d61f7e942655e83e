import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sql, type Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/config.js';
import { parseKeyring } from '../../src/vault/keyring.js';
import { createVault } from '../../src/vault/vault.js';
import { ADMIN_TOKEN, newTestKey, startTestApp, TEST_MASTER_KEY, type TestApp } from '../support/app.js';
import { createTestStore, describeEachStore } from '../support/stores.js';
import { FANGATE_CLI } from '../support/cli.js';

const place = { orgId: 'org_a', table: 'accounts', field: 'password_enc', recordId: 'acct_1' };

describe('vault', () => {
  const vault = createVault(parseKeyring(`k2:${Buffer.alloc(32, 2).toString('base64')},k1:${Buffer.alloc(32, 1).toString('base64')}`));

  it('round-trips and marks each ciphertext with the key id', () => {
    const ct = vault.encrypt('hunter2', place);
    expect(ct).toMatch(/^fgv1:k2:/);
    expect(ct).not.toContain('hunter2');
    expect(vault.decrypt(ct, place)).toBe('hunter2');
    expect(vault.encrypt('hunter2', place)).not.toBe(ct); // fresh IV every time
  });

  it('refuses a tampered ciphertext', () => {
    const ct = vault.encrypt('hunter2', place);
    const parts = ct.split(':');
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0]! ^= 1;
    parts[4] = body.toString('base64url');
    expect(() => vault.decrypt(parts.join(':'), place)).toThrow(/failed authentication/);
    expect(() => vault.decrypt(ct.slice(0, -2), place)).toThrow();
    expect(() => vault.decrypt('plaintext', place)).toThrow(/not a FanGate ciphertext/);
  });

  it('refuses a ciphertext moved to another organisation, record or field', () => {
    const ct = vault.encrypt('hunter2', place);
    expect(() => vault.decrypt(ct, { ...place, recordId: 'acct_2' })).toThrow(/failed authentication/);
    expect(() => vault.decrypt(ct, { ...place, field: 'totp_secret_enc' })).toThrow(/failed authentication/);
    expect(() => vault.decrypt(ct, { ...place, orgId: 'org_b' })).toThrow(/failed authentication/);
    expect(() => vault.decrypt(ct, { ...place, table: 'attempts' })).toThrow(/failed authentication/);
  });

  it('reads ciphertexts of older keys and names a missing key', () => {
    const old = createVault(parseKeyring(`k1:${Buffer.alloc(32, 1).toString('base64')}`)).encrypt('old secret', place);
    expect(vault.decrypt(old, place)).toBe('old secret');
    expect(vault.needsRotation(old)).toBe(true);
    const other = createVault(parseKeyring(`k9:${Buffer.alloc(32, 9).toString('base64')}`)).encrypt('x', place);
    expect(() => vault.decrypt(other, place)).toThrow(/"k9", which is not in FANGATE_MASTER_KEY/);
  });

  it('rejects malformed keyrings with a clear message', () => {
    expect(() => parseKeyring('nokey')).toThrow(ConfigError);
    expect(() => parseKeyring(`k1:${Buffer.alloc(16).toString('base64')}`)).toThrow(/32 bytes/);
    expect(() => parseKeyring(`bad id:${Buffer.alloc(32).toString('base64')}`)).toThrow(/key id/);
    const dup = `k1:${Buffer.alloc(32).toString('base64')}`;
    expect(() => parseKeyring(`${dup},${dup}`)).toThrow(/twice/);
  });
});

/** Every row of every FanGate table as text: what a database dump would show. */
async function dumpAll(db: Kysely<any>): Promise<string> {
  const tables = await sql<{ schema: string; name: string }>`
    select table_schema as schema, table_name as name from information_schema.tables
    where table_schema in ('public', 'pgboss') and table_type = 'BASE TABLE'`.execute(db);
  let out = '';
  for (const t of tables.rows) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(`${t.schema}.${t.name}`)} t`.execute(db);
    out += rows.rows.map((r) => r.row).join('\n');
  }
  return out;
}

describeEachStore('vault at rest', (kind) => {
  const apps: TestApp[] = [];
  const stores: { drop(): Promise<void> }[] = [];
  afterAll(async () => {
    for (const app of apps.reverse()) await app.close().catch(() => undefined);
    for (const store of stores) await store.drop();
  });

  it('keeps secrets encrypted in the database and rotates them online without losing one', async () => {
    const store = await createTestStore(kind);
    stores.push(store);
    const base = { store, persistent: true };
    const first = await startTestApp(kind, { ...base, env: {} });
    apps.push(first);
    const dataDir = first.dataDir;

    // Idempotent responses hold freshly created API keys: a secret worth a canary.
    const created: { idem: string; key: string }[] = [];
    for (let i = 0; i < 5; i++) {
      const idem = `rotate-${i}`;
      const res = await first.api('/api/api-keys', { method: 'POST', body: { name: `k${i}` }, headers: { 'idempotency-key': idem } });
      created.push({ idem, key: res.body.key });
    }
    const dump = await dumpAll(first.fangate.database.db);
    expect(dump).toContain('fgv1:test1:');
    for (const { key } of created) expect(dump).not.toContain(key);
    await first.fangate.stop();

    // Restart with a new first key; the old one stays to read what it wrote.
    const keyring = `${newTestKey('test2')},${TEST_MASTER_KEY}`;
    const second = await startTestApp(kind, { store, dataDir, persistent: true, env: { FANGATE_MASTER_KEY: keyring } });
    apps.push(second);
    const replay = await second.api('/api/api-keys', { method: 'POST', body: { name: 'k0' }, headers: { 'idempotency-key': 'rotate-0' } });
    expect(replay.body.key).toBe(created[0]!.key);

    if (kind === 'postgres') {
      // The CLI, in another process, while the service keeps running.
      const out = await runCli(['vault', 'rotate'], { DATABASE_URL: store.databaseUrl!, FANGATE_MASTER_KEY: keyring, FANGATE_DATA_DIR: dataDir });
      expect(out.code).toBe(0);
      expect(out.stdout).toMatch(/re-encrypted 5 secrets under key "test2"/);
    } else {
      // Embedded: one process owns the database, so rotation runs inside it.
      const res = await second.api('/admin/vault/rotate', { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, key: null });
      expect(res.status).toBe(200);
      expect(res.body.rotated).toBe(5);
    }
    // The audit log says who rotated: the CLI (as the admin) or the admin token.
    const audit = await second.api('/api/audit-events?action=vault.rotated');
    expect(audit.status, audit.text).toBe(200);
    expect(audit.body.data).toEqual([
      expect.objectContaining({ actor: { type: 'admin', id: kind === 'postgres' ? 'cli' : 'admin_token' }, target_type: 'vault', target_id: 'test2', details: { key_id: 'test2', rotated: 5 } }),
    ]);
    const rows = await second.fangate.database.db.selectFrom('idempotency_keys').select('response_enc').execute();
    expect(rows.length).toBeGreaterThanOrEqual(5);
    for (const row of rows) expect(row.response_enc).toMatch(/^fgv1:test2:/);
    await second.fangate.stop();

    // Only the new key from now on: everything still reads.
    const third = await startTestApp(kind, { store, dataDir, persistent: true, env: { FANGATE_MASTER_KEY: keyring.split(',')[0]! } });
    apps.push(third);
    for (const [i, { idem, key }] of created.entries()) {
      const res = await third.api('/api/api-keys', { method: 'POST', body: { name: `k${i}` }, headers: { 'idempotency-key': idem } });
      expect(res.body.key).toBe(key);
    }
    // Three starts of a persistent embedded database: slow on a busy 2-core machine.
  }, 120_000);
});

describe('embedded master key', () => {
  it('is created in the data directory with mode 0600 and a warning when FANGATE_MASTER_KEY is unset', async () => {
    const app = await startTestApp('pglite', { persistent: true, env: { FANGATE_MASTER_KEY: '' } });
    try {
      const info = await stat(join(app.dataDir, 'master.key'));
      expect(info.mode & 0o777).toBe(0o600);
      expect(app.logs.some((l) => l.includes('FANGATE_MASTER_KEY is not set'))).toBe(true);
    } finally {
      await app.close();
    }
  });
});

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...FANGATE_CLI, ...args], { env: { ...process.env, ...env }, cwd: process.cwd() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
