import type { OutboxLimits } from '../../src/store/index.js';

/** Outbox limits for tests: roomy unless overridden, with the shipped policy (keep results and events). */
export function outboxLimits(overrides: Partial<OutboxLimits> = {}): OutboxLimits {
  const maxMessages = overrides.maxMessages ?? 10_000;
  const maxBytes = overrides.maxBytes ?? 10_000_000;
  return {
    maxMessages,
    maxBytes,
    hardMaxMessages: overrides.hardMaxMessages ?? maxMessages * 10,
    hardMaxBytes: overrides.hardMaxBytes ?? maxBytes * 10,
    maxAgeMs: overrides.maxAgeMs ?? 3_600_000,
    policy: overrides.policy ?? {
      results: 'keep',
      events: 'keep',
      windows: 'overwrite-oldest',
      errors: 'overwrite-oldest',
    },
  };
}
