import { openVault } from '../../helpers.js';
import { secretsSuite } from './secrets-suite.js';

secretsSuite('software', openVault);
