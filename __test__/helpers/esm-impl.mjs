// Loaded with `--import` (NODE_OPTIONS) into ESM fixtures that are to run on
// another implementation: ESM fixtures import 'rcluster' by name, statically,
// and this hook resolves that name to RCLUSTER_TEST_IMPL (e.g. node:cluster),
// the ESM counterpart of the CJS fixtures' `require(RCLUSTER_TEST_IMPL || '../..')`.
import { register } from 'node:module';

register('./esm-impl-hooks.mjs', import.meta.url);
