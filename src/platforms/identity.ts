import { randomBytes } from 'node:crypto';

/**
 * Platforms bind sessions to the browser that made them, so each account gets one realistic
 * desktop identity at its first login and keeps it for every later request.
 */
const USER_AGENTS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.6 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:145.0) Gecko/20100101 Firefox/145.0',
];

export function newBrowserIdentity(): { userAgent: string; deviceId: string } {
  const bytes = randomBytes(20);
  return { userAgent: USER_AGENTS[bytes[0]! % USER_AGENTS.length]!, deviceId: bytes.toString('hex') };
}
