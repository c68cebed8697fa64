export { type ApiServer, type ApiServerOptions, startApiServer } from './server.js';
