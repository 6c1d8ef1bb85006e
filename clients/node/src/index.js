export { ElectionClient, ElectdError, validateAddress, DEFAULT_CALL_TIMEOUT_MS } from './client.js';
export { loadElectdV1, protoDir } from './proto.js';
