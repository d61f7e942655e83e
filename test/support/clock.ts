import type { Clock } from '../../src/lib/clock.js';

/** A clock that follows real time plus an offset the test moves forward. */
export function createTestClock(): Clock & { advance(ms: number): void; reset(): void } {
  let offset = 0;
  return {
    now: () => new Date(Date.now() + offset),
    advance(ms) {
      offset += ms;
    },
    reset() {
      offset = 0;
    },
  };
}
