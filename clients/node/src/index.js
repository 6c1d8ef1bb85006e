export {
  ElectionClient,
  ElectdError,
  validateAddress,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
} from './client.js';
export { loadElectdV1, protoDir } from './proto.js';
