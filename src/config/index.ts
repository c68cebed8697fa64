export { ConfigError } from './errors.js';
export type { ConfigKey } from './keys.js';
export { CONFIG_KEYS, isLoopback, type LoadConfigOptions, loadConfig, printConfig } from './load.js';
export {
  CAMERA_NAME,
  type Config,
  type ConfigInput,
  configSchema,
  type RouteConfig,
  routeMaxBytes,
} from './schema.js';
