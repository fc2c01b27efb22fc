export { Coffer, type AdminApi, type CofferOptions } from './client.js';
export {
  CofferError,
  isCasMismatch,
  isForbidden,
  isNotFound,
  isSealed,
  isUnauthenticated,
  isUnavailable,
} from './errors.js';
export type * from './wire/types.js';
export { verifyAuditLog, type VerifyResult } from './audit.js';
export { loginGithubActions, loginGitlab, loginKubernetes } from './ci-login.js';
