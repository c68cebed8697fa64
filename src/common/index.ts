export { type Clock, systemClock, type Timer } from './clock.js';
export { OutpostError } from './errors.js';
export { grammarSchemaProblem } from './grammarSchema.js';
export { createLogger, type Logger, type LoggerOptions } from './logger.js';
export { gaussian, mulberry32 } from './random.js';
export { withTimeout } from './timeout.js';
export { TopicFilter } from './topicFilter.js';
export { writeWavHeader } from './wav.js';
