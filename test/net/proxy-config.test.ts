import { describe, expect, it } from 'vitest';
import { describeProxy, parseProxyPool, parseProxyUrl, proxyId } from '../../src/net/proxy-config.js';

describe('parseProxyUrl', () => {
  it('parses http and socks5 proxies with and without credentials', () => {
    expect(parseProxyUrl('http://u:p@10.0.0.1:3128')).toEqual({ protocol: 'http', host: '10.0.0.1', port: 3128, username: 'u', password: 'p' });
    expect(parseProxyUrl('socks5://proxy.example:1080/')).toEqual({ protocol: 'socks5', host: 'proxy.example', port: 1080 });
    expect(parseProxyUrl('HTTP://user@h:8080')).toEqual({ protocol: 'http', host: 'h', port: 8080, username: 'user' });
  });

  it('percent-decodes credentials and keeps an unencoded @ or : inside the password', () => {
    expect(parseProxyUrl('http://us%40er:p%3Ass@h:1')).toMatchObject({ username: 'us@er', password: 'p:ss' });
    expect(parseProxyUrl('http://u:p@ss:w@h:1')).toMatchObject({ username: 'u', password: 'p@ss:w', host: 'h' });
  });

  it('accepts bracketed IPv6 hosts', () => {
    expect(parseProxyUrl('socks5://[::1]:1080')).toEqual({ protocol: 'socks5', host: '::1', port: 1080 });
  });

  it.each([
    ['https://h:443', /protocol must be one of http, socks5/],
    ['h:3128', /expected protocol:\/\/host:port/],
    ['http://h', /expected host:port/],
    ['http://h:0', /port must be from 1 to 65535/],
    ['http://h:65536', /port must be from 1 to 65535/],
    ['http://h:3128/path', /no path/],
    ['http://:p@h:1', /empty username/],
    ['http://u:%zz@h:1', /percent-encoding/],
  ])('rejects %s', (url, message) => {
    expect(() => parseProxyUrl(url)).toThrow(message);
  });

  it('never puts the password in an error message', () => {
    expect(() => parseProxyUrl('ftp://user:s3cret@h:1')).toThrow('invalid proxy "ftp://***@h:1"');
    expect(() => parseProxyUrl('user:s3cret@h')).toThrow('"***@h"');
  });
});

describe('parseProxyPool', () => {
  it('parses countries with several proxies each', () => {
    const pool = parseProxyPool('us=http://u:p@10.0.0.1:3128,socks5://h:1080; UK=http://10.0.0.2:8080;');
    expect([...pool.keys()]).toEqual(['us', 'uk']);
    expect(pool.get('us')).toEqual([
      { protocol: 'http', host: '10.0.0.1', port: 3128, username: 'u', password: 'p' },
      { protocol: 'socks5', host: 'h', port: 1080 },
    ]);
    expect(pool.get('uk')).toEqual([{ protocol: 'http', host: '10.0.0.2', port: 8080 }]);
  });

  it('reads an empty or blank spec as an empty pool', () => {
    expect(parseProxyPool('').size).toBe(0);
    expect(parseProxyPool('  ;  ').size).toBe(0);
  });

  it.each([
    ['us', /bad entry "us": expected country=proxy_url/],
    ['usa=http://h:1', /bad entry "usa=http:\/\/h:1": country must be a two-letter code/],
    ['us=', /no proxy listed for "us"/],
    ['us=http://h:1;us=http://g:2', /bad entry "us=http:\/\/g:2": country "us" is listed twice/],
    ['us=http://h:1,http://h:1', /proxy http:\/\/h:1 is listed twice/],
    ['us=http://h:1,gopher://g:2', /bad entry .*protocol must be one of/],
    ['uk=http://h:99999', /bad entry "uk=http:\/\/h:99999": .*port must be from 1 to 65535/],
  ])('rejects %s naming the entry', (spec, message) => {
    expect(() => parseProxyPool(spec)).toThrow(message);
  });

  it('redacts passwords of every proxy of a bad entry', () => {
    let message = '';
    try {
      parseProxyPool('us=http://a:secret1@h:1,http://b:secret2@g:0');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('us=http://***@h:1,http://***@g:0');
    expect(message).not.toMatch(/secret/);
  });
});

describe('proxyId and describeProxy', () => {
  const proxy = { protocol: 'http', host: 'Proxy.Example', port: 3128, username: 'u', password: 'p' } as const;

  it('identifies a proxy by protocol, host, port and username, not by its password', () => {
    expect(proxyId(proxy)).toMatch(/^px_[0-9a-f]{16}$/);
    expect(proxyId({ ...proxy, password: 'changed' })).toBe(proxyId(proxy));
    expect(proxyId({ ...proxy, host: 'proxy.example' })).toBe(proxyId(proxy));
    expect(proxyId({ ...proxy, username: 'v' })).not.toBe(proxyId(proxy));
    expect(proxyId({ ...proxy, protocol: 'socks5' })).not.toBe(proxyId(proxy));
    expect(proxyId({ ...proxy, port: 3129 })).not.toBe(proxyId(proxy));
  });

  it('describes a proxy without its username or password (both secrets)', () => {
    expect(describeProxy(proxy)).toBe('http://Proxy.Example:3128');
    expect(describeProxy({ protocol: 'socks5', host: '::1', port: 1080 })).toBe('socks5://[::1]:1080');
  });
});
