import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, EnvSchema, loadConfig } from '../../src/config.js';

describe('configuration from the environment', () => {
  it('starts on documented defaults with an empty environment', () => {
    const config = loadConfig({});
    expect(config.port).toBe(8080);
    expect(config.publicUrl).toBe('http://localhost:8080');
    expect(config.role).toBe('all');
    expect(config.sandbox).toEqual({ enabled: true, port: 8081 });
    expect(config.platforms.onlyfansUrl).toBe('http://127.0.0.1:8081');
    expect(config.allowPrivateWebhooks).toBe(false);
    expect(config.rateLimit).toEqual({ perKeyPerMinute: 1000, connectPerHour: 60, accountLoginsPerHour: 5, authFailuresPerMinute: 30 });
    expect(config.access).toEqual({ ratePerMin: 60, burst: 90 });
  });

  it('converts numbers and switches, and treats an empty value as unset', () => {
    const config = loadConfig({
      FANGATE_PORT: '9000', FANGATE_PUBLIC_URL: '', FANGATE_ALLOW_PRIVATE_PROXIES: 'Yes',
      FANGATE_ALLOW_PRIVATE_WEBHOOKS: '0', FANGATE_FANSLY_URL: 'https://api.example.test/', FANGATE_SANDBOX: 'off',
    });
    expect(config.port).toBe(9000);
    expect(config.publicUrl).toBe('http://localhost:9000');
    expect(config.allowPrivateProxies).toBe(true);
    expect(config.allowPrivateWebhooks).toBe(false);
    expect(config.platforms.fanslyUrl).toBe('https://api.example.test');
    expect(config.sandbox.enabled).toBe(false);
  });

  it('reports every bad variable at once, each with its rule and the value given', () => {
    let error: unknown;
    try {
      loadConfig({
        FANGATE_PORT: 'eighty', FANGATE_ROLE: 'boss', DATABASE_URL: 'mysql://db', FANGATE_ALLOW_PRIVATE_WEBHOOKS: 'maybe',
        FANGATE_ONLYFANS_URL: 'ftp://x', FANGATE_ADMIN_TOKEN: 'short', FANGATE_DB_POOL_SIZE: '0',
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.sort()).toEqual([
      'DATABASE_URL must be a postgres:// or postgresql:// URL (got "mysql://db")',
      'FANGATE_ADMIN_TOKEN must be at least 16 characters (got "short")',
      'FANGATE_ALLOW_PRIVATE_WEBHOOKS must be true or false (got "maybe")',
      'FANGATE_DB_POOL_SIZE must be an integer from 1 to 1000 (got "0")',
      'FANGATE_ONLYFANS_URL must be an http(s) URL (got "ftp://x")',
      'FANGATE_PORT must be an integer from 0 to 65535 (got "eighty")',
      'FANGATE_ROLE must be one of all, api, worker (got "boss")',
    ]);
  });

  it('documents every variable of the schema in the README', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const documented = Object.keys(EnvSchema.properties).filter((name) => readme.includes(`| \`${name}\` |`));
    expect(documented).toEqual(Object.keys(EnvSchema.properties));
  });
});
