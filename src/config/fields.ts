import { z } from 'zod';

/** Marks a value that `--print-config`, logs and `/api/status` must never show. */
export const secret = { secret: true } as const;

export const port = z.number().int().min(0).max(65535);

export const seconds = (description: string, fallback: number) =>
  z.number().positive().default(fallback).describe(`${description} Unit: seconds. Default ${fallback}.`);

/** The message of a missing half of a pair of keys that go together. */
export const bothOrNeither =
  (other: string) =>
  (issue: { input?: unknown }): string | undefined =>
    issue.input === undefined ? `required with ${other} (give both or neither)` : undefined;

/** An MQTT broker URL (the gateway's broker, the fleet's upstream one). */
export const brokerUrl = () =>
  z.string().regex(/^(mqtts?|wss?|tcp|ssl):\/\//, 'an mqtt://, mqtts://, ws:// or wss:// URL');

/** A fixed MQTT client id: the broker keeps the session under it. */
export const clientId = () => z.string().min(1).max(128);
