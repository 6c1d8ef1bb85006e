export {
  ElectionClient,
  ElectdError,
  validateAddress,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
} from './client.js';
export { Campaign, DEFAULT_PING_INTERVAL_MS, MIN_SAFETY_MARGIN_MS, SAFETY_MARGIN_FRACTION } from './campaign.js';
export { loadElectdV1, protoDir } from './proto.js';
