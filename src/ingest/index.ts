export { type EmbeddedBroker, type EmbeddedBrokerOptions, startEmbeddedBroker } from './broker.js';
export { type MessageHandler, MqttConnection, type MqttConnectionOptions } from './connection.js';
export { BrokerListenError, TlsFileError } from './errors.js';
export {
  type AckCallback,
  type IncomingPacket,
  type IngestJournal,
  Intake,
  type IntakeOptions,
  type IntakeStats,
  messageDigest,
  type Rejection,
  type RejectSink,
} from './intake.js';
export {
  MicrophoneSource,
  type MicrophoneSourceOptions,
  type MicrophoneState,
  type MicrophoneStatus,
  type SegmentMeta,
} from './microphone.js';
