export { ConfigError } from './errors.js';
export type { ConfigKey } from './keys.js';
export { CONFIG_KEYS, isLoopback, type LoadConfigOptions, loadConfig, printConfig } from './load.js';
export { type Config, type ConfigInput, configSchema, type RouteConfig } from './schema.js';
