// Loads electd.v1 from the .proto files at run time with @grpc/proto-loader, so the
// client is always generated from the same source as the server and nothing generated
// is checked in.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

const PROTO_FILE = 'electd/v1/election_service.proto';

/**
 * Where the .proto files are: $ELECTD_PROTO_DIR, else the copy `npm pack` puts in the
 * package (see the prepack script), else the repository's proto/ two levels up.
 */
export function protoDir() {
  const candidates = [
    process.env.ELECTD_PROTO_DIR,
    fileURLToPath(new URL('../proto', import.meta.url)),
    fileURLToPath(new URL('../../../proto', import.meta.url)),
  ].filter(Boolean);
  const found = candidates.find((dir) => existsSync(join(dir, PROTO_FILE)));
  if (!found) {
    throw new Error(`cannot find ${PROTO_FILE} in ${candidates.join(', ')}; set ELECTD_PROTO_DIR`);
  }
  return found;
}

let cached;

/** The electd.v1 package: { ElectionService, ... } as grpc-js constructors and types. */
export function loadElectdV1() {
  if (!cached) {
    const definition = protoLoader.loadSync(PROTO_FILE, {
      includeDirs: [protoDir()],
      // int64 (epoch, sequence, session_id) as decimal strings: a JS number would lose
      // precision above 2^53, and epochs are zxids (epoch << 32 | counter), so they get there.
      longs: String,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    cached = grpc.loadPackageDefinition(definition).electd.v1;
  }
  return cached;
}
