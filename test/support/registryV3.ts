/** The real 3.0.0 registry binary: REGISTRY_V3_BIN, else ../shared/bin beside the project; undefined where it is not there. */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const V3_BIN = process.env.REGISTRY_V3_BIN ?? fileURLToPath(new URL('../../../shared/bin/registry-v3.0.0', import.meta.url));

export const registryV3Bin: string | undefined = fs.existsSync(V3_BIN) ? V3_BIN : undefined;
