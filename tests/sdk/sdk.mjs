// tests/sdk/sdk.mjs — loads the pinned official SDK (@fly/sprites) from tests/peers.
//
// The SDK is installed in tests/peers/node_modules, which is not on the ESM lookup
// path of this folder, so we resolve the package from tests/peers/package.json
// (through the package's own "exports") and re-export what the tests use.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const peers = new URL('../peers/package.json', import.meta.url);
let entry;
try {
  entry = createRequire(peers).resolve('@fly/sprites');
} catch (err) {
  throw new Error(`@fly/sprites is not installed: run tests/peers/install (${err.message})`);
}

export const sdk = await import(pathToFileURL(entry).href);

export const {
  SpritesClient,
  Sprite,
  SpriteCommand,
  APIError,
  ExecError,
  FilesystemError,
} = sdk;
