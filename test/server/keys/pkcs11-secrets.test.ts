import { describeHsm, openHsmVault } from '../../hsm.js';
import { secretsSuite } from '../http/secrets-suite.js';

describeHsm('HSM provider (SoftHSM2)', () => {
  secretsSuite('pkcs11', openHsmVault);
});
